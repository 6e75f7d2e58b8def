package registrar

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sipline/sipline/registrar/location"
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
// Several readers read the socket (readers says why). With a store that
// never waits (location.Immediate), a reader answers a REGISTER itself,
// as a Kamailio worker does: handing it on costs a wakeup, which showed
// in the p99 at half Kamailio's maximum rate without auth
// (docs/BENCHMARKS.md, twelfth round). With
// any other store a pool of workers handles the REGISTERs, so that a
// durable store's grouped commit does not hold up the socket; when all
// are busy and the queue is full, a REGISTER is dropped, and its UA
// retransmits it.
func (r *Registrar) StatelessUDP(pc net.PacketConn) net.PacketConn {
	c := r.newStatelessConn(pc)
	r.mu.Lock()
	r.udp = append(r.udp, c)
	r.mu.Unlock()
	if !c.inline {
		for range statelessWorkers {
			go c.worker()
		}
	}
	go c.expire()
	var wg sync.WaitGroup
	var first sync.Once
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.read(func(err error) { first.Do(func() { c.readErr = err }) })
		}()
	}
	go func() {
		// The socket failed or closed: sipgo stops reading on the error,
		// and the workers stop too.
		wg.Wait()
		c.stopped.Store(true)
		close(c.work)
		close(c.quit)
		c.raw.close()
		close(c.pass)
	}()
	return c
}

func (r *Registrar) newStatelessConn(pc net.PacketConn) *statelessConn {
	tagPrefix := rand.Text()[:10] + "."
	im, ok := r.store.(location.Immediate)
	return &statelessConn{
		inline:     ok && im.Immediate(),
		PacketConn: pc, r: r, raw: newRawSender(pc),
		work: make(chan datagram, statelessQueue), pass: make(chan datagram, statelessQueue), answers: newAnswerCache(), quit: make(chan struct{}),
		requests:  r.metrics.requests.WithLabelValues(string(sip.REGISTER)),
		invites:   r.metrics.requests.WithLabelValues(string(sip.INVITE)),
		acks:      r.metrics.requests.WithLabelValues(string(sip.ACK)),
		tagPrefix: tagPrefix,
		calls:     map[serverKey]*inviteTx{}, txs: map[string]*inviteTx{}, txMark: []byte(".t" + tagPrefix), t1: timerT1,
	}
}

const (
	// statelessWorkers bounds the REGISTERs in progress: enough to keep
	// grouped commits full (a commit waits about 10 ms).
	statelessWorkers = 512
	// statelessQueue bounds the REGISTERs waiting for a worker, and so
	// the time they wait: about 0.1 s at 10,000/s, well under the 0.5 s
	// after which a UA retransmits. A deeper queue (it was 8,192) let an
	// overload grow until every request waited past that, was sent
	// again, and the retransmissions added to the load: offered 12,500/s,
	// the registrar completed 8,344/s where Kamailio held 11,181/s.
	// Dropped, a REGISTER is retransmitted by its UA.
	statelessQueue = 1024
	// answerTTL is how long an answer is kept for retransmissions: at
	// least this, at most twice. A UA over UDP retransmits after 0.5, 1,
	// 2 and 4 s, then every 4 s: 4 s covers the first three.
	answerTTL = 4 * time.Second
)

type datagram struct {
	data string
	addr net.Addr
}

type statelessConn struct {
	net.PacketConn
	raw *rawSender // writes, beside the descriptor's write lock
	r   *Registrar
	// inline says the readers answer REGISTERs; else work takes them to
	// the workers.
	inline  bool
	work    chan datagram
	answers *answerCache
	// requests, invites and acks count REGISTERs, the INVITEs
	// challenged here and the ACKs absorbed here, without a label lookup
	// per request.
	requests, invites, acks prometheus.Counter
	// pass carries the datagrams that go on to sipgo, from the readers
	// to ReadFrom; readErr is why they stopped.
	pass    chan datagram
	readErr error
	// calls and txs are proxyInvite's transactions, by the caller's
	// Via and by ours; txMark is in our branches. txMu guards them, the
	// transactions, and pending: what the holder sends once it lets go
	// (unlockTx).
	txMu    sync.Mutex
	calls   map[serverKey]*inviteTx
	txs     map[string]*inviteTx
	pending outbox
	txMark  []byte
	t1      time.Duration // timerT1
	// tagPrefix and tags make To tags and branches: random per
	// connection, then a count.
	tagPrefix string
	tags      atomic.Uint64
	stopped   atomic.Bool
	quit      chan struct{}
}

