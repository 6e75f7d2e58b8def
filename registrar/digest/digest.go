package digest

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// Algorithm is a digest hash algorithm.
type Algorithm int

// The algorithms of RFC 8760 §2.
const (
	MD5 Algorithm = iota + 1
	SHA256
)

func (a Algorithm) String() string {
	switch a {
	case MD5:
		return "MD5"
	case SHA256:
		return "SHA-256"
	}
	return "Algorithm(" + strconv.Itoa(int(a)) + ")"
}

// ParseAlgorithm parses an algorithm name, case-insensitively. An empty
// name is MD5 (RFC 7616 §3.3).
func ParseAlgorithm(s string) (Algorithm, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "", "MD5":
		return MD5, nil
	case "SHA-256":
		return SHA256, nil
	}
	return 0, fmt.Errorf("%w: %q", ErrAlgorithm, s)
}

// appendSum appends H(in) in lower-case hex to dst. Verification runs
// on every REGISTER, so this hashes on the stack rather than through
// hash.Hash, which allocates a digest per call.
func (a Algorithm) appendSum(dst, in []byte) []byte {
	if a == SHA256 {
		s := sha256.Sum256(in)
		return hex.AppendEncode(dst, s[:])
	}
	s := md5.Sum(in)
	return hex.AppendEncode(dst, s[:])
}

// appendJoined appends parts joined by ':' to dst.
func appendJoined(dst []byte, parts ...string) []byte {
	for i, p := range parts {
		if i > 0 {
			dst = append(dst, ':')
		}
		dst = append(dst, p...)
	}
	return dst
}

// hexLen is the longest digest in hex.
const hexLen = 2 * sha256.Size

// HA1 is H(user:realm:password), the secret a server may store instead of
// the password.
func HA1(alg Algorithm, user, realm, password string) string {
	var buf [256]byte
	return string(alg.appendSum(nil, appendJoined(buf[:0], user, realm, password)))
}

// Response is the request-digest of RFC 7616 §3.4.1 for qop=auth:
// H(HA1:nonce:nc:cnonce:qop:H(method:uri)).
func Response(alg Algorithm, ha1, nonce, nc, cnonce, qop, method, uri string) string {
	var buf [hexLen]byte
	return string(appendResponse(buf[:0], alg, ha1, nonce, nc, cnonce, qop, method, uri))
}

// appendResponse appends the request-digest to dst, without allocating
// for requests of ordinary size.
func appendResponse(dst []byte, alg Algorithm, ha1, nonce, nc, cnonce, qop, method, uri string) []byte {
	var in [512]byte
	var ha2 [hexLen]byte
	h2 := alg.appendSum(ha2[:0], appendJoined(in[:0], method, uri))
	b := append(appendJoined(in[:0], ha1, nonce, nc, cnonce, qop), ':')
	return alg.appendSum(dst, append(b, h2...))
}

// Challenge is one WWW-Authenticate or Proxy-Authenticate value.
type Challenge struct {
	Realm     string
	Nonce     string
	Opaque    string
	Algorithm Algorithm
	Stale     bool
}

// String renders the header field value (RFC 7616 §3.3).
func (c Challenge) String() string {
	var b strings.Builder
	b.Grow(len(c.Realm) + len(c.Nonce) + len(c.Opaque) + 96)
	b.WriteString(`Digest realm="`)
	b.WriteString(quote(c.Realm))
	b.WriteString(`", nonce="`)
	b.WriteString(c.Nonce)
	b.WriteString(`"`)
	if c.Opaque != "" {
		b.WriteString(`, opaque="`)
		b.WriteString(quote(c.Opaque))
		b.WriteString(`"`)
	}
	b.WriteString(", algorithm=")
	b.WriteString(c.Algorithm.String())
	b.WriteString(`, qop="auth"`)
	if c.Stale {
		b.WriteString(", stale=true")
	}
	return b.String()
}

