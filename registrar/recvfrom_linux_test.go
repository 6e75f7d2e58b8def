package registrar

import (
	"encoding/binary"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sipline/sipline/registrar/location/memstore"
)

// TestRawReceive checks that the SIP socket's readers wait in recvfrom(2)
// on a descriptor of their own, over IPv4 and IPv6 loopback, through the
// STUN wrapper: a REGISTER is answered by a reader, a STUN Binding request
// gets the sender's address back, and an OPTIONS comes out of ReadFrom
// with it, while each reader's thread is under SCHED_BATCH and GOMAXPROCS
// has a P more for each reader. Then that the readers stop, their
// threads end, ReadFrom fails and the Ps are given back, when the conn
// is closed, and when the socket under it is closed from outside, as the
// registrar's main closes its listeners.
func TestRawReceive(t *testing.T) {
	for _, network := range []string{"udp4", "udp6"} {
		for _, closing := range []string{"conn", "socket"} {
			t.Run(network+"/"+closing, func(t *testing.T) {
				local := map[string]string{"udp4": "127.0.0.1:0", "udp6": "[::1]:0"}[network]
				pc, err := net.ListenPacket(network, local)
				if err != nil {
					t.Skipf("no %s socket here: %v", network, err)
				}
				defer pc.Close()
				peer, err := net.ListenPacket(network, local)
				if err != nil {
					t.Fatal(err)
				}
				defer peer.Close()
				r, err := New(memstore.New(), WithDomain("127.0.0.1"), WithoutAuth())
				if err != nil {
					t.Fatal(err)
				}
				procs, batch := runtime.GOMAXPROCS(0), batchThreads(t)
				conn := r.StatelessUDP(AnswerSTUN(pc))
				if c := conn.(*statelessConn); c.recv == nil || !c.inline {
					t.Fatalf("readers through the poller (%v), or REGISTERs to workers (inline %t), for a memory store", c.recv == nil, c.inline)
				}
				if n := batchThreads(t); n < batch+readers {
					// Each reader's first act; a REGISTER is answered below
					// only once one has run, so wait for all of them here.
					deadline := time.Now().Add(2 * time.Second)
					for ; n < batch+readers && time.Now().Before(deadline); n = batchThreads(t) {
						time.Sleep(10 * time.Millisecond)
					}
					if n != batch+readers {
						t.Fatalf("%d threads under SCHED_BATCH with the readers waiting, want %d", n, batch+readers)
					}
				}
				if got := runtime.GOMAXPROCS(0); got != procs+readers {
					t.Fatalf("GOMAXPROCS %d with the readers waiting, want %d and one per reader, %d", got, procs, procs+readers)
				}
				from := peer.LocalAddr().(*net.UDPAddr)
				ask := func(what string, msg []byte) []byte {
					t.Helper()
					if _, err := peer.WriteTo(msg, pc.LocalAddr()); err != nil {
						t.Fatalf("%s: %v", what, err)
					}
					buf := make([]byte, 2048)
					_ = peer.SetReadDeadline(time.Now().Add(2 * time.Second))
					n, _, err := peer.ReadFrom(buf)
					if err != nil {
						t.Fatalf("%s: no answer: %v", what, err)
					}
					return buf[:n]
				}

				res := string(ask("REGISTER", []byte("REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP "+from.String()+";branch=z9hG4bK-raw;rport\r\n"+
					"Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=a\r\nTo: <sip:alice@127.0.0.1>\r\nCall-ID: raw\r\nCSeq: 1 REGISTER\r\n"+
					"Contact: <sip:alice@"+from.String()+">\r\nExpires: 60\r\nContent-Length: 0\r\n\r\n")))
				if !strings.HasPrefix(res, "SIP/2.0 200 ") || !strings.Contains(res, "rport="+strconv.Itoa(from.Port)) {
					t.Fatalf("REGISTER answered with\n%s", res)
				}

				stun := make([]byte, 20)
				binary.BigEndian.PutUint16(stun[0:], 0x0001)
				binary.BigEndian.PutUint32(stun[4:], stunCookie)
				copy(stun[8:], "rawreceive!!")
				b := ask("STUN Binding", stun)
				if len(b) < 28 || binary.BigEndian.Uint16(b) != 0x0101 || int(binary.BigEndian.Uint16(b[26:])^(stunCookie>>16)) != from.Port {
					t.Fatalf("STUN Binding answered with % x, want the port %d mapped", b, from.Port)
				}

				type read struct {
					data string
					from net.Addr
					err  error
				}
				reads := make(chan read, 1)
				next := func() read {
					t.Helper()
					go func() {
						buf := make([]byte, 2048)
						n, addr, err := conn.ReadFrom(buf)
						reads <- read{string(buf[:n]), addr, err}
					}()
					select {
					case rd := <-reads:
						return rd
					case <-time.After(2 * time.Second):
						t.Fatal("ReadFrom did not return")
						return read{}
					}
				}
				if _, err := peer.WriteTo([]byte("OPTIONS sip:127.0.0.1 SIP/2.0\r\n\r\n"), pc.LocalAddr()); err != nil {
					t.Fatal(err)
				}
				if rd := next(); rd.err != nil || !strings.HasPrefix(rd.data, "OPTIONS ") || rd.from.String() != from.String() {
					t.Fatalf("ReadFrom gave %q from %v (%v), want the OPTIONS from %v", rd.data, rd.from, rd.err, from)
				}

				if closing == "conn" {
					conn.Close()
				} else {
					pc.Close()
				}
				if rd := next(); rd.err == nil {
					t.Fatalf("ReadFrom gave %q after the %s was closed", rd.data, closing)
				}
				if got := runtime.GOMAXPROCS(0); got != procs {
					t.Fatalf("GOMAXPROCS %d once the readers stopped, want %d back", got, procs)
				}
				// The readers' threads go back to the default policy.
				deadline := time.Now().Add(2 * time.Second)
				for batchThreads(t) != batch && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
				if n := batchThreads(t); n != batch {
					t.Fatalf("%d threads under SCHED_BATCH once the readers stopped, want %d", n, batch)
				}
			})
		}
	}
}

// batchThreads counts this process's threads under SCHED_BATCH: the
// policy is the 41st field of /proc/self/task/*/stat.
func batchThreads(t *testing.T) int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/stat")
		if err != nil {
			continue // ended meanwhile
		}
		// Fields after the command, which may hold spaces: state is 3rd.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 38 && f[38] == "3" {
			n++
		}
	}
	return n
}
