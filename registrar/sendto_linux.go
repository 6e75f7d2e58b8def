package registrar

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"syscall"
)

// rawSender sends datagrams with sendto(2) on its own duplicate of the SIP
// socket's descriptor, beside the runtime's poller.
//
// Through net.UDPConn every write takes the descriptor's write lock and
// holds it across the system call. On loopback, sendto(2) delivers the
// datagram and wakes its receiver inside the call, and the kernel may
// switch to that receiver there and then: the writer is descheduled
// holding the lock, and every other writer waits, the socket reader too
// when it relays. A runtime trace at 1,100 calls/s (docs/BENCHMARKS.md)
// had goroutines blocked on that lock for 0.9 s in every 3 s. The kernel
// needs no such lock for UDP: each sendto(2) is one datagram whole.
// Kamailio's workers, separate processes, share a socket the same way.
//
// mu is held for reading across each send, and for writing by close,
// so the duplicate is not closed (and its number reused) under a send.
type rawSender struct {
	mu  sync.RWMutex
	fd  int // -1 when there is none: every datagram takes the locked way
	six bool
}

// newRawSender duplicates pc's descriptor, when pc is a UDP socket or
// wraps one (stunConn).
func newRawSender(pc net.PacketConn) *rawSender {
	s := &rawSender{fd: -1}
	sc, ok := pc.(syscall.Conn)
	if !ok {
		return s
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return s
	}
	_ = rc.Control(func(fd uintptr) {
		sa, err := syscall.Getsockname(int(fd))
		if err != nil {
			return
		}
		dup, err := syscall.Dup(int(fd))
		if err != nil {
			return
		}
		syscall.CloseOnExec(dup)
		_, s.six = sa.(*syscall.SockaddrInet6)
		s.fd = dup
	})
	return s
}

// errLocked means: send it the locked way (net.PacketConn.WriteTo).
var errLocked = errors.New("send through the poller")

// send sends b to dst in one sendto(2). It returns errLocked when it
// cannot, and the caller sends b the locked way: no descriptor, an
// address the socket's family cannot take here, or a full send buffer
// (EAGAIN: the poller waits for room).
func (s *rawSender) send(b []byte, dst netip.AddrPort) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.fd < 0 || !dst.IsValid() || dst.Addr().Zone() != "" {
		return errLocked
	}
	var sa syscall.Sockaddr
	switch a := dst.Addr(); {
	case s.six:
		sa = &syscall.SockaddrInet6{Port: int(dst.Port()), Addr: a.As16()}
	case a.Is4() || a.Is4In6():
		sa = &syscall.SockaddrInet4{Port: int(dst.Port()), Addr: a.Unmap().As4()}
	default:
		return errLocked
	}
	for {
		err := syscall.Sendto(s.fd, b, 0, sa)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return errLocked
		case err != nil:
			return &net.OpError{Op: "write", Net: "udp", Addr: net.UDPAddrFromAddrPort(dst), Err: err}
		}
		return nil
	}
}

// close closes the duplicate; sends after it take the locked way.
func (s *rawSender) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fd >= 0 {
		_ = syscall.Close(s.fd)
		s.fd = -1
	}
}
