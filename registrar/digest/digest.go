package digest

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
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

func (a Algorithm) new() hash.Hash {
	if a == SHA256 {
		return sha256.New()
	}
	return md5.New()
}

// hashHex is H(parts joined by ':') in lower-case hex.
func (a Algorithm) hashHex(parts ...string) string {
	h := a.new()
	for i, p := range parts {
		if i > 0 {
			h.Write([]byte{':'})
		}
		h.Write([]byte(p))
	}
	var buf [sha256.Size]byte
	return hex.EncodeToString(h.Sum(buf[:0]))
}

// HA1 is H(user:realm:password), the secret a server may store instead of
// the password.
func HA1(alg Algorithm, user, realm, password string) string {
	return alg.hashHex(user, realm, password)
}

// Response is the request-digest of RFC 7616 §3.4.1 for qop=auth:
// H(HA1:nonce:nc:cnonce:qop:H(method:uri)).
func Response(alg Algorithm, ha1, nonce, nc, cnonce, qop, method, uri string) string {
	return alg.hashHex(ha1, nonce, nc, cnonce, qop, alg.hashHex(method, uri))
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
		var b strings.Builder
		i := 1
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
			}
			b.WriteByte(s[i])
		}
		if i >= len(s) {
			return "", "", "", fmt.Errorf("unterminated quote after %s", key)
		}
		val, s = b.String(), s[i+1:]
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

func truncate(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
