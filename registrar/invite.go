package registrar

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipline/sipline/registrar/digest"
)

// The socket reader proxies the INVITEs of calls from UDP to UDP itself,
// with their transactions kept as bytes: an INVITE from a caller to a
// user of ours with one binding, reached over UDP. Forks, other
// transports, requests in a dialog and anything the checks below do not
// pass go through sipgo's transactions and the proxy, as before.
//
// This is written here because sipgo's transactions were what limited
// calls with auth: under call load, its parse of the INVITE and of each
// response, the two transactions per call with their goroutines, and the
// messages they keep for seconds after a call is answered made the
// collector run three times a round, and the slow calls came with it
// (docs/BENCHMARKS.md). Here a call keeps the INVITE as it came and the
// few lines it needs for an ACK or a CANCEL, and no goroutine waits on
// it. Kamailio's tm, too, keeps what it retransmits as bytes.
//
// What is kept of RFC 3261 §17 and §16: the caller's retransmitted
// INVITE gets the last response again, and is not forwarded twice; the
// INVITE is retransmitted downstream until a response comes (Timer A),
// and answered 408 when none does (Timer B); a failure downstream is
// ACKed here and relayed upstream until the caller ACKs it (Timers G and
// H); a CANCEL is answered, and sent on once the callee has sent a
// provisional response; a callee ringing for too long is cancelled
// (Timer C). A 2xx is relayed, however late, and ends the transaction;
// the caller's ACK for it follows the route set, through relayInDialog.
// A callee that answers after the caller cancelled gets its 2xx
// relayed, and the caller ACKs and hangs up (RFC 3261 §9.1), where the
// proxy's own path hangs up for it.

// timerT1 is RFC 3261's round-trip estimate, T1; the timers are
// multiples of it. A variable for tests, which a connection copies when
// it is made.
var timerT1 = 500 * time.Millisecond

const (
	// timerT2 caps the interval of retransmissions of a failure.
	timerT2 = 4 * time.Second
	// txLinger is how long an ended transaction still absorbs
	// retransmissions, as Kamailio's wait timer does.
	txLinger = 5 * time.Second
)

// serverKey identifies the caller's side of a transaction: the top Via's
// branch and sent-by (RFC 3261 §17.2.3).
type serverKey struct {
	branch, host string
	port         int
}

// inviteTx is an INVITE proxied by the socket reader: its server
// transaction towards the caller and its client transaction towards the
// callee. The connection's txMu guards it.
type inviteTx struct {
	c      *statelessConn
	key    serverKey
	branch string // of our Via
	callID string
	data   string   // the INVITE as it came, for answers of our own
	src    net.Addr // where it came from
	sentBy string   // its top Via's host
	up     netip.AddrPort
	down   netip.AddrPort
	// downFlow is the binding's flow address, as the proxy's flow
	// tokens name it.
	downFlow string
	// invite is the INVITE as forwarded, until a response comes.
	invite []byte
	// target, stub, to and cseq build the ACK and the CANCEL sent
	// downstream: the Request-URI, our Via, From and Call-ID lines,
	// the INVITE's To line, and its sequence number.
	target, stub, to string
	cseq             uint32
	// vias are the caller's Via lines as forwarded.
	vias string
	// last is the last response sent upstream.
	last []byte
	// cancelReq is the CANCEL sent downstream, until it is answered.
	cancelReq []byte

	ready       bool // startTx has filled it in; before, it only claims its key
	provisional bool // the callee sent a provisional response
	canceled    bool // the caller sent a CANCEL
	downDone    bool // the callee sent a final response, or we gave up on it
	upCode      int  // the final status sent upstream, 0 before
	upDone      bool // that was a 2xx, or its ACK came, or Timer H fired

	timer *time.Timer
	// When each timer is due next, zero when it does not run; every
	// is the interval of the retransmissions it drives.
	inviteAt, inviteEnd time.Time     // Timers A and B
	inviteEvery         time.Duration //
	ringEnd             time.Time     // Timer C
	cancelAt, cancelEnd time.Time     // the CANCEL's Timers E and F
	cancelEvery         time.Duration //
	finalAt, finalEnd   time.Time     // Timers G and H
	finalEvery          time.Duration //
	goneAt              time.Time     // when the transaction is dropped
}

