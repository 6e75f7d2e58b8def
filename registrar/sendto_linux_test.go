package registrar

import (
	"net"
	"testing"
	"time"

	"github.com/sipline/sipline/registrar/location/memstore"
)

// TestRawSend checks that the SIP socket's writes go out by sendto(2) on
// its own descriptor and come from the socket's address, over IPv4 and
// IPv6 loopback, through the STUN wrapper too; and that once the duplicate is
// closed, or where there is no socket, they go the locked way and still
// arrive.
func TestRawSend(t *testing.T) {
	for _, tc := range []struct{ network, sip, peer string }{
		{"udp4", "127.0.0.1:0", "127.0.0.1:0"},
		{"udp6", "[::1]:0", "[::1]:0"},
	} {
		t.Run(tc.sip, func(t *testing.T) {
			pc, err := net.ListenPacket(tc.network, tc.sip)
			if err != nil {
				t.Skipf("no %s socket here: %v", tc.network, err)
			}
			defer pc.Close()
			peer, err := net.ListenPacket("udp", tc.peer)
			if err != nil {
				t.Fatal(err)
			}
			defer peer.Close()
			r, err := New(memstore.New(), WithDomain("127.0.0.1"))
			if err != nil {
				t.Fatal(err)
			}
			c := r.newStatelessConn(AnswerSTUN(pc))
			if c.raw.fd < 0 {
				t.Fatal("no descriptor of its own: writes would take the runtime's lock")
			}
			port := pc.LocalAddr().(*net.UDPAddr).Port
			expect := func(what string) {
				t.Helper()
				msg := []byte("OPTIONS " + what)
				if _, err := c.WriteTo(msg, peer.LocalAddr()); err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				buf := make([]byte, 100)
				_ = peer.SetReadDeadline(time.Now().Add(2 * time.Second))
				n, from, err := peer.ReadFrom(buf)
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				if string(buf[:n]) != string(msg) || from.(*net.UDPAddr).Port != port {
					t.Fatalf("%s: %q from %v, want %q from port %d", what, buf[:n], from, msg, port)
				}
			}
			expect("raw")
			c.raw.close()
			if c.raw.fd != -1 {
				t.Fatal("the duplicate is still open")
			}
			expect("locked")
		})
	}
	s := newRawSender(&sink{})
	if s.fd != -1 {
		t.Fatalf("a PacketConn with no socket got descriptor %d", s.fd)
	}
}
