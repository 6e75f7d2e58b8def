package registrar

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"syscall"
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

// TestRawSockaddr checks the socket addresses written for sendto(2) and
// read back as recvfrom(2) gives them.
func TestRawSockaddr(t *testing.T) {
	for _, tc := range []struct {
		dst  string
		six  bool
		want string // "" when the socket's family cannot take dst
	}{
		{"127.0.0.1:5060", false, "127.0.0.1:5060"},
		{"[::ffff:127.0.0.1]:5060", false, "127.0.0.1:5060"},
		{"127.0.0.1:5060", true, "[::ffff:127.0.0.1]:5060"},
		{"[2001:db8::1]:65535", true, "[2001:db8::1]:65535"},
		{"[2001:db8::1]:5060", false, ""},
		{"[fe80::1%eth0]:5060", true, ""},
	} {
		var sa rawSockaddr
		size, ok := sa.set(netip.MustParseAddrPort(tc.dst), tc.six)
		if got := sa.addrPort().String(); ok != (tc.want != "") || ok && got != tc.want {
			t.Errorf("%s (IPv6 socket %t): %s, %t; want %q", tc.dst, tc.six, got, ok, tc.want)
		}
		want := uintptr(syscall.SizeofSockaddrInet4)
		if tc.six {
			want = syscall.SizeofSockaddrInet6
		}
		if ok && size != want {
			t.Errorf("%s: size %d, want %d", tc.dst, size, want)
		}
	}
	// The kernel gives a link-local source its interface's index.
	var sa rawSockaddr
	sa.set(netip.MustParseAddrPort("[fe80::1]:5060"), true)
	sa.Scope_id = 3
	if got := sa.addrPort().String(); got != "[fe80::1%3]:5060" {
		t.Errorf("link-local source read as %s", got)
	}
}

// TestRawRead checks the readers' recvfrom(2) over IPv4 and IPv6
// loopback: what sipgo gets comes with its sender's address, a STUN
// Binding request is answered with the sender's port, and once the socket
// is closed sipgo's read ends with net.ErrClosed.
func TestRawRead(t *testing.T) {
	for _, tc := range []struct{ network, sip string }{
		{"udp4", "127.0.0.1:0"},
		{"udp6", "[::1]:0"},
	} {
		t.Run(tc.sip, func(t *testing.T) {
			pc, err := net.ListenPacket(tc.network, tc.sip)
			if err != nil {
				t.Skipf("no %s socket here: %v", tc.network, err)
			}
			r, err := New(memstore.New(), WithDomain("127.0.0.1"))
			if err != nil {
				t.Fatal(err)
			}
			if newRawReader(AnswerSTUN(pc), make([]byte, 1)) == nil {
				t.Fatal("no raw reader for a UDP socket")
			}
			conn := r.StatelessUDP(AnswerSTUN(pc))
			defer conn.Close()
			peer, err := net.DialUDP(tc.network, nil, pc.LocalAddr().(*net.UDPAddr))
			if err != nil {
				t.Fatal(err)
			}
			defer peer.Close()
			from := peer.LocalAddr().(*net.UDPAddr)

			stun := make([]byte, 20)
			binary.BigEndian.PutUint16(stun[0:], 0x0001)
			binary.BigEndian.PutUint32(stun[4:], stunCookie)
			copy(stun[8:], "raw-read-txn")
			if _, err := peer.Write(stun); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 100)
			_ = peer.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, err := peer.Read(buf)
			if err != nil {
				t.Fatalf("no STUN answer: %v", err)
			}
			if want := stunResponse(stun, from); string(buf[:n]) != string(want) {
				t.Fatalf("STUN answer % x, want % x", buf[:n], want)
			}

			msg := "OPTIONS sip:127.0.0.1 SIP/2.0\r\n\r\n"
			if _, err := peer.Write([]byte(msg)); err != nil {
				t.Fatal(err)
			}
			n, addr, err := conn.ReadFrom(buf)
			if err != nil || string(buf[:n]) != msg || addr.String() != from.String() {
				t.Fatalf("sipgo read %q from %v (%v), want %q from %v", buf[:n], addr, err, msg, from)
			}

			pc.Close()
			if _, _, err := conn.ReadFrom(buf); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("after close sipgo read %v, want net.ErrClosed", err)
			}
		})
	}
}