// proxyInvite forwards an INVITE, as above, and reports whether it did.
// It runs in the socket reader, after challenge.
func (c *statelessConn) proxyInvite(rd *reader, b []byte, addr net.Addr) bool {
	src := addrPort(addr)
	if !src.IsValid() {
		return false
	}
	data := string(b)
	rq := &rd.invite
	via, ok := parseRequest(data, rq)
	if !ok || !strings.HasPrefix(via.branch, sip.RFC3261BranchMagicCookie) {
		return false
	}
	key := serverKey{branch: via.branch, host: via.host, port: via.port}
	c.txMu.Lock()
	if prev := c.calls[key]; prev != nil {
		prev.retransmitted()
		c.unlockTx(&rd.ob)
		return true
	}
	// Claimed: a copy that another reader reads meanwhile is absorbed.
	t := &inviteTx{c: c, key: key}
	c.calls[key] = t
	c.txMu.Unlock()
	if !c.startTx(rd, t, data, addr, via) {
		c.txMu.Lock()
		delete(c.calls, key)
		c.txMu.Unlock()
		return false
	}
	return true
}

// startTx reads the INVITE in data into t, and forwards it or refuses
// it. False when it is left to sipgo.
func (c *statelessConn) startTx(rd *reader, t *inviteTx, data string, addr net.Addr, via topVia) bool {
	rq := &rd.invite
	target, h, down, ok := c.inviteTarget(rq)
	if !ok {
		return false
	}
	now := time.Now()
	t.callID, t.data, t.src, t.sentBy, t.down, t.downFlow = rq.callID, data, addr, via.host, down, h.addr
	t.target, t.cseq = target, rq.cseq
	fromTag, _ := rq.fromParams.Get("tag")
	var room [4]string
	prs := room[:0]
	for v := range rq.fields.all("Proxy-Require") {
		prs = append(prs, v)
	}
	t.branch = branchPrefix + loopHashOf(rq.ruri.String(), fromTag, "", rq.callID, rq.cseq, prs) +
		".t" + c.tagPrefix + strconv.FormatUint(c.tags.Add(1), 36)
	if !c.forward(t) {
		return false
	}
	c.invites.Inc()

	// Credentials last: checking them counts the nonce's use, and from
	// here on the INVITE is answered here.
	if c.r.isLocalHost(rq.fromURI.Host) {
		user, err := c.r.authenticate(sip.INVITE, rq.fields, rq.fromURI.User, true)
		if err == nil && user != rq.fromURI.User {
			err = statusErr(sip.StatusForbidden, "Forbidden", fmt.Errorf("user %q may not send as %q", user, rq.fromURI.User))
		}
		if err != nil {
			se, level := refusal(err)
			if c.r.log.Enabled(context.Background(), level) {
				c.r.logRefusal(level, sip.INVITE, rq.callID, rq.fromURI.String(), se)
			}
			// The refusal is this transaction's final response, with
			// nothing downstream: resent to a retransmitted INVITE, and
			// by Timer G until the caller's ACK, and not worked out
			// again, which would find the nonce used.
			c.txMu.Lock()
			t.ready, t.downDone = true, true
			c.r.metrics.transactions.Inc()
			t.timer = time.AfterFunc(c.t1, t.fire)
			t.upstream(c.appendRefusal(nil, datagram{data, addr}, via.host, se), se.Code)
			t.schedule(now)
			c.unlockTx(&rd.ob)
			return true
		}
	}

	c.txMu.Lock()
	c.txs[t.branch] = t
	t.ready = true
	c.r.metrics.transactions.Inc()
	t.inviteEvery = c.t1
	t.inviteAt, t.inviteEnd, t.ringEnd = now.Add(c.t1), now.Add(64*c.t1), now.Add(branchTimeout)
	t.timer = time.AfterFunc(c.t1, t.fire)
	t.answer(sip.StatusTrying, "Trying")
	t.send(t.invite, t.down)
	c.unlockTx(&rd.ob)
	return true
}

