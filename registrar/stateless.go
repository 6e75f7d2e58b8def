package registrar

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
)

// StatelessUDP wraps the UDP SIP socket so that REGISTER is answered
// statelessly, beside sipgo rather than through its transaction layer, as
// Kamailio's registrar does; everything else goes on to sipgo.
//
// This is written here because it is the registrar's hot path: under
// REGISTER load, sipgo's server transactions (a goroutine, a context
// with a timer and a table entry kept 32 s per request) took a third of
// the CPU (docs/BENCHMARKS.md). A REGISTER needs none of that: it is
// answered once, at once. What a transaction does for it, absorbing
// retransmissions, a short cache of recent answers does here, keyed by
// the Via branch: a retransmitted REGISTER gets the same answer again,
// not a second run of its nonce count.
//
// A pool of workers handles the REGISTERs, so that a durable store's
// grouped commit does not hold up the socket; when all are busy and the
// queue is full, a REGISTER is dropped, and its UA retransmits it.
func (r *Registrar) StatelessUDP(pc net.PacketConn) net.PacketConn {
	c := &statelessConn{PacketConn: pc, r: r, work: make(chan datagram, statelessQueue), answers: newAnswerCache(), quit: make(chan struct{})}
	for range statelessWorkers {
		go c.worker()
	}
	go c.expire()
	return c
}

const (
	// statelessWorkers bounds the REGISTERs in progress: enough to keep
	// grouped commits full (a commit waits about 10 ms).
	statelessWorkers = 512
	statelessQueue   = 8192
	// answerTTL is how long an answer is kept for retransmissions: at
	// least this, at most twice. A UA over UDP retransmits after 0.5, 1,
	// 2 and 4 s, then every 4 s.
	answerTTL = 8 * time.Second
)

type datagram struct {
	data []byte
	addr net.Addr
}

type statelessConn struct {
	net.PacketConn
	r       *Registrar
	work    chan datagram
	answers *answerCache
	once    sync.Once
	stopped atomic.Bool
	quit    chan struct{}
}

var registerPrefix = []byte("REGISTER ")

// ReadFrom passes every datagram but REGISTER requests on to sipgo.
func (c *statelessConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(b)
		if err != nil {
			// sipgo stops reading on an error; the workers stop too, and
			// anything read after this goes to sipgo.
			c.once.Do(func() { c.stopped.Store(true); close(c.work); close(c.quit) })
			return n, addr, err
		}
		if !bytes.HasPrefix(b[:n], registerPrefix) || c.stopped.Load() {
			return n, addr, nil
		}
		select {
		case c.work <- datagram{data: bytes.Clone(b[:n]), addr: addr}:
		default:
			c.r.metrics.dropped.Inc()
		}
	}
}

// expire drops old answers when no REGISTER comes to do it.
func (c *statelessConn) expire() {
	t := time.NewTicker(answerTTL)
	defer t.Stop()
	for {
		select {
		case <-c.quit:
			return
		case <-t.C:
			c.answers.claim("")
		}
	}
}

func (c *statelessConn) worker() {
	for d := range c.work {
		c.handle(d)
	}
}

func (c *statelessConn) handle(d datagram) {
	msg, err := sip.ParseMessage(d.data)
	if err != nil {
		c.r.log.Debug("dropped an unparsable REGISTER", "from", d.addr.String(), "error", err)
		return
	}
	req, ok := msg.(*sip.Request)
	if !ok {
		return
	}
	req.SetTransport("UDP")
	req.SetSource(d.addr.String())
	key := answerKey(req)
	if key != "" {
		if prev, seen := c.answers.claim(key); seen {
			// A retransmission: the same answer, or none while the first
			// is still being worked out.
			if prev != nil {
				_, _ = c.WriteTo(prev, d.addr)
			}
			return
		}
	}
	res := c.r.answer(context.Background(), req, func(ctx context.Context) (*sip.Response, error) {
		return c.r.register(ctx, req)
	})
	out := []byte(res.String())
	if key != "" {
		// A challenge is not kept: a retransmission gets a fresh one,
		// which costs less than holding half the answers of a load.
		if res.StatusCode == sip.StatusUnauthorized {
			c.answers.forget(key)
		} else {
			c.answers.store(key, out)
		}
	}
	_, err = c.WriteTo(out, d.addr)
	c.r.sent(req, res, err)
}

// answerKey identifies a REGISTER's transaction (RFC 3261 §17.2.3): the
// branch and sent-by of its top Via, and where it came from. Requests
// without an RFC 3261 branch are not cached.
func answerKey(req *sip.Request) string {
	via := req.Via()
	if via == nil {
		return ""
	}
	branch, _ := via.Params.Get("branch")
	if len(branch) < 8 || branch[:7] != sip.RFC3261BranchMagicCookie {
		return ""
	}
	return branch + "|" + via.Host + ":" + strconv.Itoa(via.Port) + "|" + req.Source()
}

// answerCache holds recent answers in two generations, swapped every
// answerTTL, so that expiry costs nothing per entry.
type answerCache struct {
	mu        sync.Mutex
	cur, prev map[string][]byte
	swapped   time.Time
}

func newAnswerCache() *answerCache {
	return &answerCache{cur: map[string][]byte{}, prev: map[string][]byte{}, swapped: time.Now()}
}

// claim returns the answer kept for key, and whether key was seen; a key
// not seen is marked as in progress. The empty key only expires.
func (a *answerCache) claim(key string) ([]byte, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if now := time.Now(); now.Sub(a.swapped) >= answerTTL {
		a.prev, a.cur, a.swapped = a.cur, map[string][]byte{}, now
	}
	if key == "" {
		return nil, false
	}
	if v, ok := a.cur[key]; ok {
		return v, true
	}
	if v, ok := a.prev[key]; ok {
		return v, true
	}
	a.cur[key] = nil
	return nil, false
}

func (a *answerCache) forget(key string) {
	a.mu.Lock()
	delete(a.cur, key)
	delete(a.prev, key)
	a.mu.Unlock()
}

func (a *answerCache) store(key string, answer []byte) {
	a.mu.Lock()
	a.cur[key] = answer
	a.mu.Unlock()
}
