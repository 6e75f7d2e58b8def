package registrar_test

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipline/sipline/registrar"
	"github.com/sipline/sipline/registrar/location"
	"github.com/sipline/sipline/registrar/location/memstore"
)

// statelessServer runs a registrar's stateless UDP path on loopback, with
// a reader standing in for sipgo that collects what is passed on.
func statelessServer(t *testing.T, opts ...registrar.Option) (addr string, passed chan string) {
	t.Helper()
	return statelessServerOn(t, memstore.New(), opts...)
}

// statelessServerOn is statelessServer with the bindings in store.
func statelessServerOn(t *testing.T, store location.Store, opts ...registrar.Option) (addr string, passed chan string) {
	t.Helper()
	opts = append([]registrar.Option{registrar.WithDomain("example.test", "127.0.0.1"),
		registrar.WithUsers(map[string]registrar.User{"alice": {Password: "alice-secret"}})}, opts...)
	reg, err := registrar.New(store, opts...)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return pc.LocalAddr().String(), serveStateless(t, reg, pc)
}

// serveStateless runs reg's stateless path on pc, with a reader standing
// in for sipgo that collects what is passed on.
func serveStateless(t *testing.T, reg *registrar.Registrar, pc net.PacketConn) chan string {
	conn := reg.StatelessUDP(pc)
	passed := make(chan string, 10)
	go func() {
		buf := make([]byte, 65535)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			passed <- string(buf[:n])
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return passed
}

// exchange sends raw and returns the response.
func exchange(t *testing.T, c net.Conn, raw string) *sip.Response {
	t.Helper()
	if _, err := c.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	msg, err := sip.ParseMessage(bytes.Clone(buf[:n]))
	if err != nil {
		t.Fatalf("parse %q: %v", buf[:n], err)
	}
	return msg.(*sip.Response)
}

// dial connects to addr over UDP for the rest of the test, and returns
// the connection and its local address.
func dial(t *testing.T, addr string) (net.Conn, string) {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, c.LocalAddr().String()
}

// passedOn sends raw on c, then an OPTIONS, and reports whether raw came
// out of the reader (passed) by the time the OPTIONS did, or soon after:
// several goroutines read the socket, so the OPTIONS may overtake it.
func passedOn(t *testing.T, c net.Conn, passed chan string, raw string) bool {
	t.Helper()
	local := c.LocalAddr().String()
	opts := crlf("OPTIONS sip:example.test SIP/2.0\nVia: SIP/2.0/UDP " + local + ";branch=z9hG4bK-o\nMax-Forwards: 70\n" +
		"From: <sip:alice@example.test>;tag=o\nTo: <sip:example.test>\nCall-ID: opts\nCSeq: 1 OPTIONS\nContent-Length: 0\n")
	for _, m := range []string{raw, opts} {
		if _, err := c.Write([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	found, optsSeen := false, false
	deadline := time.After(2 * time.Second)
	for !found || !optsSeen {
		var grace <-chan time.Time
		if optsSeen {
			grace = time.After(200 * time.Millisecond)
		}
		select {
		case got := <-passed:
			found = found || got == raw
			optsSeen = optsSeen || strings.HasPrefix(got, "OPTIONS ")
		case <-grace:
			return found
		case <-deadline:
			if !optsSeen {
				t.Fatal("the OPTIONS was not passed on")
			}
			return found
		}
	}
	return found
}

func crlf(s string) string {
	return strings.ReplaceAll(strings.TrimLeft(s, "\n"), "\n", "\r\n") + "\r\n"
}

// waitingStore hides its Store's location.Immediate, as a store that may
// wait (boltstore) lacks it: the registrar then hands REGISTERs to its
// workers rather than answering them on the reader.
type waitingStore struct{ location.Store }

// TestStatelessRegisterAnswersRetransmissionsTheSame runs on both paths
// of a REGISTER: answered on the reader, with the memory store, and by a
// worker, with a store that may wait.
func TestStatelessRegisterAnswersRetransmissionsTheSame(t *testing.T) {
	for name, store := range map[string]location.Store{"reader": memstore.New(), "workers": waitingStore{memstore.New()}} {
		t.Run(name, func(t *testing.T) { testRetransmissions(t, store) })
	}
}

func testRetransmissions(t *testing.T, store location.Store) {
	addr, passed := statelessServerOn(t, store)
	c, local := dial(t, addr)
	reg := func(branch, cseq, authz string) string {
		return crlf("REGISTER sip:example.test SIP/2.0\nVia: SIP/2.0/UDP " + local + ";branch=z9hG4bK-" + branch + ";rport\n" +
			"Max-Forwards: 70\nFrom: <sip:alice@example.test>;tag=a\nTo: <sip:alice@example.test>\nCall-ID: st-1\n" +
			"CSeq: " + cseq + " REGISTER\nContact: <sip:alice@" + local + ">\n" + authz + "Content-Length: 0\n")
	}
	res := exchange(t, c, reg("b1", "1", ""))
	if res.StatusCode != 401 {
		t.Fatalf("got %d, want 401", res.StatusCode)
	}
	if via := res.Via(); via.Params.GetOr("rport", "") == "" || via.Params.GetOr("received", "") != "127.0.0.1" {
		t.Errorf("the answer's Via lacks rport and received: %s", via.Value())
	}
	// Its retransmission gets the same challenge, not another nonce.
	if again := exchange(t, c, reg("b1", "1", "")); again.String() != res.String() {
		t.Fatalf("the retransmitted REGISTER got\n%s\nwant the first challenge\n%s", again, res)
	}
	req, err := sip.ParseMessage([]byte(reg("b2", "2", "")))
	if err != nil {
		t.Fatal(err)
	}
	authorize(t, req.(*sip.Request), res, "alice", "alice-secret", "MD5")
	authz := "Authorization: " + req.(*sip.Request).GetHeader("Authorization").Value() + "\n"
	first := exchange(t, c, reg("b2", "2", authz))
	if first.StatusCode != 200 {
		t.Fatalf("got %d %s, want 200", first.StatusCode, first.Reason)
	}
	// The 200 was lost, say: the UA sends the same REGISTER again. A
	// second run would see its nonce count replayed; it must get the 200.
	again := exchange(t, c, reg("b2", "2", authz))
	if again.String() != first.String() {
		t.Fatalf("the retransmission got\n%s\nwant the first answer\n%s", again, first)
	}
	// A new REGISTER with the same credentials is a replay.
	if replay := exchange(t, c, reg("b3", "3", authz)); replay.StatusCode != 401 {
		t.Fatalf("a replayed nonce count got %d, want 401", replay.StatusCode)
	}
	// Everything else goes on to sipgo.
	opts := crlf("OPTIONS sip:example.test SIP/2.0\nVia: SIP/2.0/UDP " + local + ";branch=z9hG4bK-o1\nMax-Forwards: 70\n" +
		"From: <sip:alice@example.test>;tag=o\nTo: <sip:example.test>\nCall-ID: st-2\nCSeq: 1 OPTIONS\nContent-Length: 0\n")
	if _, err := c.Write([]byte(opts)); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-passed:
		if !strings.HasPrefix(got, "OPTIONS ") {
			t.Fatalf("passed on %q", got)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the OPTIONS was not passed on")
	}
}

// The stateless path writes its answers by hand, copying header fields
// from the request: they must come out as RFC 3261 and 3581 say, in
// whatever form the request had them.
func TestStatelessAnswersAreWellFormed(t *testing.T) {
	addr, _ := statelessServer(t, registrar.WithoutAuth())
	c, local := dial(t, addr)
	_, port, _ := net.SplitHostPort(local)

	t.Run("compact forms, several Vias, no rport", func(t *testing.T) {
		// Compact header names; the top Via's sent-by is a host name, so
		// it gets received but no rport; the Vias below stay as they are.
		res := exchange(t, c, crlf("REGISTER sip:example.test SIP/2.0\n"+
			"v: SIP/2.0/UDP ua.example.test:"+port+";branch=z9hG4bK-c1 , SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-p1\n"+
			"Via: SIP/2.0/UDP 10.0.0.2:5062;branch=z9hG4bK-p2;received=10.9.9.9\n"+
			"f: <sip:alice@example.test>;tag=c\nt: \"Alice\" <sip:alice@example.test>\ni: st-c1\nCSeq: 7 REGISTER\n"+
			"m: <sip:alice@"+local+">;expires=120\nl: 0\n"))
		if res.StatusCode != 200 {
			t.Fatalf("got %d %s", res.StatusCode, res.Reason)
		}
		vias := res.GetHeaders("Via")
		var got []string
		for _, h := range vias {
			for _, v := range strings.Split(h.Value(), ",") {
				got = append(got, strings.TrimSpace(v))
			}
		}
		want := []string{
			"SIP/2.0/UDP ua.example.test:" + port + ";branch=z9hG4bK-c1;received=127.0.0.1",
			"SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-p1",
			"SIP/2.0/UDP 10.0.0.2:5062;branch=z9hG4bK-p2;received=10.9.9.9",
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("Vias\n%q\nwant\n%q", got, want)
		}
		if tag, _ := res.To().Params.Get("tag"); tag == "" || res.To().DisplayName != "Alice" {
			t.Errorf("To %q: want the display name kept and a tag", res.To().Value())
		}
		if tag, _ := res.From().Params.Get("tag"); tag != "c" {
			t.Errorf("From %q", res.From().Value())
		}
		if res.CallID().Value() != "st-c1" || res.CSeq().SeqNo != 7 || res.CSeq().MethodName != sip.REGISTER {
			t.Errorf("Call-ID %q, CSeq %q", res.CallID().Value(), res.CSeq().Value())
		}
		if got := contactsOf(res); len(got) != 1 || got[0] != "<sip:alice@"+local+">;expires=120" {
			t.Errorf("Contact %q", got)
		}
		if d := res.GetHeader("Date"); d == nil || !strings.HasSuffix(d.Value(), " GMT") {
			t.Errorf("Date %v: want an rfc1123-date in GMT", d)
		}
	})
	t.Run("refusal with its own header, rport", func(t *testing.T) {
		res := exchange(t, c, crlf("REGISTER sip:example.test SIP/2.0\n"+
			"Via: SIP/2.0/UDP 127.0.0.1:1;rport;branch=z9hG4bK-c2\nFrom: <sip:alice@example.test>;tag=c\n"+
			"To: <sip:alice@example.test>;tag=already\nCall-ID: st-c2\nCSeq: 1 REGISTER\n"+
			"Contact: <sip:alice@"+local+">;expires=5\nContent-Length: 0\n"))
		if res.StatusCode != 423 || res.GetHeader("Min-Expires") == nil {
			t.Fatalf("got %d %s, Min-Expires %v: want 423 with Min-Expires", res.StatusCode, res.Reason, res.GetHeader("Min-Expires"))
		}
		if v := res.Via().Value(); v != "SIP/2.0/UDP 127.0.0.1:1;rport="+port+";branch=z9hG4bK-c2;received=127.0.0.1" {
			t.Errorf("Via %q", v)
		}
		if tag, _ := res.To().Params.Get("tag"); tag != "already" || len(res.GetHeaders("To")) != 1 {
			t.Errorf("To %q: want the request's tag only", res.To().Value())
		}
	})
	t.Run("a folded header", func(t *testing.T) {
		// Line folding (RFC 3261 §7.3.1) is left to sipgo to parse and
		// to render, on the same path.
		res := exchange(t, c, crlf("REGISTER sip:example.test SIP/2.0\n"+
			"Via: SIP/2.0/UDP 127.0.0.1:"+port+";branch=z9hG4bK-c3\nFrom: <sip:alice@example.test>;tag=c\n"+
			"To: <sip:alice@example.test>\nCall-ID: st-c3\nCSeq: 1 REGISTER\nSubject: one\n two\n"+
			"Contact: <sip:alice@"+local+">\nContent-Length: 0\n"))
		if res.StatusCode != 200 || res.CallID().Value() != "st-c3" {
			t.Fatalf("got %d %s, Call-ID %v", res.StatusCode, res.Reason, res.CallID())
		}
	})
}

func contactsOf(res *sip.Response) []string {
	var out []string
	for _, h := range res.GetHeaders("Contact") {
		out = append(out, h.Value())
	}
	return out
}

// An INVITE that the proxy would only challenge is answered 407 on the
// stateless path, and the ACK to that 407 ends there; any other INVITE,
// and any other ACK, goes on to sipgo.
func TestStatelessChallengesInvites(t *testing.T) {
	addr, passed := statelessServer(t)
	c, local := dial(t, addr)
	invite := func(branch, from, to, extra string) string {
		return crlf("INVITE sip:bob@example.test SIP/2.0\nVia: SIP/2.0/UDP " + local + ";branch=z9hG4bK-" + branch + ";rport\n" +
			"Max-Forwards: 70\nFrom: <sip:" + from + ">;tag=a\nTo: " + to + "\nCall-ID: inv-" + branch + "\n" +
			"CSeq: 1 INVITE\nContact: <sip:alice@" + local + ">\n" + extra + "Content-Length: 0\n")
	}
	inv := invite("i1", "alice@example.test", "<sip:bob@example.test>", "")
	res := exchange(t, c, inv)
	if res.StatusCode != 407 || res.GetHeader("Proxy-Authenticate") == nil {
		t.Fatalf("got %d %s: want 407 with Proxy-Authenticate", res.StatusCode, res.Reason)
	}
	tag, _ := res.To().Params.Get("tag")
	if via := res.Via(); tag == "" || via.Params.GetOr("received", "") != "127.0.0.1" || res.CSeq().MethodName != sip.INVITE {
		t.Fatalf("407 with To %q, Via %q, CSeq %q", res.To().Value(), via.Value(), res.CSeq().Value())
	}
	if again := exchange(t, c, inv); again.String() != res.String() {
		t.Fatalf("the retransmitted INVITE got\n%s\nwant the first 407\n%s", again, res)
	}
	// A transaction is its branch and its method (RFC 3261 §17.2.3): a
	// REGISTER reusing the branch is not a retransmission of the INVITE.
	reg := crlf("REGISTER sip:example.test SIP/2.0\nVia: SIP/2.0/UDP " + local + ";branch=z9hG4bK-i1;rport\n" +
		"Max-Forwards: 70\nFrom: <sip:alice@example.test>;tag=a\nTo: <sip:alice@example.test>\nCall-ID: inv-i1\n" +
		"CSeq: 2 REGISTER\nContact: <sip:alice@" + local + ">\nContent-Length: 0\n")
	if got := exchange(t, c, reg); got.StatusCode != 401 {
		t.Fatalf("a REGISTER with the INVITE's branch got %d, want its own 401", got.StatusCode)
	}
	ack := crlf("ACK sip:bob@example.test SIP/2.0\nVia: SIP/2.0/UDP " + local + ";branch=z9hG4bK-i1;rport\nMax-Forwards: 70\n" +
		"From: <sip:alice@example.test>;tag=a\nTo: <sip:bob@example.test>;tag=" + tag + "\nCall-ID: inv-i1\nCSeq: 1 ACK\nContent-Length: 0\n")
	if passedOn(t, c, passed, ack) {
		t.Error("the ACK to the stateless 407 was passed on")
	}
	if !passedOn(t, c, passed, strings.Replace(ack, ";tag="+tag, ";tag=theirs", 1)) {
		t.Error("an ACK with another To tag was absorbed")
	}

	req, err := sip.ParseMessage([]byte(invite("i2", "alice@example.test", "<sip:bob@example.test>", "")))
	if err != nil {
		t.Fatal(err)
	}
	authorize(t, req.(*sip.Request), res, "alice", "alice-secret", "MD5")
	authz := "Proxy-Authorization: " + req.(*sip.Request).GetHeader("Proxy-Authorization").Value() + "\n"
	for name, raw := range map[string]string{
		"with credentials":    invite("i2", "alice@example.test", "<sip:bob@example.test>", authz),
		"in a dialog":         invite("i3", "alice@example.test", "<sip:bob@example.test>;tag=b", ""),
		"from another domain": invite("i4", "carol@elsewhere.test", "<sip:bob@example.test>", ""),
		"with a route":        invite("i5", "alice@example.test", "<sip:bob@example.test>", "Route: <sip:127.0.0.1;lr>\n"),
	} {
		if !passedOn(t, c, passed, raw) {
			t.Errorf("an INVITE %s was not passed on", name)
		}
	}

	addr, passed = statelessServer(t, registrar.WithoutAuth())
	c, local = dial(t, addr)
	if !passedOn(t, c, passed, invite("i6", "alice@example.test", "<sip:bob@example.test>", "")) {
		t.Error("with auth off, an INVITE was not passed on")
	}
}