// inviteTarget is where proxyInvite sends rq: the Request-URI and the
// address of the one binding of the user it is for. False unless the
// proxy would forward rq there, over UDP, and validate and route would
// refuse nothing before authorizeCaller (see statelessChallenge).
func (c *statelessConn) inviteTarget(rq *regRequest) (string, hop, netip.AddrPort, bool) {
	var no hop
	r := c.r
	if !rq.plainInvite() || !r.isSelf(&rq.ruri) || rq.ruri.User == "" || r.checkRequire(rq.fields, "Proxy-Require") != nil {
		return "", no, netip.AddrPort{}, false
	}
	if _, ok := r.users[rq.ruri.User]; !ok {
		return "", no, netip.AddrPort{}, false
	}
	bs, err := r.store.Lookup(context.Background(), r.aor(rq.ruri.User))
	if err != nil {
		return "", no, netip.AddrPort{}, false
	}
	bs = live(bs, r.now())
	if len(bs) != 1 {
		return "", no, netip.AddrPort{}, false
	}
	var u sip.Uri
	if sip.ParseUri(bs[0].Contact, &u) != nil {
		return "", no, netip.AddrPort{}, false
	}
	h := r.bindingHop(bs[0], &u)
	dst, err := netip.ParseAddrPort(h.addr)
	if h.transport != "UDP" || err != nil || !r.hasTransport("UDP") {
		return "", no, netip.AddrPort{}, false
	}
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	if !c.reaches(dst) {
		return "", no, netip.AddrPort{}, false
	}
	return u.String(), h, dst, true
}

// forward builds t.invite from the INVITE in t.data as forwardRequest
// would (RFC 3261 §16.6), with the lines of it that the ACK and CANCEL
// need, and t.up from the caller's Via. The header fields keep their
// order and spelling; the proxy adds its Via and two Record-Routes (RFC
// 5658) on top, puts received and rport in the caller's Via, counts
// Max-Forwards down and takes out credentials for its realm. False when
// the caller's Via does not say UDP to an address.
func (c *statelessConn) forward(t *inviteTx) bool {
	head, body, _ := strings.Cut(t.data, "\r\n\r\n")
	_, head, _ = strings.Cut(head, "\r\n")
	ep := c.r.endpoint("UDP")
	ourVia := "Via: SIP/2.0/UDP " + ep.Host + ":" + strconv.Itoa(ep.Port) + ";branch=" + t.branch
	out := make([]byte, 0, len(t.data)+len(ourVia)+256)
	out = append(append(append(out, "INVITE "...), t.target...), " SIP/2.0\r\n"...)
	out = append(append(out, ourVia...), "\r\n"...)
	out = c.r.appendRecordRoute(out, ep, flowKey{transport: "UDP", addr: t.downFlow})
	out = c.r.appendRecordRoute(out, ep, flowKey{transport: "UDP", addr: t.src.String()})
	stub := ourVia + "\r\n"
	topVia, hops := true, false
	for head != "" {
		var line string
		line, head, _ = strings.Cut(head, "\r\n")
		name, value, _ := strings.Cut(line, ":")
		switch name = strings.TrimSpace(name); {
		case topVia && isName(name, "Via", "v"):
			topVia = false
			lineStart := len(out)
			out = append(out, line[:len(line)-len(value)]...)
			start := len(out)
			out = appendTopVia(out, value, t.sentBy, t.src)
			up, ok := udpViaAddr(strings.TrimSpace(string(out[start:])))
			if !ok || !c.reaches(up) {
				return false
			}
			t.up = up
			t.vias = string(out[lineStart:]) + "\r\n"
		case isName(name, "Via", "v"):
			t.vias += line + "\r\n"
			out = append(out, line...)
		case !hops && isName(name, "Max-Forwards", ""):
			hops = true
			n, _ := strconv.ParseUint(strings.TrimSpace(value), 10, 32) // parseRequest read it
			out = strconv.AppendUint(append(out, "Max-Forwards: "...), max(n, 1)-1, 10)
		case isName(name, "Proxy-Authorization", ""):
			// Credentials for our realm are consumed here (RFC 3261 §22.3).
			if cr, err := digest.ParseCredentials(strings.TrimSpace(value)); err == nil && cr.Realm == c.r.domain {
				continue
			}
			out = append(out, line...)
		case isName(name, "To", "t"):
			t.to = line
			out = append(out, line...)
		case isName(name, "From", "f"), isName(name, "Call-ID", "i"):
			stub += line + "\r\n"
			out = append(out, line...)
		default:
			out = append(out, line...)
		}
		out = append(out, "\r\n"...)
	}
	if !hops {
		out = append(out, "Max-Forwards: 70\r\n"...)
	}
	t.invite = append(append(out, "\r\n"...), body...)
	t.stub = stub
	return true
}

