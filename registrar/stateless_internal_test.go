package registrar

import (
	"bytes"
	"net"
	"regexp"
	"strconv"
	"testing"

	"github.com/sipline/sipline/registrar/digest"
	"github.com/sipline/sipline/registrar/location/memstore"
)

// sink is a PacketConn that keeps the last datagram written to it.
type sink struct {
	net.PacketConn
	last []byte
}

func (s *sink) WriteTo(b []byte, _ net.Addr) (int, error) {
	s.last = append(s.last[:0], b...)
	return len(b), nil
}

var benchSource = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 9), Port: 5070}

// benchRegister is a REGISTER as sipp sends it in the load test
// (bench/sipp/register_auth.xml), with a fresh branch per request.
func benchRegister(buf []byte, seq int, auth string) []byte {
	buf = append(buf[:0], "REGISTER sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.9:5070;branch=z9hG4bK-"...)
	buf = strconv.AppendInt(buf, int64(seq), 10)
	buf = append(buf, ";rport\r\nFrom: <sip:alice@127.0.0.1>;tag=4242T1\r\nTo: <sip:alice@127.0.0.1>\r\n"+
		"Call-ID: 1-4242@127.0.0.9\r\nCSeq: "...)
	buf = strconv.AppendInt(buf, int64(seq), 10)
	buf = append(buf, " REGISTER\r\nContact: <sip:alice@127.0.0.9:5070>\r\n"...)
	buf = append(buf, auth...)
	buf = append(buf, "Max-Forwards: 70\r\nExpires: 3600\r\nUser-Agent: sipp\r\nContent-Length: 0\r\n\r\n"...)
	return buf
}

var nonceRe = regexp.MustCompile(`nonce="([^"]+)"`)

// BenchmarkStatelessRegister measures the UDP REGISTER path as the load
// test drives it, from the datagram to the bytes written back, without
// the socket: challenge is a REGISTER answered 401; authorized one that
// carries valid MD5 credentials (a new nonce count each time) and is
// answered 200. The store is the in-memory one.
func BenchmarkStatelessRegister(b *testing.B) {
	setup := func(b *testing.B, opts ...Option) (*statelessConn, *sink) {
		opts = append([]Option{WithDomain("127.0.0.1"), WithUsers(map[string]User{"alice": {Password: "alice-secret"}})}, opts...)
		r, err := New(memstore.New(), opts...)
		if err != nil {
			b.Fatal(err)
		}
		s := &sink{}
		return r.newStatelessConn(s), s
	}
	var buf, out []byte
	// plain sends REGISTERs without credentials.
	plain := func(name, want string, opts ...Option) {
		b.Run(name, func(b *testing.B) {
			c, s := setup(b, opts...)
			rq := new(regRequest)
			b.ReportAllocs()
			seq := 0
			for b.Loop() {
				seq++
				buf = benchRegister(buf, seq, "")
				out = c.answerRegister(datagram{data: string(buf), addr: benchSource}, rq, out[:0])
			}
			if string(s.last[:11]) != want {
				b.Fatalf("got %q", s.last)
			}
		})
	}
	plain("challenge", "SIP/2.0 401")
	b.Run("authorized", func(b *testing.B) {
		c, s := setup(b)
		rq := new(regRequest)
		c.answerRegister(datagram{data: string(benchRegister(nil, 0, "")), addr: benchSource}, rq, nil)
		nonce := string(nonceRe.FindSubmatch(s.last)[1])
		ha1 := digest.HA1(digest.MD5, "alice", "127.0.0.1", "alice-secret")
		b.ReportAllocs()
		seq := 0
		for b.Loop() {
			seq++
			nc := strconv.FormatInt(int64(0x10000000+seq), 16)
			resp := digest.Response(digest.MD5, ha1, nonce, nc, "c0ffee", "auth", "REGISTER", "sip:127.0.0.1:5060")
			buf = benchRegister(buf, seq, `Authorization: Digest username="alice",realm="127.0.0.1",nonce="`+nonce+
				`",uri="sip:127.0.0.1:5060",response="`+resp+`",algorithm=MD5,cnonce="c0ffee",qop=auth,nc=`+nc+"\r\n")
			out = c.answerRegister(datagram{data: string(buf), addr: benchSource}, rq, out[:0])
		}
		if string(s.last[:11]) != "SIP/2.0 200" {
			b.Fatalf("got %q", s.last)
		}
	})
	plain("open", "SIP/2.0 200", WithoutAuth())
}

