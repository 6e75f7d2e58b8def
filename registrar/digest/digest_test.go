package digest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// RFC 7616 §3.9.1.
const (
	rfcUser   = "Mufasa"
	rfcPass   = "Circle of Life"
	rfcRealm  = "http-auth@example.org"
	rfcURI    = "/dir/index.html"
	rfcNonce  = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
	rfcCNonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
)

func TestRFC7616Vectors(t *testing.T) {
	tests := []struct {
		alg  Algorithm
		want string
	}{
		{MD5, "8ca523f5e9506fed4657c9700eebdbec"},
		{SHA256, "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"},
	}
	for _, tt := range tests {
		t.Run(tt.alg.String(), func(t *testing.T) {
			ha1 := HA1(tt.alg, rfcUser, rfcRealm, rfcPass)
			if got := Response(tt.alg, ha1, rfcNonce, "00000001", rfcCNonce, "auth", "GET", rfcURI); got != tt.want {
				t.Fatalf("response = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestParseRFC7616Authorization(t *testing.T) {
	v := `Digest username="Mufasa",
       realm="http-auth@example.org",
       uri="/dir/index.html",
       algorithm=SHA-256,
       nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
       nc=00000001,
       cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
       qop=auth,
       response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
       opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`
	c, err := ParseCredentials(strings.ReplaceAll(v, "\n", ""))
	if err != nil {
		t.Fatal(err)
	}
	want := Credentials{Username: rfcUser, Realm: rfcRealm, Nonce: rfcNonce, URI: rfcURI,
		Response: "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1", Algorithm: SHA256,
		CNonce: rfcCNonce, NC: 1, nc: "00000001", QOP: "auth", Opaque: "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"}
	if c != want {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
}

func TestParseCredentialsErrors(t *testing.T) {
	tests := []struct {
		name, v string
		want    error
	}{
		{"another scheme is refused", `Basic QWxhZGRpbjpvcGVu`, ErrMalformed},
		{"a missing response is named", `Digest username="a", realm="r", nonce="n", uri="sip:x"`, ErrMalformed},
		{"a bad nc is refused", `Digest username="a", realm="r", nonce="n", uri="sip:x", response="0", nc=zz`, ErrMalformed},
		{"an unknown algorithm is refused", `Digest username="a", realm="r", nonce="n", uri="sip:x", response="0", algorithm=SHA-512`, ErrAlgorithm},
		{"an unterminated quote is refused", `Digest username="a`, ErrMalformed},
		{"garbage is refused", `Digest ,,,=`, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseCredentials(tt.v); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestParseQuotedEscapesAndCase(t *testing.T) {
	c, err := ParseCredentials(`digest USERNAME="a\"b", realm="r" ,nonce=n, uri="sip:x;a=b,c", response="AB", algorithm=md5, qop=auth, nc=0000000A, cnonce=c`)
	if err != nil {
		t.Fatal(err)
	}
	if c.Username != `a"b` || c.URI != "sip:x;a=b,c" || c.Response != "ab" || c.Algorithm != MD5 || c.NC != 10 {
		t.Fatalf("got %+v", c)
	}
}

func TestChallengeString(t *testing.T) {
	c := Challenge{Realm: "example.test", Nonce: "abc", Algorithm: SHA256, Stale: true}
	want := `Digest realm="example.test", nonce="abc", algorithm=SHA-256, qop="auth", stale=true`
	if c.String() != want {
		t.Fatalf("got %s", c.String())
	}
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newServer(t testing.TB, opts ...Option) (*Server, *fakeClock) {
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	s, err := NewServer("example.test", []byte("0123456789abcdef"), append([]Option{WithClock(clk.now)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return s, clk
}

// answer is what a client sends for ch.
func answer(ch Challenge, user, password string, nc uint32) Credentials {
	ncs := fmt.Sprintf("%08x", nc)
	ha1 := HA1(ch.Algorithm, user, ch.Realm, password)
	return Credentials{Username: user, Realm: ch.Realm, Nonce: ch.Nonce, URI: "sip:example.test",
		Algorithm: ch.Algorithm, CNonce: "cn", NC: nc, QOP: "auth",
		Response: Response(ch.Algorithm, ha1, ch.Nonce, ncs, "cn", "auth", "REGISTER", "sip:example.test")}
}

func TestVerify(t *testing.T) {
	for _, alg := range []Algorithm{MD5, SHA256} {
		t.Run(alg.String(), func(t *testing.T) {
			s, clk := newServer(t)
			ha1 := HA1(alg, "alice", "example.test", "secret")
			ch := s.Challenge(alg, false)
			if err := s.Verify("REGISTER", answer(ch, "alice", "secret", 1), ha1); err != nil {
				t.Fatalf("good credentials: %v", err)
			}
			if err := s.Verify("REGISTER", answer(ch, "alice", "secret", 1), ha1); !errors.Is(err, ErrReplay) {
				t.Fatalf("same nc again: %v", err)
			}
			if err := s.Verify("REGISTER", answer(ch, "alice", "secret", 2), ha1); err != nil {
				t.Fatalf("next nc: %v", err)
			}
			if err := s.Verify("REGISTER", answer(ch, "alice", "wrong", 3), ha1); !errors.Is(err, ErrBadResponse) {
				t.Fatalf("wrong password: %v", err)
			}
			if err := s.Verify("INVITE", answer(ch, "alice", "secret", 4), ha1); !errors.Is(err, ErrBadResponse) {
				t.Fatalf("other method: %v", err)
			}
			clk.add(6 * time.Minute)
			if err := s.Verify("REGISTER", answer(ch, "alice", "secret", 5), ha1); !errors.Is(err, ErrStale) {
				t.Fatalf("old nonce: %v", err)
			}
		})
	}
}

func TestVerifyRejects(t *testing.T) {
	s, _ := newServer(t)
	other, _ := NewServer("example.test", []byte("another secret 16"))
	ha1 := HA1(MD5, "alice", "example.test", "secret")
	tampered := s.Challenge(MD5, false)
	tampered.Nonce = "A" + tampered.Nonce[1:]
	tests := []struct {
		name string
		c    Credentials
		want error
	}{
		{"a tampered nonce", answer(tampered, "alice", "secret", 1), ErrBadNonce},
		{"a nonce from another secret", answer(other.Challenge(MD5, false), "alice", "secret", 1), ErrBadNonce},
		{"a made-up nonce", answer(Challenge{Realm: "example.test", Nonce: "abc", Algorithm: MD5}, "alice", "secret", 1), ErrBadNonce},
		{"another realm", answer(Challenge{Realm: "evil.test", Nonce: s.Challenge(MD5, false).Nonce, Algorithm: MD5}, "alice", "secret", 1), ErrRealm},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.Verify("REGISTER", tt.c, ha1); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("no qop", func(t *testing.T) {
		c := answer(s.Challenge(MD5, false), "alice", "secret", 1)
		c.QOP = ""
		if err := s.Verify("REGISTER", c, ha1); !errors.Is(err, ErrQOP) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestForgottenNoncesFailAsStale(t *testing.T) {
	s, clk := newServer(t, WithMaxNonces(2))
	ha1 := HA1(MD5, "alice", "example.test", "secret")
	var chs []Challenge
	for range 3 {
		chs = append(chs, s.Challenge(MD5, false))
		clk.add(time.Millisecond)
	}
	for _, ch := range chs {
		if err := s.Verify("REGISTER", answer(ch, "alice", "secret", 1), ha1); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Verify("REGISTER", answer(chs[0], "alice", "secret", 1), ha1); !errors.Is(err, ErrStale) {
		t.Fatalf("replay of a forgotten nonce: %v, want stale", err)
	}
}

func TestVerifyConcurrently(t *testing.T) {
	s, _ := newServer(t)
	ha1 := HA1(SHA256, "alice", "example.test", "secret")
	ch := s.Challenge(SHA256, false)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s.Verify("REGISTER", answer(ch, "alice", "secret", 7), ha1) == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
			_ = s.Verify("REGISTER", answer(s.Challenge(SHA256, false), "alice", "secret", uint32(i+1)), ha1)
		}()
	}
	wg.Wait()
	if ok != 1 {
		t.Fatalf("the same nc was accepted %d times", ok)
	}
}

func FuzzParseCredentials(f *testing.F) {
	f.Add(`Digest username="a", realm="r", nonce="n", uri="sip:x", response="0", nc=00000001, qop=auth`)
	f.Add(`Digest a=",b="\"`)
	f.Add(`Digest `)
	f.Fuzz(func(t *testing.T, v string) {
		_, _ = ParseCredentials(v)
	})
}

func BenchmarkVerifyMD5(b *testing.B)    { benchVerify(b, MD5) }
func BenchmarkVerifySHA256(b *testing.B) { benchVerify(b, SHA256) }

func benchVerify(b *testing.B, alg Algorithm) {
	s, _ := newServer(b, WithMaxNonces(1<<20))
	ha1 := HA1(alg, "alice", "example.test", "secret")
	ch := s.Challenge(alg, false)
	var nc uint32
	b.ReportAllocs()
	for b.Loop() {
		nc++
		if err := s.Verify("REGISTER", answer(ch, "alice", "secret", nc), ha1); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseCredentials(b *testing.B) {
	v := `Digest username="alice", realm="example.test", nonce="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", uri="sip:example.test", response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1", algorithm=SHA-256, cnonce="abc", qop=auth, nc=00000001`
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseCredentials(v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkChallenge(b *testing.B) {
	s, _ := newServer(b)
	b.ReportAllocs()
	for b.Loop() {
		_ = s.Challenge(SHA256, false).String()
	}
}