// appendRecordRoute appends a Record-Route field for ep with a flow
// token for fk, as recordRoute makes it.
func (r *Registrar) appendRecordRoute(dst []byte, ep Endpoint, fk flowKey) []byte {
	rr := r.recordRoute(ep, fk)
	return append(append(append(dst, "Record-Route: "...), rr.Value()...), "\r\n"...)
}

// appendRefusal appends the answer to an INVITE that se refuses.
func (c *statelessConn) appendRefusal(dst []byte, d datagram, sentBy string, se *StatusError) []byte {
	dst = c.appendReply(dst, d, sentBy, false, se.Code, se.Reason)
	return append(se.appendHeaders(dst), "Content-Length: 0\r\n\r\n"...)
}

// retransmitted answers a retransmitted INVITE with the last response,
// unless that was a 2xx, which the callee retransmits itself.
func (t *inviteTx) retransmitted() {
	if t.last != nil && (t.upCode == 0 || t.upCode >= 300) {
		t.send(t.last, t.up)
	}
}

// answer sends a response of our own upstream: 100, or a final one
// when the callee gave none.
func (t *inviteTx) answer(code int, reason string) {
	if t.upCode != 0 {
		return
	}
	out := t.c.appendReply(nil, datagram{t.data, t.src}, t.sentBy, code == sip.StatusTrying, code, reason)
	t.upstream(append(out, "Content-Length: 0\r\n\r\n"...), code)
}

// upstream sends a response to the caller, keeping a provisional or a
// failure for retransmissions.
func (t *inviteTx) upstream(res []byte, code int) {
	t.c.pending = append(t.c.pending, outgoing{b: res, to: t.up, method: sip.INVITE, callID: t.callID, code: code})
	switch {
	case code < 200:
		t.last = res
	case code < 300:
		t.upCode, t.upDone, t.last = code, true, nil
		t.finalAt, t.finalEnd = time.Time{}, time.Time{}
	case t.upCode == 0:
		t.upCode, t.last = code, res
		now := time.Now()
		t.finalEvery, t.finalAt, t.finalEnd = t.c.t1, now.Add(t.c.t1), now.Add(64*t.c.t1)
	}
}

// send queues a request, or a response that is not counted, for when
// txMu is let go.
func (t *inviteTx) send(b []byte, to netip.AddrPort) {
	t.c.pending = append(t.c.pending, outgoing{b: b, to: to, callID: t.callID})
}

// outbox holds what a reader or a timer sends once it has let go of
// txMu. On loopback a send wakes the receiver, and the system may run
// that at once, holding up every reader that waits for the lock.
type outbox []outgoing

// outgoing is a datagram to send; a response to count has a code.
type outgoing struct {
	b      []byte
	to     netip.AddrPort
	method sip.RequestMethod
	callID string
	code   int
}

// unlockTx lets go of txMu, and then sends what the holder queued,
// through ob, the caller's own outbox.
func (c *statelessConn) unlockTx(ob *outbox) {
	*ob = append(*ob, c.pending...)
	clear(c.pending)
	c.pending = c.pending[:0]
	c.txMu.Unlock()
	c.flush(ob)
}

// flush sends what ob holds, and empties it.
func (c *statelessConn) flush(ob *outbox) {
	for i, o := range *ob {
		_, err := c.WriteTo(o.b, net.UDPAddrFromAddrPort(o.to))
		switch {
		case o.code != 0:
			c.r.sent(o.method, o.callID, o.code, err)
		case err != nil:
			c.r.log.Debug("proxy INVITE", "call_id", o.callID, "to", o.to.String(), "error", err)
		}
		(*ob)[i] = outgoing{}
	}
	*ob = (*ob)[:0]
}