func quote(s string) string {
	if !strings.ContainsAny(s, `"\`) {
		return s
	}
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
}

// Credentials is a parsed Authorization or Proxy-Authorization value.
type Credentials struct {
	Username  string
	Realm     string
	Nonce     string
	URI       string
	Response  string
	Algorithm Algorithm
	CNonce    string
	NC        uint32
	nc        string // as sent, for the digest
	QOP       string
	Opaque    string
}

// ParseCredentials parses a Digest credentials header value.
func ParseCredentials(v string) (Credentials, error) {
	var c Credentials
	rest, ok := cutScheme(v)
	if !ok {
		return c, fmt.Errorf("%w: not Digest: %q", ErrMalformed, truncate(v))
	}
	algorithm := ""
	for rest = strings.TrimSpace(rest); rest != ""; {
		var key, val string
		var err error
		key, val, rest, err = nextParam(rest)
		if err != nil {
			return c, fmt.Errorf("%w: %w in %q", ErrMalformed, err, truncate(v))
		}
		switch strings.ToLower(key) {
		case "username":
			c.Username = val
		case "realm":
			c.Realm = val
		case "nonce":
			c.Nonce = val
		case "uri":
			c.URI = val
		case "response":
			c.Response = strings.ToLower(val)
		case "algorithm":
			algorithm = val
		case "cnonce":
			c.CNonce = val
		case "nc":
			n, err := strconv.ParseUint(val, 16, 32)
			if err != nil || len(val) != 8 {
				return c, fmt.Errorf("%w: nc %q", ErrMalformed, val)
			}
			c.NC, c.nc = uint32(n), val
		case "qop":
			c.QOP = val
		case "opaque":
			c.Opaque = val
		}
	}
	alg, err := ParseAlgorithm(algorithm)
	if err != nil {
		return c, err
	}
	c.Algorithm = alg
	for _, p := range [...]struct{ name, val string }{
		{"username", c.Username}, {"realm", c.Realm}, {"nonce", c.Nonce}, {"uri", c.URI}, {"response", c.Response},
	} {
		if p.val == "" {
			return c, fmt.Errorf("%w: missing %s", ErrMalformed, p.name)
		}
	}
	return c, nil
}

func cutScheme(v string) (string, bool) {
	v = strings.TrimSpace(v)
	if len(v) < 7 || !strings.EqualFold(v[:6], "Digest") || (v[6] != ' ' && v[6] != '\t') {
		return "", false
	}
	return v[7:], true
}

// nextParam reads `key=value` or `key="quoted"` and the comma after it.
func nextParam(s string) (key, val, rest string, err error) {
	eq := strings.IndexByte(s, '=')
	if eq <= 0 {
		return "", "", "", fmt.Errorf("parameter without '='")
	}
	key = strings.TrimSpace(s[:eq])
	s = strings.TrimLeft(s[eq+1:], " \t")
	if strings.HasPrefix(s, `"`) {
		var ok bool
		if val, s, ok = unquote(s); !ok {
			return "", "", "", fmt.Errorf("unterminated quote after %s", key)
		}
	} else {
		end := strings.IndexByte(s, ',')
		if end < 0 {
			end = len(s)
		}
		val, s = strings.TrimSpace(s[:end]), s[end:]
	}
	s = strings.TrimLeft(s, " \t")
	if s != "" {
		if s[0] != ',' {
			return "", "", "", fmt.Errorf("expected ',' after %s", key)
		}
		s = strings.TrimLeft(s[1:], " \t")
	}
	return key, val, s, nil
}

// unquote reads the quoted string at the start of s and returns its
// value and what follows it. Only a value with escapes is copied.
func unquote(s string) (val, rest string, ok bool) {
	i := 1
	for ; i < len(s) && s[i] != '"' && s[i] != '\\'; i++ {
	}
	if i < len(s) && s[i] == '"' {
		return s[1:i], s[i+1:], true
	}
	var b strings.Builder
	b.WriteString(s[1:min(i, len(s))])
	for ; i < len(s) && s[i] != '"'; i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	if i >= len(s) {
		return "", "", false
	}
	return b.String(), s[i+1:], true
}

func truncate(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
