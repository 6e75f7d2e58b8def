package digest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/sipline/sipline/internal/macpool"
)

// Server issues challenges and verifies credentials for one realm.
// It is safe for concurrent use.
type Server struct {
	realm     string
	ttl       time.Duration
	maxNonces int
	now       func() time.Time

	macs *macpool.Pool // keyed with secret

	mu            sync.Mutex
	counts        map[rawNonce]uint32 // nonce -> highest nc accepted
	order         []usedNonce         // first use order, for pruning, from head on
	head          int
	evictedBefore int64 // nonces issued at or before this were forgotten
}

// rawNonce is a nonce decoded. The bookkeeping keys on it rather than on
// the string so that its tables hold no pointers for the collector to
// scan, and no reference into a request's memory.
type rawNonce [nonceLen]byte

type usedNonce struct {
	nonce  rawNonce
	issued int64
}

// Option configures a Server.
type Option func(*Server)

// WithNonceTTL sets how long a nonce stays fresh. The default is 5 minutes.
func WithNonceTTL(d time.Duration) Option { return func(s *Server) { s.ttl = d } }

// WithMaxNonces bounds the nonces whose count is remembered (default
// 100,000). Past it the oldest are forgotten; a forgotten nonce then fails
// as stale, never as a success, so its client simply authenticates again.
func WithMaxNonces(n int) Option { return func(s *Server) { s.maxNonces = n } }

// WithClock injects the clock, for tests.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// NewServer returns a Server for realm whose nonces are signed with secret.
func NewServer(realm string, secret []byte, opts ...Option) (*Server, error) {
	if realm == "" {
		return nil, fmt.Errorf("%w: empty realm", ErrRealm)
	}
	if len(secret) < 16 {
		return nil, fmt.Errorf("digest: secret of %d bytes, want at least 16", len(secret))
	}
	s := &Server{
		realm: realm, macs: macpool.New(secret),
		ttl: 5 * time.Minute, maxNonces: 100_000, now: time.Now,
		counts: map[rawNonce]uint32{},
	}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

const (
	nonceRand = 12
	nonceMAC  = 16
	nonceLen  = 8 + nonceRand + nonceMAC
)

// Challenge returns a challenge with a fresh nonce.
func (s *Server) Challenge(alg Algorithm, stale bool) Challenge {
	var raw [nonceLen]byte
	binary.BigEndian.PutUint64(raw[:8], uint64(s.now().UnixNano()))
	_, _ = rand.Read(raw[8 : 8+nonceRand])
	s.mac(raw[8+nonceRand:8+nonceRand], raw[:8+nonceRand])
	var enc [(nonceLen*8 + 5) / 6]byte
	base64.RawURLEncoding.Encode(enc[:], raw[:])
	return Challenge{
		Realm:     s.realm,
		Nonce:     string(enc[:]),
		Algorithm: alg,
		Stale:     stale,
	}
}

// mac appends the truncated HMAC of b to dst.
func (s *Server) mac(dst, b []byte) []byte { return s.macs.Append(dst, b, nonceMAC) }

// issued checks a nonce's signature and returns it decoded, and when it
// was issued.
func (s *Server) issued(nonce string) (rawNonce, int64, error) {
	var raw rawNonce
	var enc [(nonceLen*8 + 5) / 6]byte
	if len(enc) != len(nonce) {
		return raw, 0, fmt.Errorf("%w: %q", ErrBadNonce, truncate(nonce))
	}
	copy(enc[:], nonce)
	if _, err := base64.RawURLEncoding.Decode(raw[:], enc[:]); err != nil {
		return raw, 0, fmt.Errorf("%w: %q", ErrBadNonce, truncate(nonce))
	}
	var mac [nonceMAC]byte
	if !hmac.Equal(raw[8+nonceRand:], s.mac(mac[:0], raw[:8+nonceRand])) {
		return raw, 0, fmt.Errorf("%w: %q: signature", ErrBadNonce, nonce)
	}
	return raw, int64(binary.BigEndian.Uint64(raw[:8])), nil
}

// Verify checks credentials against ha1, the HA1 for c.Algorithm, and
// records the nonce count. For an unknown user, pass an HA1 nobody knows:
// the result is then the same as for a wrong password.
func (s *Server) Verify(method string, c Credentials, ha1 string) error {
	if c.Realm != s.realm {
		return fmt.Errorf("%w: %q", ErrRealm, c.Realm)
	}
	if c.QOP != "auth" {
		return fmt.Errorf("%w: qop %q", ErrQOP, c.QOP)
	}
	raw, issued, err := s.issued(c.Nonce)
	if err != nil {
		return err
	}
	now := s.now()
	if age := now.Sub(time.Unix(0, issued)); age > s.ttl || age < -time.Minute {
		return fmt.Errorf("%w: issued %s ago", ErrStale, age.Round(time.Second))
	}
	nc := c.nc
	if nc == "" {
		nc = fmt.Sprintf("%08x", c.NC)
	}
	var buf [hexLen]byte
	want := appendResponse(buf[:0], c.Algorithm, ha1, c.Nonce, nc, c.CNonce, c.QOP, method, c.URI)
	var got [hexLen]byte
	if len(c.Response) != len(want) || subtle.ConstantTimeCompare(want, got[:copy(got[:], c.Response)]) != 1 {
		return fmt.Errorf("%w: user %q", ErrBadResponse, c.Username)
	}
	return s.count(raw, issued, c.NC, now)
}

// count accepts nc for nonce if it is higher than any before it.
func (s *Server) count(nonce rawNonce, issued int64, nc uint32, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked(now)
	last, seen := s.counts[nonce]
	switch {
	case seen && nc <= last:
		return fmt.Errorf("%w: nc %08x after %08x", ErrReplay, nc, last)
	case !seen && issued <= s.evictedBefore:
		return fmt.Errorf("%w: nonce forgotten", ErrStale)
	}
	if !seen {
		s.order = append(s.order, usedNonce{nonce: nonce, issued: issued})
	}
	s.counts[nonce] = nc
	return nil
}

// pruneLocked forgets expired nonces, and the oldest past the bound.
func (s *Server) pruneLocked(now time.Time) {
	cutoff := now.Add(-s.ttl).UnixNano()
	for s.head < len(s.order) && (s.order[s.head].issued < cutoff || len(s.order)-s.head >= s.maxNonces) {
		u := s.order[s.head]
		delete(s.counts, u.nonce)
		if u.issued > s.evictedBefore && u.issued >= cutoff {
			s.evictedBefore = u.issued
		}
		s.order[s.head] = usedNonce{}
		s.head++
	}
	if s.head > 1024 && s.head > len(s.order)/2 {
		s.order = append(s.order[:0], s.order[s.head:]...)
		s.head = 0
	}
}