// cancelDown sends the CANCEL downstream (RFC 3261 §9.1), once the
// callee has sent a provisional response and while it has sent no
// final one.
func (t *inviteTx) cancelDown(now time.Time) {
	if !t.provisional || t.downDone || t.cancelReq != nil {
		return
	}
	t.cancelReq = t.appendRequest(nil, sip.CANCEL, t.to)
	t.send(t.cancelReq, t.down)
	t.cancelEvery, t.cancelAt, t.cancelEnd = t.c.t1, now.Add(t.c.t1), now.Add(64*t.c.t1)
}

// appendRequest appends an ACK or a CANCEL for the forwarded INVITE,
// with the To line given (RFC 3261 §17.1.1.3, §9.1).
func (t *inviteTx) appendRequest(dst []byte, method sip.RequestMethod, to string) []byte {
	dst = append(append(append(append(dst, method...), ' '), t.target...), " SIP/2.0\r\n"...)
	dst = append(append(append(dst, t.stub...), to...), "\r\nCSeq: "...)
	dst = append(append(strconv.AppendUint(dst, uint64(t.cseq), 10), ' '), method...)
	return append(dst, "\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"...)
}

// txResponse handles a response to a request proxyInvite forwarded, or
// to its CANCEL, and reports whether it was one.
func (c *statelessConn) txResponse(rd *reader, b []byte) bool {
	c.txMu.Lock()
	ok := c.txResponseLocked(rd, string(b))
	c.unlockTx(&rd.ob)
	return ok
}

func (c *statelessConn) txResponseLocked(rd *reader, data string) bool {
	out, rr, ok := appendRelayed(rd.out[:0], data, "")
	switch {
	case !ok, rr.method != string(sip.INVITE) && rr.method != string(sip.CANCEL):
		return false
	case rr.method == string(sip.INVITE) && rr.to == "":
		return false // nothing to ACK it with
	}
	via, ok := parseTopVia(rr.top)
	if !ok {
		return false
	}
	t := c.txs[via.branch]
	if t == nil || !c.r.isLocalHost(via.host) {
		return false
	}
	if rr.method == string(sip.INVITE) && rr.next == "" {
		// Our Via alone: a callee that built its answer on the CANCEL
		// (sipp's [last_Via:] does) sent only ours. The caller's Vias
		// are the INVITE's.
		i := bytes.Index(out, []byte("\r\n")) + 2
		out = append(append(append([]byte(nil), out[:i]...), t.vias...), out[i:]...)
	}
	rd.out = out
	now := time.Now()
	defer t.schedule(now)
	if rr.method == string(sip.CANCEL) {
		t.cancelAt = time.Time{} // answered: the 487 is still to come
		return true
	}
	t.invite, t.inviteAt, t.inviteEnd = nil, time.Time{}, time.Time{}
	switch code := rr.code; {
	case code < 200:
		if t.downDone {
			return true // overtaken by the final response
		}
		t.provisional = true
		if t.canceled {
			t.cancelDown(now)
		}
		if code > 100 {
			t.ringEnd = now.Add(branchTimeout)
			if t.upCode == 0 {
				t.upstream(append([]byte(nil), out...), code)
			}
		}
	case code < 300:
		// Every 2xx goes upstream, retransmissions too (RFC 6026 §8.3).
		t.downDone, t.ringEnd, t.cancelAt, t.cancelEnd = true, time.Time{}, time.Time{}, time.Time{}
		t.upstream(out, code)
	default:
		ack := t.appendRequest(rd.ack[:0], sip.ACK, rr.to)
		t.send(ack, t.down)
		rd.ack = ack
		if t.downDone {
			return true // a retransmission, ACKed again
		}
		t.downDone, t.ringEnd, t.cancelAt, t.cancelEnd = true, time.Time{}, time.Time{}, time.Time{}
		if t.upCode != 0 {
			return true // the caller has had its answer: Timer C's
		}
		if code == sip.StatusServiceUnavailable {
			// Not ours to pass on (RFC 3261 §16.7 item 6).
			out, _, _ = appendRelayed(nil, data, "SIP/2.0 500 Server Internal Error")
		} else {
			out = append([]byte(nil), out...)
		}
		t.upstream(out, code)
	}
	return true
}