// reader is one reader's room for the messages it reads and builds,
// reused from one datagram to the next.
type reader struct {
	buf      []byte
	register regRequest // answerRegister's, when inline
	invite   regRequest // challenge's and proxyInvite's
	relaying relaying   // relayInDialog's
	out, ack []byte
	ob       outbox // what it sends after txMu (unlockTx)
}

var (
	registerPrefix = []byte("REGISTER ")
	invitePrefix   = []byte("INVITE ")
	ackPrefix      = []byte("ACK ")
	cancelPrefix   = []byte("CANCEL ")
	// proxyAuthorization is the field as UAs spell it, to pass an
	// INVITE with credentials on without reading it; one spelled
	// otherwise is read, and passed on all the same.
	proxyAuthorization = []byte("\nProxy-Authorization:")
	// routeField and relayBranch pick the datagrams worth reading for
	// relayInDialog and relayResponse.
	routeField    = []byte("\nRoute:")
	responseStart = []byte("SIP/2.0 ")
	relayBranch   = []byte(";branch=" + relayPrefix)
)

// readers is how many goroutines read the socket. Kamailio's UDP workers
// are separate processes for the same reason: one that the system
// deschedules holds up only the datagram it is handling. One reader was
// the tail of the call latency on a 2-core machine, where sipp's
// processes take turns with the registrar's threads.
var readers = runtime.GOMAXPROCS(0) + 1

// read reads datagrams until the socket fails, handles what it can, and
// passes the rest on to sipgo through ReadFrom. It reads with
// recvfrom(2) made directly where it can (rawReader says why).
func (c *statelessConn) read(done func(error)) {
	rd := &reader{buf: make([]byte, 65535)}
	raw := newRawReader(c.PacketConn, rd.buf)
	for {
		var n int
		var addr net.Addr
		var err error
		if raw != nil {
			n, addr, err = raw.readFrom()
		} else {
			n, addr, err = c.PacketConn.ReadFrom(rd.buf)
		}
		if err != nil {
			done(err)
			return
		}
		if !c.handle(rd, rd.buf[:n], addr) {
			c.pass <- datagram{data: string(rd.buf[:n]), addr: addr}
		}
	}
}

// ReadFrom returns the next datagram for sipgo: every one but REGISTER
// requests, the INVITEs challenged or proxied here with their CANCELs,
// ACKs and responses, and the requests in a dialog relayed statelessly,
// with their responses.
func (c *statelessConn) ReadFrom(b []byte) (int, net.Addr, error) {
	d, ok := <-c.pass
	if !ok {
		return 0, nil, c.readErr
	}
	return copy(b, d.data), d.addr, nil
}

// handle deals with a datagram that it need not pass on, and reports
// whether it did.
func (c *statelessConn) handle(rd *reader, data []byte, addr net.Addr) bool {
	switch {
	case bytes.HasPrefix(data, registerPrefix):
		if c.inline {
			rd.out = c.answerRegister(datagram{data: string(data), addr: addr}, &rd.register, rd.out[:0])
			return true
		}
		select {
		case c.work <- datagram{data: string(data), addr: addr}:
		default:
			c.r.metrics.dropped.Inc()
		}
		return true
	case bytes.HasPrefix(data, invitePrefix):
		return !c.r.authOff && c.challenge(rd, data, addr) || c.proxyInvite(rd, data, addr)
	case bytes.HasPrefix(data, cancelPrefix):
		return c.txCancel(rd, data, addr)
	case bytes.HasPrefix(data, ackPrefix):
		if c.txACK(data) {
			return true
		}
		if c.ownACK(data) {
			c.acks.Inc()
			return true
		}
		return bytes.Contains(data, routeField) && c.relayInDialog(rd, data, addr)
	case bytes.HasPrefix(data, responseStart):
		return bytes.Contains(data, relayBranch) && c.relayResponse(rd, data) ||
			bytes.Contains(data, c.txMark) && c.txResponse(rd, data)
	case bytes.Contains(data, routeField):
		return c.relayInDialog(rd, data, addr)
	}
	return false
}

