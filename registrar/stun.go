package registrar

import (
	"encoding/binary"
	"errors"
	"net"
	"syscall"
)

// AnswerSTUN wraps the UDP SIP socket so it answers STUN Binding requests,
// the keepalives of RFC 5626 §4.4.2 that outbound UAs send on UDP, and
// hands everything else to sipgo. It is written here rather than imported:
// a Binding response with XOR-MAPPED-ADDRESS (RFC 5389 §15.2) is a few
// lines, and sits on the read path of every datagram.
func AnswerSTUN(pc net.PacketConn) net.PacketConn { return stunConn{pc} }

type stunConn struct{ net.PacketConn }

// SyscallConn is the socket's, for the raw writes of StatelessUDP.
func (c stunConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.PacketConn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.New("not a socket")
}

const stunCookie = 0x2112A442

func (c stunConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(b)
		if err != nil || !c.answered(b[:n], addr) {
			return n, addr, err
		}
	}
}

// answered answers p if it is a STUN Binding request, and reports
// whether it was one.
func (c stunConn) answered(p []byte, from net.Addr) bool {
	if !isSTUNBinding(p) {
		return false
	}
	if ua, ok := from.(*net.UDPAddr); ok {
		_, _ = c.WriteTo(stunResponse(p, ua), from)
	}
	return true
}

// isSTUNBinding reports whether p is a STUN Binding request. SIP starts
// with a letter, so the two cannot be confused.
func isSTUNBinding(p []byte) bool {
	return len(p) >= 20 && binary.BigEndian.Uint16(p[0:2]) == 0x0001 &&
		binary.BigEndian.Uint32(p[4:8]) == stunCookie
}

// stunResponse is the Binding success response to req, telling the
// sender its address as we see it.
func stunResponse(req []byte, from *net.UDPAddr) []byte {
	ip, family := from.IP.To4(), byte(1)
	if ip == nil {
		ip, family = from.IP.To16(), 2
	}
	out := make([]byte, 20+4+4+len(ip))
	binary.BigEndian.PutUint16(out[0:], 0x0101)
	binary.BigEndian.PutUint16(out[2:], uint16(4+4+len(ip)))
	copy(out[4:20], req[4:20]) // cookie and transaction ID
	a := out[20:]
	binary.BigEndian.PutUint16(a[0:], 0x0020) // XOR-MAPPED-ADDRESS
	binary.BigEndian.PutUint16(a[2:], uint16(4+len(ip)))
	a[5] = family
	binary.BigEndian.PutUint16(a[6:], uint16(from.Port)^(stunCookie>>16))
	for i := range ip {
		a[8+i] = ip[i] ^ req[4+i] // cookie, then transaction ID for IPv6
	}
	return out
}