// txCancel answers a CANCEL for an INVITE that proxyInvite forwarded,
// and reports whether it was one.
func (c *statelessConn) txCancel(rd *reader, b []byte, addr net.Addr) bool {
	data := string(b)
	via, ok := requestTopVia(data)
	if !ok {
		return false
	}
	c.txMu.Lock()
	t := c.calls[serverKey{branch: via.branch, host: via.host, port: via.port}]
	if t == nil {
		c.txMu.Unlock()
		return false
	}
	if !t.ready {
		// Its INVITE is still being read: dropped, the CANCEL is
		// retransmitted, and finds the transaction, or sipgo's.
		c.txMu.Unlock()
		return true
	}
	c.r.metrics.requests.WithLabelValues(string(sip.CANCEL)).Inc()
	out := c.appendReply(rd.out[:0], datagram{data, addr}, via.host, true, sip.StatusOK, "OK")
	rd.out = append(out, "Content-Length: 0\r\n\r\n"...)
	c.pending = append(c.pending, outgoing{b: rd.out, to: t.up, method: sip.CANCEL, callID: t.callID, code: sip.StatusOK})
	if !t.canceled && t.upCode == 0 {
		now := time.Now()
		t.canceled = true
		t.cancelDown(now)
		t.schedule(now)
	}
	c.unlockTx(&rd.ob)
	return true
}

// txACK absorbs the caller's ACK for a failure that proxyInvite's
// transaction sent (RFC 3261 §17.2.1), and reports whether it was one.
func (c *statelessConn) txACK(b []byte) bool {
	via, ok := requestTopVia(string(b))
	if !ok {
		return false
	}
	c.txMu.Lock()
	defer c.txMu.Unlock()
	t := c.calls[serverKey{branch: via.branch, host: via.host, port: via.port}]
	if t == nil || t.upCode < 300 {
		return false
	}
	if !t.upDone {
		t.upDone, t.finalAt, t.finalEnd = true, time.Time{}, time.Time{}
		t.schedule(time.Now())
	}
	return true
}

// requestTopVia reads a request's top Via.
func requestTopVia(data string) (topVia, bool) {
	head, _, _ := strings.Cut(data, "\r\n\r\n")
	_, head, _ = strings.Cut(head, "\r\n")
	for head != "" {
		var line string
		line, head, _ = strings.Cut(head, "\r\n")
		if name, value, _ := strings.Cut(line, ":"); isName(strings.TrimSpace(name), "Via", "v") {
			return parseTopVia(strings.TrimSpace(value))
		}
	}
	return topVia{}, false
}

// fire runs the timers that are due.
func (t *inviteTx) fire() {
	c := t.c
	var ob outbox
	c.txMu.Lock()
	t.tick()
	c.unlockTx(&ob)
}

func (t *inviteTx) tick() {
	c := t.c
	now := time.Now()
	if c.stopped.Load() {
		t.drop()
		return
	}
	switch {
	case due(t.inviteEnd, now): // Timer B
		t.invite, t.inviteAt, t.inviteEnd = nil, time.Time{}, time.Time{}
		t.downDone = true
		c.r.log.Info("branch ended without answer", "call_id", t.callID, "to", t.down.String())
		t.answer(sip.StatusRequestTimeout, "Request Timeout")
	case due(t.inviteAt, now): // Timer A
		t.send(t.invite, t.down)
		t.inviteEvery *= 2
		t.inviteAt = now.Add(t.inviteEvery)
	}
	if due(t.ringEnd, now) { // Timer C
		t.ringEnd = time.Time{}
		c.r.log.Info("branch rang too long", "call_id", t.callID, "to", t.down.String())
		t.cancelDown(now)
		t.answer(sip.StatusRequestTimeout, "Request Timeout")
	}
	switch {
	case due(t.cancelEnd, now): // the callee answered neither the CANCEL nor the INVITE
		t.cancelAt, t.cancelEnd, t.downDone = time.Time{}, time.Time{}, true
		if t.canceled {
			t.answer(sip.StatusRequestTerminated, "Request Terminated")
		} else {
			t.answer(sip.StatusRequestTimeout, "Request Timeout")
		}
	case due(t.cancelAt, now):
		t.send(t.cancelReq, t.down)
		t.cancelEvery = min(2*t.cancelEvery, timerT2)
		t.cancelAt = now.Add(t.cancelEvery)
	}
	switch {
	case due(t.finalEnd, now): // Timer H
		t.finalAt, t.finalEnd, t.upDone = time.Time{}, time.Time{}, true
	case due(t.finalAt, now): // Timer G
		t.send(t.last, t.up)
		t.finalEvery = min(2*t.finalEvery, timerT2)
		t.finalAt = now.Add(t.finalEvery)
	}
	if due(t.goneAt, now) {
		t.drop()
		return
	}
	t.schedule(now)
}