// WriteTo sends b with one sendto(2), beside the runtime's write lock on
// the descriptor (rawSender says why), or the locked way when it cannot.
// Every write to the socket comes here: sipgo's, the stateless answers
// and relays, and writeUDP's.
func (c *statelessConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if err := c.raw.send(b, addrPort(addr)); err != errLocked {
		if err != nil {
			return 0, err
		}
		return len(b), nil
	}
	return c.PacketConn.WriteTo(b, addr)
}

// challenge answers an INVITE with a 407, statelessly, when that is all
// the proxy would answer it with (statelessChallenge), and reports
// whether it did. It runs in ReadFrom, ahead of sipgo's parse, which it
// saves: reading an INVITE this way costs less than sipgo's parse of it,
// and an INVITE with credentials is passed on unread. A
// retransmission gets the same 407 again, from the answer cache.
func (c *statelessConn) challenge(rd *reader, b []byte, addr net.Addr) bool {
	if bytes.Contains(b, proxyAuthorization) {
		return false // statelessChallenge declines it: no need to read it
	}
	d := datagram{data: string(b), addr: addr}
	rq := &rd.invite
	via, ok := parseRequest(d.data, rq)
	if !ok {
		return false
	}
	se := c.r.statelessChallenge(rq, via)
	if se == nil {
		return false
	}
	c.invites.Inc()
	rq.source = d.addr.String()
	key, keyed := c.answers.key(via, sip.INVITE, rq.source)
	if keyed {
		if prev, seen := c.answers.claim(key, rd.out[:0]); seen {
			if len(prev) > 0 {
				_, _ = c.WriteTo(prev, d.addr)
			}
			rd.out = prev
			return true
		}
	}
	if c.r.log.Enabled(context.Background(), slog.LevelDebug) {
		c.r.logRefusal(slog.LevelDebug, sip.INVITE, rq.callID, rq.fromURI.String(), se)
	}
	out := c.appendReply(rd.out[:0], d, via.host, false, se.Code, se.Reason)
	out = append(se.appendHeaders(out), "Content-Length: 0\r\n\r\n"...)
	if keyed {
		c.answers.store(key, out)
	}
	_, err := c.WriteTo(out, d.addr)
	c.r.sent(sip.INVITE, rq.callID, se.Code, err)
	rd.out = out
	return true
}

// ownACK reports whether an ACK is for a final response sent statelessly
// from this connection: its To tag is one of ours, and such a response
// is never a 2xx, so the ACK ends here (RFC 3261 §17.2.1; Kamailio's sl
// module absorbs these the same way). Without this sipgo would parse it,
// find no transaction and hand it to the proxy, which drops it too.
func (c *statelessConn) ownACK(b []byte) bool {
	head, _, _ := bytes.Cut(b, []byte("\r\n\r\n"))
	for len(head) > 0 {
		var line []byte
		line, head, _ = bytes.Cut(head, []byte("\r\n"))
		name, value, found := bytes.Cut(line, []byte(":"))
		name = bytes.TrimSpace(name)
		if !found || !bytes.EqualFold(name, []byte("To")) && !bytes.EqualFold(name, []byte("t")) {
			continue
		}
		tag := toTagOf(string(value))
		return len(tag) > len(c.tagPrefix) && tag[:len(c.tagPrefix)] == c.tagPrefix
	}
	return false
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
			c.answers.expire()
		}
	}
}