func TestAnswerCache(t *testing.T) {
	a := newAnswerCache()
	if _, seen := a.claim(1, nil); seen {
		t.Fatal("a new key was seen")
	}
	if got, seen := a.claim(1, nil); !seen || got != nil {
		t.Fatalf("a key in progress: got %q, %v; want nothing yet, seen", got, seen)
	}
	a.store(1, []byte("SIP/2.0 200 OK\r\n"))
	if got, seen := a.claim(1, nil); !seen || string(got) != "SIP/2.0 200 OK\r\n" {
		t.Fatalf("got %q, %v", got, seen)
	}
	// Answers past the bound are not kept, and their keys are not left
	// in progress.
	answer := make([]byte, 1000)
	n := uint64(answerGenMax/len(answer) + 2000)
	for k := uint64(10); k < 10+n; k++ {
		a.claim(k, nil)
		answer[0] = byte(k)
		a.store(k, answer)
	}
	if got, seen := a.claim(10, nil); !seen || len(got) != len(answer) || got[0] != 10 {
		t.Fatalf("the first answer: %v", seen)
	}
	if _, seen := a.claim(10+n-1, nil); seen {
		t.Fatal("an answer past the bound was kept")
	}
	if a.cur.size > answerGenMax {
		t.Fatalf("%d bytes kept, bound %d", a.cur.size, answerGenMax)
	}
}

// TestAnswerCacheReusesChunks checks that a generation fills the chunks
// of the one dropped before it, and that idle, the cache lets them go.
func TestAnswerCacheReusesChunks(t *testing.T) {
	a := newAnswerCache()
	swap := func() { a.swapped = a.swapped.Add(-answerTTL); a.expire() }
	fill := func(base uint64) {
		answer := make([]byte, 1000)
		for k := base; k < base+3000; k++ {
			a.claim(k, nil)
			answer[0] = byte(k)
			a.store(k, answer)
		}
	}
	fill(0)
	swap()
	swap() // the first generation's chunks are spare now
	first := len(a.spare)
	if first == 0 {
		t.Fatal("no spare chunks after a full generation was dropped")
	}
	fill(10_000)
	if len(a.spare) != 0 {
		t.Fatalf("%d of %d spare chunks left; a generation of the same size should use them all", len(a.spare), first)
	}
	// A retransmission's answer is a copy, not the chunk's memory.
	got, seen := a.claim(10_001, nil)
	if !seen || got[0] != byte(10_001%256) {
		t.Fatalf("got %v, %v", got[:1], seen)
	}
	swap()
	swap()
	swap()
	if len(a.spare) != 0 || len(a.prev.chunks) != 0 || len(a.cur.chunks) != 0 {
		t.Fatalf("idle, the cache still holds %d spare chunks and %d in use", len(a.spare), len(a.prev.chunks)+len(a.cur.chunks))
	}
	for _, c := range a.spare[:cap(a.spare)] {
		if c != nil {
			t.Fatal("a dropped spare chunk is still referenced")
		}
	}
}

// BenchmarkStatelessInvite measures what the stateless path adds to an
// INVITE over UDP: challenge, an INVITE without credentials answered
// 407 (bench/sipp/call_auth.xml's first); passed, one with credentials,
// passed on to sipgo unread.
func BenchmarkStatelessInvite(b *testing.B) {
	r := newChallenger(b)
	s := &sink{}
	c := r.newStatelessConn(s)
	rd := &reader{}
	for _, bc := range []struct {
		name, raw string
		answered  bool
	}{
		{"challenge", invites["sipp"].raw, true},
		{"passed", invites["sipp with credentials"].raw, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			buf := []byte(bc.raw)
			at := bytes.Index(buf, []byte("z9hG4bK-")) + 8
			var n [9]byte
			b.ReportAllocs()
			seq := 0
			for b.Loop() {
				// A new branch each time, so that the answer cache does
				// not answer it.
				seq++
				copy(buf[at:at+8], strconv.AppendInt(n[:0], int64(100_000_000+seq%100_000_000), 10)[1:])
				if c.challenge(rd, buf, benchSource) != bc.answered {
					b.Fatalf("answered: %v, want %v", !bc.answered, bc.answered)
				}
			}
			if bc.answered && string(s.last[:11]) != "SIP/2.0 407" {
				b.Fatalf("got %q", s.last)
			}
		})
	}
}