func due(at, now time.Time) bool { return !at.IsZero() && !now.Before(at) }

// schedule sets the timer for the next thing due, and the time to drop
// the transaction once both sides have ended.
func (t *inviteTx) schedule(now time.Time) {
	if t.downDone && t.upDone && t.goneAt.IsZero() {
		t.goneAt = now.Add(txLinger)
		t.ringEnd = time.Time{}
	}
	var next time.Time
	for _, at := range [...]time.Time{t.inviteAt, t.inviteEnd, t.ringEnd, t.cancelAt, t.cancelEnd, t.finalAt, t.finalEnd, t.goneAt} {
		if !at.IsZero() && (next.IsZero() || at.Before(next)) {
			next = at
		}
	}
	if !next.IsZero() {
		t.timer.Reset(next.Sub(now))
	}
}

// drop forgets t.
func (t *inviteTx) drop() {
	c := t.c
	if c.calls[t.key] == t {
		delete(c.calls, t.key)
		delete(c.txs, t.branch)
		c.r.metrics.transactions.Dec()
	}
	t.timer.Stop()
}

// relayedResponse is what appendRelayed reads of a response.
type relayedResponse struct {
	code      int
	top, next string // the first two Via values: ours, then where it goes
	method    string // CSeq's
	to        string // the To line
}

// appendRelayed appends the response in data without its first Via
// value, as a proxy relays it (RFC 3261 §16.7 item 3), with status as
// its status line unless that is "". It reports false for anything it
// does not read the way sipgo's parser would: folded header lines, or
// lines not ending in CRLF.
func appendRelayed(dst []byte, data, status string) ([]byte, relayedResponse, bool) {
	var rr relayedResponse
	head, body, found := strings.Cut(data, "\r\n\r\n")
	if !found {
		return dst, rr, false
	}
	start, head, _ := strings.Cut(head, "\r\n")
	if len(start) < len("SIP/2.0 200") || !strings.HasPrefix(start, "SIP/2.0 ") || len(start) > 11 && start[11] != ' ' ||
		strings.ContainsAny(start, "\r\n") {
		return dst, rr, false
	}
	code, err := strconv.Atoi(start[8:11])
	if err != nil || code < 100 || code > 699 {
		return dst, rr, false
	}
	rr.code = code
	if status == "" {
		status = start
	}
	dst = append(append(dst, status...), "\r\n"...)
	vias := 0
	for head != "" {
		var line string
		line, head, _ = strings.Cut(head, "\r\n")
		if line == "" || line[0] == ' ' || line[0] == '\t' || strings.ContainsAny(line, "\r\n") {
			return dst, rr, false
		}
		name, value, found := strings.Cut(line, ":")
		if !found {
			return dst, rr, false
		}
		switch name = strings.TrimSpace(name); {
		case vias < 2 && isName(name, "Via", "v"):
			v := strings.TrimSpace(value)
			vias++
			if vias == 1 {
				top, rest, more := strings.Cut(v, ",")
				rr.top = strings.TrimSpace(top)
				if !more {
					continue // the line goes
				}
				vias++
				if rr.next = strings.TrimSpace(rest); rr.next == "" {
					return dst, rr, false
				}
				dst = append(append(append(dst, line[:len(line)-len(value)]...), ' '), rr.next...)
				dst = append(dst, "\r\n"...)
				continue
			}
			rr.next = v
		case isName(name, "CSeq", ""):
			_, m, _ := strings.Cut(strings.TrimSpace(value), " ")
			rr.method = strings.TrimSpace(m)
		case isName(name, "To", "t"):
			rr.to = line
		}
		dst = append(append(dst, line...), "\r\n"...)
	}
	if vias == 0 {
		return dst, rr, false
	}
	return append(append(dst, "\r\n"...), body...), rr, true
}