func (c *statelessConn) worker() {
	var buf []byte
	rq := new(regRequest)
	for d := range c.work {
		buf = c.answerRegister(d, rq, buf[:0])
	}
}

// answerRegister answers one REGISTER, writing the answer into buf, which it
// returns for the next. rq is the worker's, reused from one request to
// the next.
func (c *statelessConn) answerRegister(d datagram, rq *regRequest, buf []byte) []byte {
	via, lean := parseRequest(d.data, rq)
	var req *sip.Request // sipgo's parse, when parseRequest declined
	var err error
	if !lean {
		if req, err = parseSIP(d.data); err != nil {
			c.r.log.Debug("dropped an unparsable REGISTER", "from", d.addr.String(), "error", err)
			return buf
		}
		req.SetTransport("UDP")
		req.SetSource(d.addr.String())
		if v := req.Via(); v != nil {
			via.host, via.port = v.Host, v.Port
			via.branch, _ = v.Params.Get("branch")
		}
		*rq, err = requestOf(req)
		if f := req.From(); f != nil {
			rq.from = f.Value() // for logs
		}
	}
	rq.transport, rq.source = "UDP", d.addr.String()
	key, keyed := c.answers.key(via, sip.REGISTER, rq.source)
	if keyed {
		if prev, seen := c.answers.claim(key, buf); seen {
			// A retransmission: the same answer, or none while the first
			// is still being worked out.
			if len(prev) > 0 {
				_, _ = c.WriteTo(prev, d.addr)
			}
			return prev
		}
	}
	c.requests.Inc()
	var g registered
	if err == nil {
		g, err = c.r.register(context.Background(), rq)
	}
	code, reason := sip.StatusOK, "OK"
	var se *StatusError
	if err != nil {
		var level slog.Level
		se, level = refusal(err)
		code, reason = se.Code, se.Reason
		if c.r.log.Enabled(context.Background(), level) {
			c.r.logRefusal(level, sip.REGISTER, rq.callID, fromURI(rq.from), se)
		}
	}
	var out []byte
	switch {
	case !lean:
		res := g.response(req)
		if se != nil {
			res = se.response(req)
		}
		out = append(buf, res.String()...)
	case se != nil:
		out = c.appendReply(buf, d, via.host, rq.toTag, code, reason)
		out = append(se.appendHeaders(out), "Content-Length: 0\r\n\r\n"...)
	default:
		out = c.appendReply(buf, d, via.host, rq.toTag, code, reason)
		out = append(g.appendHeaders(out), "Content-Length: 0\r\n\r\n"...)
	}
	if keyed {
		// Challenges too: a retransmission that got a second 401 with
		// another nonce, after its UA had answered the first, looked to
		// the UA like an answer to the authorized REGISTER.
		c.answers.store(key, out)
	}
	_, err = c.WriteTo(out, d.addr)
	c.r.sent(sip.REGISTER, rq.callID, code, err)
	return out
}

// parseSIP parses a datagram that parseRequest declined, with sipgo.
func parseSIP(data string) (*sip.Request, error) {
	msg, err := sip.ParseMessage([]byte(data))
	if err != nil {
		return nil, err
	}
	req, ok := msg.(*sip.Request)
	if !ok {
		return nil, fmt.Errorf("not a request: %T", msg)
	}
	return req, nil
}

// fromURI is the URI of a From field's value, for logs.
func fromURI(value string) string {
	var u sip.Uri
	var params sip.HeaderParams
	if _, err := sip.ParseAddressValue(value, &u, &params); err != nil {
		return value
	}
	return u.String()
}

