package registrar_test

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipline/sipline/registrar"
	"github.com/sipline/sipline/registrar/location/memstore"
)

// statelessServer runs a registrar's stateless UDP path on loopback, with
// a reader standing in for sipgo that collects what is passed on.
func statelessServer(t *testing.T) (addr string, passed chan string) {
	t.Helper()
	reg, err := registrar.New(memstore.New(), registrar.WithDomain("example.test", "127.0.0.1"),
		registrar.WithUsers(map[string]registrar.User{"alice": {Password: "alice-secret"}}))
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conn := reg.StatelessUDP(pc)
	passed = make(chan string, 10)
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
	return pc.LocalAddr().String(), passed
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

func crlf(s string) string {
	return strings.ReplaceAll(strings.TrimLeft(s, "\n"), "\n", "\r\n") + "\r\n"
}

func TestStatelessRegisterAnswersRetransmissionsTheSame(t *testing.T) {
	addr, passed := statelessServer(t)
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	local := c.LocalAddr().String()
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
