package registrar

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"syscall"
	"unsafe"
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

// newRawSender duplicates pc's descriptor, when it has one (rawConn).
func newRawSender(pc net.PacketConn) *rawSender {
	s := &rawSender{fd: -1}
	rc := rawConn(pc)
	if rc == nil {
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

// rawConn is pc's socket, when pc is a UDP socket or wraps one
// (stunConn); nil when there is none.
func rawConn(pc net.PacketConn) syscall.RawConn {
	if sc, ok := pc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			return rc
		}
	}
	return nil
}

// errLocked means: send it the locked way (net.PacketConn.WriteTo).
var errLocked = errors.New("send through the poller")

// send sends b to dst in one sendto(2), which on a non-blocking socket
// never blocks. It returns errLocked when it cannot, and the caller sends
// b the locked way: no descriptor, an address the socket's family cannot
// take here, or a full send buffer (EAGAIN: the poller waits for room).
func (s *rawSender) send(b []byte, dst netip.AddrPort) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var sa rawSockaddr
	size, ok := sa.set(dst, s.six)
	if s.fd < 0 || !ok || len(b) == 0 {
		return errLocked
	}
	for {
		// Raw, beside the runtime's syscall state: rawReader says why.
		_, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, uintptr(s.fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
			syscall.MSG_DONTWAIT, uintptr(unsafe.Pointer(&sa)), size)
		switch e {
		case 0:
			return nil
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return errLocked
		}
		return &net.OpError{Op: "write", Net: "udp", Addr: net.UDPAddrFromAddrPort(dst), Err: os.NewSyscallError("sendto", e)}
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

// rawSockaddr is a socket address as the kernel takes and gives it.
type rawSockaddr struct {
	syscall.RawSockaddrInet6 // the larger of the two; RawSockaddrInet4 fits in it
}

// set writes dst, in the socket's family (IPv6 when six), and returns
// its size; false when the family cannot take it, or dst has a zone.
func (sa *rawSockaddr) set(dst netip.AddrPort, six bool) (uintptr, bool) {
	a := dst.Addr()
	if !dst.IsValid() || a.Zone() != "" {
		return 0, false
	}
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], dst.Port())
	switch {
	case six:
		sa.Family = syscall.AF_INET6
		sa.Addr = a.As16()
		return syscall.SizeofSockaddrInet6, true
	case a.Is4() || a.Is4In6():
		v4 := (*syscall.RawSockaddrInet4)(unsafe.Pointer(sa))
		v4.Family = syscall.AF_INET
		v4.Addr = a.Unmap().As4()
		return syscall.SizeofSockaddrInet4, true
	}
	return 0, false
}

// addrPort reads the address the kernel wrote. An IPv6 zone is the
// interface's index, which net resolves as it does a name.
func (sa *rawSockaddr) addrPort() netip.AddrPort {
	p := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
	switch sa.Family {
	case syscall.AF_INET:
		return netip.AddrPortFrom(netip.AddrFrom4((*syscall.RawSockaddrInet4)(unsafe.Pointer(sa)).Addr), p)
	case syscall.AF_INET6:
		a := netip.AddrFrom16(sa.Addr)
		if sa.Scope_id != 0 {
			a = a.WithZone(strconv.FormatUint(uint64(sa.Scope_id), 10))
		}
		return netip.AddrPortFrom(a, p)
	}
	return netip.AddrPort{}
}

// rawReader reads datagrams with recvfrom(2) made directly, and waits in
// the runtime's poller when the socket is empty.
//
// Through net.UDPConn (and syscall.Sendto) each system call enters the
// runtime's syscall state, and the first one after the process was idle
// wakes the runtime's monitor thread, which then wakes every 20 µs for a
// millisecond or more. Under a steady load with idle gaps between
// datagrams that was most of the time: at 11,250 REGISTER/s without auth,
// perf put 13% of ours' CPU in the monitor, and its wakeups took turns
// with the readers on a 2-core machine shared with sipp
// (docs/BENCHMARKS.md, thirteenth round). recvfrom(2) with MSG_DONTWAIT
// and sendto(2) on a non-blocking socket return at once, so they need no
// syscall state.
type rawReader struct {
	rc    syscall.RawConn
	buf   []byte
	n     int
	from  rawSockaddr
	errno syscall.Errno
	try   func(fd uintptr) bool // one recvfrom(2); false when the socket is empty
	stun  *stunConn             // answers STUN, as its ReadFrom would; nil when pc is no stunConn
}

// newRawReader reads pc's socket into buf; nil when pc has none.
func newRawReader(pc net.PacketConn, buf []byte) *rawReader {
	rc := rawConn(pc)
	if rc == nil {
		return nil
	}
	r := &rawReader{rc: rc, buf: buf}
	if sc, ok := pc.(stunConn); ok {
		r.stun = &sc
	}
	r.try = func(fd uintptr) bool {
		for {
			size := uint32(unsafe.Sizeof(r.from))
			n, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&r.buf[0])), uintptr(len(r.buf)),
				syscall.MSG_DONTWAIT, uintptr(unsafe.Pointer(&r.from)), uintptr(unsafe.Pointer(&size)))
			switch e {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false
			}
			r.n, r.errno = int(n), e
			return true
		}
	}
	return r
}

// readFrom returns the next datagram's length and source, as
// pc.ReadFrom does, STUN Binding requests answered when pc answers them.
func (r *rawReader) readFrom() (int, net.Addr, error) {
	for {
		if err := r.rc.Read(r.try); err != nil {
			return 0, nil, err
		}
		if r.errno != 0 {
			return 0, nil, &net.OpError{Op: "read", Net: "udp", Err: os.NewSyscallError("recvfrom", r.errno)}
		}
		from := net.UDPAddrFromAddrPort(r.from.addrPort())
		if r.stun == nil || !r.stun.answered(r.buf[:r.n], from) {
			return r.n, from, nil
		}
	}
}