// appendReply appends the start of the final response to the REGISTER or
// INVITE in d, which parseRequest read: the status line, then Via, From, To,
// Call-ID and CSeq copied from the datagram as they came (RFC 3261
// §8.2.6.2), the top Via with received and rport (RFC 3581 §4), To with
// a tag unless it has one (toTag). That is most of such an answer, and
// copying it is cheaper than rendering it again. sentBy is
// the top Via's host.
func (c *statelessConn) appendReply(dst []byte, d datagram, sentBy string, toTag bool, code int, reason string) []byte {
	dst = append(dst, "SIP/2.0 "...)
	dst = append(strconv.AppendInt(dst, int64(code), 10), ' ')
	dst = append(append(dst, reason...), "\r\n"...)
	head, _, _ := strings.Cut(d.data, "\r\n\r\n")
	_, head, _ = strings.Cut(head, "\r\n") // past the request line
	topVia := true
	for head != "" {
		var line string
		line, head, _ = strings.Cut(head, "\r\n")
		name, value, _ := strings.Cut(line, ":")
		switch name = strings.TrimSpace(name); {
		case topVia && isName(name, "Via", "v"):
			topVia = false
			dst = append(dst, line[:len(line)-len(value)]...)
			dst = appendTopVia(dst, value, sentBy, d.addr)
		case isName(name, "To", "t"):
			dst = append(dst, line...)
			if !toTag {
				dst = append(bytes.TrimRight(dst, " \t"), ";tag="...)
				dst = append(dst, c.tagPrefix...)
				dst = strconv.AppendUint(dst, c.tags.Add(1), 36)
			}
		case isName(name, "Via", "v"), isName(name, "From", "f"), isName(name, "Call-ID", "i"), isName(name, "CSeq", ""):
			dst = append(dst, line...)
		default:
			continue
		}
		dst = append(dst, "\r\n"...)
	}
	return dst
}

// appendTopVia appends the top Via value with the source address: rport
// filled in and received added when the UA asked with rport (RFC 3581),
// received alone when the sent-by host is not the source (RFC 3261
// §18.2.1). Any further Via values on the line follow unchanged.
func appendTopVia(dst []byte, value, sentBy string, src net.Addr) []byte {
	from := addrPort(src)
	top, more := value, ""
	if i := strings.IndexByte(value, ','); i >= 0 {
		top, more = value[:i], value[i:]
	}
	head, params, _ := strings.Cut(top, ";")
	dst = append(dst, strings.TrimRight(head, " \t")...)
	rport := false
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		if strings.EqualFold(strings.TrimSpace(p), "rport") && from.IsValid() {
			rport = true
			dst = strconv.AppendUint(append(dst, ";rport="...), uint64(from.Port()), 10)
			continue
		}
		dst = append(append(dst, ';'), strings.TrimRight(p, " \t")...)
	}
	if host, err := netip.ParseAddr(sentBy); from.IsValid() && (rport || err != nil || host != from.Addr()) {
		dst = from.Addr().AppendTo(append(dst, ";received="...))
	}
	return append(dst, more...)
}

