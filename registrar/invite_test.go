package registrar_test

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipline/sipline/registrar"
	"github.com/sipline/sipline/registrar/location"
	"github.com/sipline/sipline/registrar/location/memstore"
)

// callServer runs the registrar's UDP socket on loopback with bob bound
// to callee, and a reader standing in for sipgo that collects what the
// socket passes on.
type callServer struct {
	addr           string
	caller, callee *net.UDPConn
	passed         chan string
}

func newCallServer(t *testing.T, opts ...registrar.Option) *callServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().(*net.UDPAddr)
	s := &callServer{addr: addr.String()}
	for _, c := range []**net.UDPConn{&s.caller, &s.callee} {
		if *c, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { (*c).Close() })
	}
	store := memstore.New()
	callee := s.callee.LocalAddr().String()
	_, err = store.Update(context.Background(), "sip:bob@example.test", func([]location.Binding) ([]location.Binding, error) {
		return []location.Binding{{AOR: "sip:bob@example.test", Contact: "sip:bob@" + callee, Expires: time.Now().Add(time.Hour),
			Transport: "UDP", Source: callee}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	opts = append([]registrar.Option{registrar.WithDomain("example.test", "127.0.0.1"),
		registrar.WithEndpoints(registrar.Endpoint{Transport: "UDP", Host: "127.0.0.1", Port: addr.Port, Local: s.addr}),
		registrar.WithUsers(map[string]registrar.User{"alice": {Password: "alice-secret"}, "bob": {Password: "bob-secret"},
			"carol": {Password: "carol-secret"}})}, opts...)
	reg, err := registrar.New(store, opts...)
	if err != nil {
		t.Fatal(err)
	}
	s.passed = serveStateless(t, reg, pc)
	return s
}

// invite is alice's INVITE to user, with the branch and extra fields
// given.
func (s *callServer) invite(user, branch, extra string) string {
	local := s.caller.LocalAddr().String()
	return crlf("INVITE sip:"+user+"@"+s.addr+" SIP/2.0\nVia: SIP/2.0/UDP "+local+";branch=z9hG4bK-"+branch+";rport\n"+
		"Max-Forwards: 70\nFrom: <sip:alice@example.test>;tag=a-"+branch+"\nTo: <sip:"+user+"@example.test>\n"+
		"Call-ID: call-"+branch+"\nCSeq: 7 INVITE\nContact: <sip:alice@"+local+">\n"+extra+
		"Content-Type: application/sdp\nContent-Length: 4\n") + "v=0\n"
}

// cancel is alice's CANCEL of the INVITE with the branch given.
func (s *callServer) cancel(branch string) string {
	local := s.caller.LocalAddr().String()
	return crlf("CANCEL sip:bob@" + s.addr + " SIP/2.0\nVia: SIP/2.0/UDP " + local + ";branch=z9hG4bK-" + branch + ";rport\n" +
		"Max-Forwards: 70\nFrom: <sip:alice@example.test>;tag=a-" + branch + "\nTo: <sip:bob@example.test>\n" +
		"Call-ID: call-" + branch + "\nCSeq: 7 CANCEL\nContent-Length: 0\n")
}

// ack is alice's ACK for a failure, with the To value given.
func (s *callServer) ack(branch, to string) string {
	local := s.caller.LocalAddr().String()
	return crlf("ACK sip:bob@" + s.addr + " SIP/2.0\nVia: SIP/2.0/UDP " + local + ";branch=z9hG4bK-" + branch + ";rport\n" +
		"Max-Forwards: 70\nFrom: <sip:alice@example.test>;tag=a-" + branch + "\nTo: " + to + "\n" +
		"Call-ID: call-" + branch + "\nCSeq: 7 ACK\nContent-Length: 0\n")
}

// ackAndHush sends alice's ACK for a failure, and checks that the
// failure stops coming: Timer G's sent before the ACK came are let by.
func (s *callServer) ackAndHush(t *testing.T, branch, to string) {
	t.Helper()
	send(t, s.caller, s.addr, s.ack(branch, to))
	for recv(s.caller, 50*time.Millisecond) != "" {
	}
	noneIn(t, s.caller, "alice", 200*time.Millisecond)
}

func send(t *testing.T, c *net.UDPConn, to, msg string) {
	t.Helper()
	ua, err := net.ResolveUDPAddr("udp", to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteTo([]byte(msg), ua); err != nil {
		t.Fatal(err)
	}
}

// recv returns the next datagram c gets within d, or "" if none comes.
func recv(c *net.UDPConn, d time.Duration) string {
	_ = c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 65535)
	n, _, err := c.ReadFrom(buf)
	switch {
	case err != nil:
		return ""
	case n == 0:
		return "(an empty datagram)"
	}
	return string(buf[:n])
}

// mustRecv returns the next datagram c gets, which must begin with start.
// Copies of the datagrams resent are skipped: with T1 at 20 ms, the
// server's retransmission timers fire whenever the test is a little slow.
func mustRecv(t *testing.T, c *net.UDPConn, who, start string, resent ...string) string {
	t.Helper()
	got := recv(c, 2*time.Second)
	for got != "" && slices.Contains(resent, got) {
		got = recv(c, 2*time.Second)
	}
	if !strings.HasPrefix(got, start) {
		t.Fatalf("%s got %q, want %q…", who, got, start)
	}
	return got
}

// answer is bob's response to the request req, with his tag.
func answer(req, status string) string {
	var out strings.Builder
	head, _, _ := strings.Cut(req, "\r\n\r\n")
	out.WriteString("SIP/2.0 " + status + "\r\n")
	for _, line := range strings.Split(head, "\r\n")[1:] {
		name, _, _ := strings.Cut(line, ":")
		switch name {
		case "Via", "From", "Call-ID", "CSeq":
			out.WriteString(line + "\r\n")
		case "To":
			out.WriteString(line + ";tag=b1\r\n")
		}
	}
	out.WriteString("Content-Length: 0\r\n\r\n")
	return out.String()
}

func fieldOf(msg, name string) string {
	head, _, _ := strings.Cut(msg, "\r\n\r\n")
	for _, line := range strings.Split(head, "\r\n") {
		if n, v, _ := strings.Cut(line, ":"); n == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// noneIn checks that c gets nothing for d.
func noneIn(t *testing.T, c *net.UDPConn, who string, d time.Duration) {
	t.Helper()
	if got := recv(c, d); got != "" {
		t.Fatalf("%s got, unexpectedly:\n%s", who, got)
	}
}

var ourBranch = regexp.MustCompile(`^SIP/2.0/UDP 127\.0\.0\.1:\d+;branch=z9hG4bK-sl[0-9a-f]{12}\.t\S+$`)

func TestProxiedInviteIsAnsweredAndRelayed(t *testing.T) {
	s := newCallServer(t)
	inv := s.invite("bob", "c1", "")
	send(t, s.caller, s.addr, inv)
	res := mustRecv(t, s.caller, "alice", "SIP/2.0 407 ")
	authz := authorizedField(t, inv, res)
	inv = s.invite("bob", "c2", authz)
	send(t, s.caller, s.addr, inv)
	mustRecv(t, s.caller, "alice", "SIP/2.0 100 Trying\r\n")
	fwd := mustRecv(t, s.callee, "bob", "INVITE sip:bob@"+s.callee.LocalAddr().String()+" SIP/2.0\r\n")
	lines := strings.Split(fwd[:strings.Index(fwd, "\r\n\r\n")], "\r\n")
	if !ourBranch.MatchString(strings.TrimPrefix(lines[1], "Via: ")) ||
		!strings.HasPrefix(lines[2], "Record-Route: <sip:ft-") || !strings.HasPrefix(lines[3], "Record-Route: <sip:ft-") ||
		!strings.Contains(lines[4], ";rport="+fmt.Sprint(s.caller.LocalAddr().(*net.UDPAddr).Port)) ||
		fieldOf(fwd, "Max-Forwards") != "69" || strings.Contains(fwd, "Proxy-Authorization") || !strings.HasSuffix(fwd, "\r\n\r\nv=0\n") {
		t.Fatalf("bob got:\n%s", fwd)
	}
	// alice retransmits: she gets the 100 again, and bob nothing.
	send(t, s.caller, s.addr, inv)
	mustRecv(t, s.caller, "alice", "SIP/2.0 100 Trying\r\n")
	noneIn(t, s.callee, "bob", 100*time.Millisecond)

	for _, status := range []string{"180 Ringing", "200 OK"} {
		send(t, s.callee, s.addr, answer(fwd, status))
		got := mustRecv(t, s.caller, "alice", "SIP/2.0 "+status+"\r\n")
		if strings.Contains(got, "z9hG4bK-sl") || fieldOf(got, "Via") != strings.TrimPrefix(strings.Split(fwd, "\r\n")[4], "Via: ") {
			t.Fatalf("alice got:\n%s", got)
		}
	}
	// bob retransmits his 200: it goes on too (RFC 6026).
	send(t, s.callee, s.addr, answer(fwd, "200 OK"))
	mustRecv(t, s.caller, "alice", "SIP/2.0 200 OK\r\n")
	// Wrong credentials get a 407 from here, and bob nothing; the
	// INVITE retransmitted gets the same 407, not a second check of
	// the credentials with a new nonce.
	bad := s.invite("bob", "c3", strings.Replace(authz, "response=\"", "response=\"0", 1))
	send(t, s.caller, s.addr, bad)
	refused := mustRecv(t, s.caller, "alice", "SIP/2.0 407 ")
	send(t, s.caller, s.addr, bad)
	if again := mustRecv(t, s.caller, "alice", "SIP/2.0 407 "); again != refused {
		t.Fatalf("the retransmitted INVITE got\n%s\nnot the first 407\n%s", again, refused)
	}
	noneIn(t, s.callee, "bob", 100*time.Millisecond)
	select {
	case m := <-s.passed:
		t.Fatalf("passed on to sipgo:\n%s", m)
	default:
	}
}

// authorizedField is the Proxy-Authorization field, with its line end,
// that answers the 407 in res for alice's INVITE inv.
func authorizedField(t *testing.T, inv, res string) string {
	t.Helper()
	req, err := sip.ParseMessage([]byte(inv))
	if err != nil {
		t.Fatal(err)
	}
	rm, err := sip.ParseMessage([]byte(res))
	if err != nil {
		t.Fatal(err)
	}
	authorize(t, req.(*sip.Request), rm.(*sip.Response), "alice", "alice-secret", "MD5")
	return "Proxy-Authorization: " + req.(*sip.Request).GetHeader("Proxy-Authorization").Value() + "\n"
}

func TestProxiedInviteFailures(t *testing.T) {
	restore := registrar.SetTimerT1(20 * time.Millisecond)
	defer restore()
	s := newCallServer(t, registrar.WithoutAuth())

	t.Run("a failure is ACKed at the proxy and resent to the caller until ACKed", func(t *testing.T) {
		send(t, s.caller, s.addr, s.invite("bob", "f1", ""))
		mustRecv(t, s.caller, "alice", "SIP/2.0 100 ")
		fwd := mustRecv(t, s.callee, "bob", "INVITE ")
		send(t, s.callee, s.addr, answer(fwd, "486 Busy Here"))
		ack := mustRecv(t, s.callee, "bob", "ACK sip:bob@"+s.callee.LocalAddr().String()+" SIP/2.0\r\n", fwd)
		if fieldOf(ack, "Via") != fieldOf(fwd, "Via") || fieldOf(ack, "CSeq") != "7 ACK" || !strings.HasSuffix(fieldOf(ack, "To"), ";tag=b1") {
			t.Fatalf("bob's ACK:\n%s", ack)
		}
		busy := mustRecv(t, s.caller, "alice", "SIP/2.0 486 Busy Here\r\n")
		if again := mustRecv(t, s.caller, "alice", "SIP/2.0 486 "); again != busy {
			t.Fatalf("resent as\n%s\nnot\n%s", again, busy)
		}
		// bob retransmits: he is ACKed again.
		send(t, s.callee, s.addr, answer(fwd, "486 Busy Here"))
		mustRecv(t, s.callee, "bob", "ACK ")
		s.ackAndHush(t, "f1", fieldOf(busy, "To"))
	})

	t.Run("a 503 goes upstream as 500", func(t *testing.T) {
		send(t, s.caller, s.addr, s.invite("bob", "f2", ""))
		mustRecv(t, s.caller, "alice", "SIP/2.0 100 ")
		fwd := mustRecv(t, s.callee, "bob", "INVITE ")
		// A response that could not be ACKed, with no To, is left to
		// sipgo.
		noTo := answer(fwd, "486 Busy Here")
		noTo = noTo[:strings.Index(noTo, "To: ")] + noTo[strings.Index(noTo, "Call-ID: "):]
		send(t, s.callee, s.addr, noTo)
		select {
		case got := <-s.passed:
			if got != noTo {
				t.Fatalf("passed on\n%s", got)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("a 486 with no To was not passed on")
		}
		send(t, s.callee, s.addr, answer(fwd, "503 Service Unavailable"))
		mustRecv(t, s.callee, "bob", "ACK ", fwd)
		res := mustRecv(t, s.caller, "alice", "SIP/2.0 500 Server Internal Error\r\n")
		s.ackAndHush(t, "f2", fieldOf(res, "To"))
	})

	t.Run("a callee that never answers gets retransmissions, the caller a 408", func(t *testing.T) {
		start := time.Now()
		send(t, s.caller, s.addr, s.invite("bob", "f3", ""))
		mustRecv(t, s.caller, "alice", "SIP/2.0 100 ")
		first := mustRecv(t, s.callee, "bob", "INVITE ")
		for i := range 3 {
			if again := mustRecv(t, s.callee, "bob", "INVITE "); again != first {
				t.Fatalf("retransmission %d differs:\n%s", i+1, again)
			}
		}
		res := mustRecv(t, s.caller, "alice", "SIP/2.0 408 Request Timeout\r\n")
		if d := time.Since(start); d < 64*20*time.Millisecond {
			t.Fatalf("408 after %s, before Timer B", d)
		}
		for recv(s.callee, 50*time.Millisecond) != "" {
		}
		// bob answers at last, before alice's ACK: his 200 goes on all
		// the same (RFC 3261 §16.7), and ends the 408's retransmissions.
		send(t, s.callee, s.addr, answer(first, "200 OK"))
		for got := ""; !strings.HasPrefix(got, "SIP/2.0 200 OK\r\n"); {
			if got = recv(s.caller, 2*time.Second); got == "" || !strings.HasPrefix(got, "SIP/2.0 ") {
				t.Fatalf("alice got %q, waiting for bob's 200", got)
			}
		}
		noneIn(t, s.caller, "alice", 200*time.Millisecond)
		send(t, s.caller, s.addr, s.ack("f3", fieldOf(res, "To")))
	})

	t.Run("a CANCEL waits for a provisional response, then goes on", func(t *testing.T) {
		send(t, s.caller, s.addr, s.invite("bob", "f4", ""))
		mustRecv(t, s.caller, "alice", "SIP/2.0 100 ")
		fwd := mustRecv(t, s.callee, "bob", "INVITE ")
		send(t, s.callee, s.addr, answer(fwd, "100 Trying"))
		send(t, s.caller, s.addr, s.cancel("f4"))
		mustRecv(t, s.caller, "alice", "SIP/2.0 200 OK\r\n")
		cancel := mustRecv(t, s.callee, "bob", "CANCEL sip:bob@"+s.callee.LocalAddr().String()+" SIP/2.0\r\n", fwd)
		if fieldOf(cancel, "Via") != fieldOf(fwd, "Via") || fieldOf(cancel, "CSeq") != "7 CANCEL" || fieldOf(cancel, "To") != fieldOf(fwd, "To") {
			t.Fatalf("bob's CANCEL:\n%s", cancel)
		}
		send(t, s.callee, s.addr, answer(cancel, "200 OK"))
		// bob's 487 carries the CANCEL's Via, ours alone, as sipp's
		// [last_Via:] makes it: alice's come from the INVITE.
		send(t, s.callee, s.addr, strings.Replace(answer(cancel, "487 Request Terminated"), "7 CANCEL", "7 INVITE", 1))
		mustRecv(t, s.callee, "bob", "ACK ", fwd, cancel)
		res := mustRecv(t, s.caller, "alice", "SIP/2.0 487 ")
		if fieldOf(res, "Via") != strings.TrimPrefix(strings.Split(fwd, "\r\n")[4], "Via: ") {
			t.Fatalf("alice's 487:\n%s", res)
		}
		send(t, s.caller, s.addr, s.ack("f4", fieldOf(res, "To")))
		noneIn(t, s.callee, "bob", 100*time.Millisecond)
	})

	t.Run("anything else is left to sipgo", func(t *testing.T) {
		for name, raw := range map[string]string{
			"to a user with no binding": s.invite("carol", "f5", ""),
			"to an unknown user":        s.invite("nobody", "f6", ""),
			"with a Route":              s.invite("bob", "f7", "Route: <sip:"+s.addr+";lr>\n"),
			"a CANCEL of nothing here":  s.cancel("f8"),
		} {
			send(t, s.caller, s.addr, raw)
			select {
			case got := <-s.passed:
				if got != raw {
					t.Fatalf("%s: passed on\n%s", name, got)
				}
			case <-time.After(2 * time.Second):
				t.Fatalf("%s: not passed on", name)
			}
		}
	})
}
