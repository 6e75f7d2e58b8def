package registrar

import (
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// rawReceiver reads datagrams with blocking recvfrom(2) calls on its own
// duplicate of the SIP socket's descriptor, each reader on its own
// thread, as Kamailio's UDP workers each wait in recvfrom(2) in their
// own process.
//
// Through the runtime's poller, a datagram wakes the thread waiting in
// epoll, which readies a reader goroutine, which needs a P and so often
// another thread; the readers take turns at the descriptor's read lock,
// each turn another wakeup; and a REGISTER handed to a worker waits for
// a thread again. On a 2-core machine where sipp and other tenants hold
// the cores, each of those wakeups can wait for a core: in a runtime
// trace the slowest exchanges waited while no P ran at all, and ours'
// p99 with auth at half Kamailio's maximum was 1.11 times Kamailio's.
// Waiting in the kernel, which wakes one reader per datagram, and
// answering there, it was 0.92 (docs/BENCHMARKS.md, eleventh round).
// It is one wakeup between a datagram and its answer rather than a
// chain of them, not fewer in all: a reader sleeps whenever it finds
// the socket empty (reserve says what that cost, and how it is kept
// down).
// Readers that hand their REGISTERs on to workers did worse this way
// than through the poller (1.61), so StatelessUDP uses a rawReceiver
// only when its readers answer them.
//
// The descriptor's blocking mode belongs to the open socket, not to one
// descriptor: the runtime's own descriptor blocks too. Nothing reads it
// but this receiver; a write through it that finds the send buffer full
// then waits in the kernel rather than in the poller.
//
// A reader cannot be woken by the runtime closing its descriptor: close
// shuts the socket down for reading, which wakes them all, and when the
// socket is closed from outside (the registrar's main closes its
// listeners), a reader finds out within closedPoll.
type rawReceiver struct {
	fd     int
	rc     syscall.RawConn // the runtime's, to tell whether it was closed
	closed atomic.Bool
	once   sync.Once
	procs  int // added to GOMAXPROCS (reserve)
}

// thread locks the calling reader to its thread and puts the thread
// under SCHED_BATCH, until the reader calls the function it returns: woken by a datagram, it waits for the thread
// on the core to use up its turn or sleep, rather than preempting it.
//
// A reader sleeps whenever it finds the socket empty, far more often
// than a Kamailio worker, and Linux lets a thread that has slept preempt
// the one running when it wakes. On a 2-core machine that was sipp's
// thread, over and over: sipp fell behind reading its answers, its
// socket dropped 12,000 to 83,000 of them in a 5 s step at 10,000
// REGISTER/s with auth where Kamailio's steps lost 500 to 17,000, ours'
// steps failed, and ours' maximum fell to 0.83 of Kamailio's in a full
// run. Under SCHED_BATCH: 1,208 lost against Kamailio's 4,856, no
// REGISTER failed (docs/BENCHMARKS.md, eleventh round).
func (r *rawReceiver) thread() (done func()) {
	runtime.LockOSThread()
	// Threads the runtime starts from this one go back to the default
	// policy; if the system refuses the call, the reader runs as any.
	_ = unix.SchedSetAttr(0, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_BATCH, Flags: unix.SCHED_FLAG_RESET_ON_FORK}, 0)
	return func() {
		// The thread may be the process's first, which never ends.
		_ = unix.SchedSetAttr(0, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_NORMAL}, 0)
		runtime.UnlockOSThread()
	}
}

// procsMu orders the receivers' changes to GOMAXPROCS.
var procsMu sync.Mutex

// reserve adds a P to GOMAXPROCS for each of n readers, until release.
//
// A thread in a system call keeps its P, and when no other P is idle the
// runtime's monitor takes it back after 20 µs, and then wakes every
// 20 µs for the next millisecond. With a P per core and a reader
// waiting on each, that happened after nearly every datagram at half
// Kamailio's maximum: without auth, ours spent 94 ms of CPU per 1000
// REGISTERs against 65 through the poller, and its threads slept 2,158
// times against 821. With a P more for each reader, the others stay
// idle, the readers keep theirs, and it was 70 ms (docs/BENCHMARKS.md,
// eleventh round). The cores still run what they can; the Ps only let
// the runtime leave the waiting readers alone.
func (r *rawReceiver) reserve(n int) {
	procsMu.Lock()
	defer procsMu.Unlock()
	runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + n)
	r.procs += n
}

// closedPoll is how long a reader waits in recvfrom(2) before it checks
// whether the socket was closed from outside.
const closedPoll = 250 * time.Millisecond

// newRawReceiver duplicates pc's descriptor and makes the socket
// blocking; it returns nil when pc is no UDP socket, and the readers use
// ReadFrom.
func newRawReceiver(pc net.PacketConn) *rawReceiver {
	sc, ok := pc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	var r *rawReceiver
	_ = rc.Control(func(fd uintptr) {
		if st, err := syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TYPE); err != nil || st != syscall.SOCK_DGRAM {
			return
		}
		dup, err := syscall.Dup(int(fd))
		if err != nil {
			return
		}
		syscall.CloseOnExec(dup)
		tv := syscall.NsecToTimeval(closedPoll.Nanoseconds())
		if syscall.SetsockoptTimeval(dup, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv) != nil || syscall.SetNonblock(dup, false) != nil {
			_ = syscall.Close(dup)
			return
		}
		r = &rawReceiver{fd: dup, rc: rc}
	})
	return r
}

// recv waits for the next datagram and reads it into b. It returns
// net.ErrClosed once the receiver or the socket is closed.
func (r *rawReceiver) recv(b []byte) (int, net.Addr, error) {
	for {
		n, from, err := syscall.Recvfrom(r.fd, b, 0)
		if r.closed.Load() {
			return 0, nil, net.ErrClosed
		}
		switch err {
		case nil:
		case syscall.EAGAIN, syscall.EINTR:
			// The wait timed out: was the socket closed meanwhile?
			if r.rc.Control(func(uintptr) {}) != nil {
				return 0, nil, net.ErrClosed
			}
			continue
		default:
			return 0, nil, &net.OpError{Op: "read", Net: "udp", Err: err}
		}
		var ap netip.AddrPort
		switch sa := from.(type) {
		case *syscall.SockaddrInet4:
			ap = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
		case *syscall.SockaddrInet6:
			a := netip.AddrFrom16(sa.Addr)
			if sa.ZoneId != 0 {
				a = a.WithZone(strconv.Itoa(int(sa.ZoneId)))
			}
			ap = netip.AddrPortFrom(a, uint16(sa.Port))
		default:
			continue // not from an IP peer: nothing to answer
		}
		return n, net.UDPAddrFromAddrPort(ap), nil
	}
}

// close wakes the readers waiting in recvfrom(2), and they return
// net.ErrClosed. The duplicate itself is closed by release, once they
// have.
func (r *rawReceiver) close() {
	r.once.Do(func() {
		r.closed.Store(true)
		// ENOTCONN for a socket never connected, but the readers are
		// woken all the same, and find the socket shut for reading.
		_ = syscall.Shutdown(r.fd, syscall.SHUT_RD)
	})
}

// release closes the duplicate, after the readers have stopped, and
// gives back the Ps reserve added.
func (r *rawReceiver) release() {
	_ = syscall.Close(r.fd)
	procsMu.Lock()
	defer procsMu.Unlock()
	if r.procs > 0 {
		runtime.GOMAXPROCS(max(1, runtime.GOMAXPROCS(0)-r.procs))
		r.procs = 0
	}
}