// addrPort is a UDP source address, or the zero AddrPort for another kind.
func addrPort(a net.Addr) netip.AddrPort {
	if u, ok := a.(*net.UDPAddr); ok {
		ap := u.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}

// answerCache holds recent answers in two generations, swapped every
// answerTTL, so that expiry costs nothing per entry. Under load it holds
// some hundred thousand answers, so it holds them where the collector
// does not look: keys are 64-bit hashes, answers are copied into large
// byte chunks, and the index maps a hash to a place in them. Neither has
// pointers to scan; under load this cache is about a third of the live
// heap (heap profile at 6,000 REGISTER exchanges/s). Two
// keys colliding, once in 2^64, would give a retransmission the other's
// answer.
type answerCache struct {
	seed      maphash.Seed
	mu        sync.Mutex
	cur, prev answerGen
	swapped   time.Time
	// spare are the chunks of the generation dropped last, emptied, for
	// the current one to fill before it allocates: under steady load a
	// generation needs about as many as the one before. Those still
	// spare at the next swap are let go, so idle, the cache holds none.
	spare [][]byte
}

type answerGen struct {
	index  map[uint64]answerSpan
	chunks [][]byte
	size   int // bytes in chunks
}

// answerSpan is where an answer is: chunk, offset and length. A length
// of 0 marks a request still being worked out.
type answerSpan struct{ chunk, off, n uint32 }

const (
	// answerChunk is the size of the chunks answers are copied into.
	answerChunk = 1 << 20
	// answerGenMax bounds a generation's answers, so the cache holds at
	// most twice this: a generation of 4 s at up to 35,000 answers a
	// second. Past it a retransmission is worked out again: a challenge
	// anew, a REGISTER that was answered 200 fails as out of order.
	answerGenMax = 64 << 20
)

func newAnswerCache() *answerCache {
	return &answerCache{seed: maphash.MakeSeed(), cur: newAnswerGen(), prev: newAnswerGen(), swapped: time.Now()}
}

func newAnswerGen() answerGen { return answerGen{index: map[uint64]answerSpan{}} }

// key identifies a request's transaction (RFC 3261 §17.2.3): the branch
// and sent-by of its top Via, its method, and where it came from
// (source). Requests without an RFC 3261 branch have none.
func (a *answerCache) key(via topVia, method sip.RequestMethod, source string) (uint64, bool) {
	if len(via.branch) < 8 || via.branch[:7] != sip.RFC3261BranchMagicCookie {
		return 0, false
	}
	var h maphash.Hash
	h.SetSeed(a.seed)
	h.WriteString(via.branch)
	h.WriteByte(0)
	h.WriteString(via.host)
	h.WriteByte(0)
	h.WriteByte(byte(via.port >> 8))
	h.WriteByte(byte(via.port))
	h.WriteString(string(method))
	h.WriteByte(0)
	h.WriteString(source)
	return h.Sum64(), true
}

// claim appends the answer kept for key to dst, and reports whether key
// was seen; a key not seen is marked as in progress. The answer is
// copied while the cache is locked, since a chunk is reused once its
// generation is dropped. With seen false, it only expires.
func (a *answerCache) claim(key uint64, dst []byte) ([]byte, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.expireLocked()
	for _, g := range [2]*answerGen{&a.cur, &a.prev} {
		if sp, ok := g.index[key]; ok {
			if sp.n == 0 {
				return dst, true
			}
			return append(dst, g.chunks[sp.chunk][sp.off:sp.off+sp.n]...), true
		}
	}
	a.cur.index[key] = answerSpan{}
	return dst, false
}

func (a *answerCache) expireLocked() {
	now := time.Now()
	if now.Sub(a.swapped) < answerTTL {
		return
	}
	clear(a.spare[:cap(a.spare)])
	a.spare = a.spare[:0]
	for _, c := range a.prev.chunks {
		a.spare = append(a.spare, c[:0])
	}
	a.prev, a.cur, a.swapped = a.cur, newAnswerGen(), now
}

// expire drops the older generation when it is due.
func (a *answerCache) expire() {
	a.mu.Lock()
	a.expireLocked()
	a.mu.Unlock()
}

// store copies answer into the cache, unless the current generation is
// full: then key is forgotten, not left in progress.
func (a *answerCache) store(key uint64, answer []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	g := &a.cur
	last := len(g.chunks) - 1
	if last < 0 || cap(g.chunks[last])-len(g.chunks[last]) < len(answer) {
		size := max(answerChunk, len(answer))
		if g.size+size > answerGenMax {
			delete(a.cur.index, key)
			delete(a.prev.index, key)
			return
		}
		chunk := []byte(nil)
		if n := len(a.spare); n > 0 && cap(a.spare[n-1]) >= size {
			chunk, a.spare[n-1], a.spare = a.spare[n-1], nil, a.spare[:n-1]
		} else {
			chunk = make([]byte, 0, size)
		}
		g.chunks = append(g.chunks, chunk)
		g.size += cap(chunk)
		last++
	}
	off := len(g.chunks[last])
	g.chunks[last] = append(g.chunks[last], answer...)
	g.index[key] = answerSpan{chunk: uint32(last), off: uint32(off), n: uint32(len(answer))}
}
