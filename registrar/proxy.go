package registrar

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/sipline/sipline/registrar/digest"
	"github.com/sipline/sipline/registrar/location"
)

// proxiedMethods get the proxy handler; any other method does too, through
// the server's no-route handler.
var proxiedMethods = []sip.RequestMethod{
	sip.INVITE, sip.BYE, sip.CANCEL, sip.OPTIONS, sip.MESSAGE, sip.INFO, sip.REFER,
	sip.SUBSCRIBE, sip.NOTIFY, sip.UPDATE, sip.PRACK, sip.PUBLISH,
}

// allow is what the registrar itself accepts.
const allow = "REGISTER, OPTIONS, INVITE, ACK, CANCEL, BYE, INFO, MESSAGE, REFER, SUBSCRIBE, NOTIFY, UPDATE, PRACK"

// branchTimeout bounds how long an INVITE branch may ring (RFC 3261 Timer C is > 3 min).
const branchTimeout = 3 * time.Minute

// hop is where a request goes next.
type hop struct {
	transport string // "UDP", "TCP", "TLS"
	addr      string // "ip:port"
}

// decision is what routing made of a request.
type decision struct {
	// forward: send to hop, with target as the Request-URI when non-nil.
	forward bool
	hop     hop
	// local: look up the AOR of user and fork to its contacts.
	local bool
	user  string
	// self: the request is for the registrar itself.
	self bool
}

func (r *Registrar) handleRequest(req *sip.Request, tx sip.ServerTransaction) {
	r.track(req, tx, func(ctx context.Context) (*sip.Response, error) {
		return r.proxy(ctx, req, tx)
	})
}

// handleAck forwards an ACK for a 2xx, statelessly. An ACK for a non-2xx
// ends at the transaction layer and never comes here.
func (r *Registrar) handleAck(req *sip.Request, tx sip.ServerTransaction) {
	r.metrics.requests.WithLabelValues("ACK").Inc()
	d, err := r.route(req)
	if err != nil || !d.forward {
		r.log.Debug("ACK dropped", "call_id", callID(req), "error", err)
		return
	}
	out, err := r.forwardRequest(req, d.hop, nil, false)
	if err == nil {
		err = r.client.WriteRequest(out, keep)
	}
	if err != nil {
		r.log.Warn("forward ACK", "call_id", callID(req), "error", err)
	}
}

// proxy implements RFC 3261 §16 for one server transaction. It returns the
// final response to send upstream, or nil when it has sent one itself.
func (r *Registrar) proxy(ctx context.Context, req *sip.Request, tx sip.ServerTransaction) (*sip.Response, error) {
	if err := r.validate(req); err != nil {
		return nil, err
	}
	if req.IsCancel() {
		// A CANCEL that matched an INVITE transaction was handled by the
		// transaction layer; this one matched none.
		return nil, statusErr(sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil)
	}
	d, err := r.route(req)
	if err != nil {
		return nil, err
	}
	switch {
	case d.self:
		return r.answerSelf(req)
	case d.forward:
		out, err := r.forwardRequest(req, d.hop, nil, false)
		if err != nil {
			return nil, err
		}
		return r.fork(ctx, req, tx, []*sip.Request{out})
	}

	// A local AOR.
	if _, ok := r.users[d.user]; !ok {
		return nil, statusErr(sip.StatusNotFound, "Not Found", fmt.Errorf("user %q", d.user))
	}
	aor := r.aor(d.user)
	bs, err := r.store.Lookup(ctx, aor)
	if err != nil && !errors.Is(err, location.ErrNotFound) {
		return nil, statusErr(sip.StatusInternalServerError, "Server Internal Error", fmt.Errorf("lookup %s: %w", aor, err))
	}
	bs = live(bs, r.now())
	if len(bs) == 0 {
		return nil, statusErr(sip.StatusTemporarilyUnavailable, "Temporarily Unavailable", fmt.Errorf("%s has no binding", aor))
	}
	slices.SortStableFunc(bs, func(a, b location.Binding) int { return qOf(b) - qOf(a) })
	var outs []*sip.Request
	for _, b := range bs {
		var target sip.Uri
		if err := sip.ParseUri(b.Contact, &target); err != nil {
			r.log.Warn("unusable contact", "aor", aor, "contact", b.Contact, "error", err)
			continue
		}
		out, err := r.forwardRequest(req, r.bindingHop(b, &target), &target, dialogCreating(req))
		if err != nil {
			r.log.Warn("unusable contact", "aor", aor, "contact", b.Contact, "error", err)
			continue
		}
		outs = append(outs, out)
	}
	if len(outs) == 0 {
		return nil, statusErr(sip.StatusTemporarilyUnavailable, "Temporarily Unavailable", fmt.Errorf("%s has no usable binding", aor))
	}
	return r.fork(ctx, req, tx, outs)
}

// validate does the checks of RFC 3261 §16.3 that can reject a request.
func (r *Registrar) validate(req *sip.Request) error {
	if mf := req.MaxForwards(); mf != nil && mf.Val() == 0 && !(req.Method == sip.OPTIONS && r.isSelf(&req.Recipient)) {
		return statusErr(sip.StatusTooManyHops, "Too Many Hops", nil)
	}
	if req.From() == nil || req.To() == nil || req.CallID() == nil || req.CSeq() == nil {
		return statusErr(sip.StatusBadRequest, "Missing From, To, Call-ID or CSeq", nil)
	}
	if !req.IsCancel() {
		if err := r.checkRequire(fieldsOf(req), "Proxy-Require"); err != nil {
			return err
		}
	}
	// Loop detection (RFC 3261 §16.3 item 4): a Via of ours whose branch
	// carries the same loop hash means the request came back unchanged.
	hash := loopHash(req)
	for _, h := range req.GetHeaders("Via") {
		v, ok := h.(*sip.ViaHeader)
		if !ok || !r.isLocalHost(v.Host) {
			continue
		}
		if b, _ := v.Params.Get("branch"); strings.HasPrefix(b, branchPrefix+hash+".") {
			return statusErr(sip.StatusLoopDetected, "Loop Detected", fmt.Errorf("via %s", v.Value()))
		}
	}
	return nil
}

// route decides where a request goes (RFC 3261 §16.4, §16.5).
func (r *Registrar) route(req *sip.Request) (decision, error) {
	// Pop the Route entries that name us, keeping the last flow token.
	var flow flowKey
	popped, hasFlow := false, false
	for {
		rh := req.Route()
		if rh == nil || !r.isSelf(&rh.Address) {
			break
		}
		if fk, ok := r.parseFlowToken(rh.Address.User); ok {
			flow, hasFlow = fk, true
		}
		req.RemoveHeader("Route")
		popped = true
	}
	inDialog := toTag(req) != ""

	// Outside a dialog, a Route naming us (as a UA with an outbound proxy
	// sends) waives no check; inside one, the route set decides.
	if rh := req.Route(); rh != nil {
		if !inDialog {
			if err := r.authorizeRelay(req); err != nil {
				return decision{}, err
			}
		}
		h, err := uriHop(&rh.Address, req.Transport())
		return decision{forward: true, hop: h}, err
	}
	src := flowKey{transport: strings.ToUpper(req.Transport()), addr: req.Source()}
	if hasFlow && flow != src {
		return decision{forward: true, hop: hop{transport: flow.transport, addr: flow.addr}}, nil
	}
	if r.isSelf(&req.Recipient) {
		if req.Recipient.User == "" {
			return decision{self: true}, nil
		}
		if !inDialog && req.Method != sip.ACK {
			if err := r.authorizeCaller(req); err != nil {
				return decision{}, err
			}
		}
		return decision{local: true, user: req.Recipient.User}, nil
	}
	switch {
	case req.Method == sip.ACK && !popped:
		return decision{}, fmt.Errorf("%w: ACK for %s not routed through us", ErrNoRoute, req.Recipient.String())
	case req.Method != sip.ACK && (!popped || !inDialog):
		if err := r.authorizeRelay(req); err != nil {
			return decision{}, err
		}
	}
	h, err := uriHop(&req.Recipient, req.Transport())
	return decision{forward: true, hop: h}, err
}

// authorizeCaller challenges out-of-dialog requests whose From claims our
// domain: only that user may send them.
func (r *Registrar) authorizeCaller(req *sip.Request) error {
	from := req.From()
	if !r.isLocalHost(from.Address.Host) {
		return nil
	}
	user, err := r.authenticate(req.Method, fieldsOf(req), from.Address.User, true)
	if err != nil {
		return err
	}
	if user != from.Address.User {
		return statusErr(sip.StatusForbidden, "Forbidden", fmt.Errorf("user %q may not send as %q", user, from.Address.User))
	}
	return nil
}

// authorizeRelay lets only our authenticated users send requests to other
// domains, so the proxy is no open relay.
func (r *Registrar) authorizeRelay(req *sip.Request) error {
	if !r.isLocalHost(req.From().Address.Host) {
		return statusErr(sip.StatusForbidden, "Relaying Denied", fmt.Errorf("from %s to %s", req.From().Address.String(), req.Recipient.String()))
	}
	return r.authorizeCaller(req)
}

// statelessChallenge is the 407 that the proxy answers rq, an INVITE
// that parseRequest read, with: its From names a user of ours and it has
// no credentials. It is nil for an INVITE that needs more than that
// answer, which then goes through a transaction as before: one in a
// dialog, with a Route, with Max-Forwards 0, with a Via of ours (a
// loop), to the registrar itself, with an unsupported Proxy-Require, or
// with credentials. Those are the checks of validate and route that come
// before authorizeCaller, so the answer is the same either way.
//
// This is written here because it takes a transaction off the proxy's
// hot path: every authenticated call starts with an INVITE that is
// answered 407, and sipgo gave it a parse, a server transaction with its
// goroutine and timers, both messages kept for seconds, and the same
// again for the ACK. Without them a call costs about a fifth less CPU
// (docs/BENCHMARKS.md). Kamailio's auth module answers these with sl,
// statelessly, too.
func (r *Registrar) statelessChallenge(rq *regRequest, via topVia) *StatusError {
	if r.authOff || !rq.plainInvite() || !strings.HasPrefix(via.branch, sip.RFC3261BranchMagicCookie) {
		return nil
	}
	if _, ok := rq.fields.first("Proxy-Authorization"); ok {
		return nil
	}
	if !r.isLocalHost(rq.fromURI.Host) || r.isSelf(&rq.ruri) && rq.ruri.User == "" {
		return nil
	}
	if r.checkRequire(rq.fields, "Proxy-Require") != nil {
		return nil
	}
	return r.challenge(rq.fields, true, false, nil)
}

// plainInvite reports whether rq, read by parseRequest, is an INVITE
// outside a dialog that validate would pass and route would not forward
// by a Route: with To, From, Call-ID and CSeq, Max-Forwards above 0, and
// no Via of ours. statelessChallenge and proxyInvite take only these.
func (rq *regRequest) plainInvite() bool {
	return rq.method == sip.INVITE && !rq.toTag && !rq.routed && !rq.noHops && !rq.looped &&
		rq.hasTo && rq.from != "" && rq.callID != "" && rq.hasCSeq
}

// answerSelf answers a request addressed to the registrar itself.
func (r *Registrar) answerSelf(req *sip.Request) (*sip.Response, error) {
	if req.Method != sip.OPTIONS {
		return nil, statusErr(sip.StatusMethodNotAllowed, "Method Not Allowed", fmt.Errorf("%s to the registrar", req.Method),
			[2]string{"Allow", "REGISTER, OPTIONS"})
	}
	res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
	res.AppendHeader(sip.NewHeader("Allow", allow))
	res.AppendHeader(sip.NewHeader("Accept", "application/sdp"))
	res.AppendHeader(sip.NewHeader("Supported", strings.Join(supported, ", ")))
	return res, nil
}

// bindingHop is where to send requests for a binding: over the flow its
// REGISTER came on (RFC 5626 §5.3, RFC 3581), unless that was a stream
// that is gone, or the contact asks for another transport.
func (r *Registrar) bindingHop(b location.Binding, contact *sip.Uri) hop {
	fk := flowKey{transport: b.Transport, addr: b.Source}
	want := strings.ToUpper(contact.UriParams.GetOr("transport", ""))
	if want == "" || want == b.Transport || (contact.IsEncrypted() && b.Transport == "TLS") {
		if !fk.stream() || r.flowAlive(fk) {
			return hop{transport: fk.transport, addr: fk.addr}
		}
	}
	h, err := uriHop(contact, b.Transport)
	if err != nil {
		return hop{transport: fk.transport, addr: fk.addr}
	}
	return h
}

// uriHop is the next hop for a URI (RFC 3263 without DNS: hosts are
// resolved by the transport layer).
func uriHop(u *sip.Uri, fallback string) (hop, error) {
	if u.Host == "" {
		return hop{}, fmt.Errorf("%w: %q has no host", ErrNoRoute, u.String())
	}
	t := strings.ToUpper(u.UriParams.GetOr("transport", ""))
	if t == "" {
		t = "UDP"
		if u.IsEncrypted() {
			t = "TLS"
		}
	}
	if u.IsEncrypted() && t == "TCP" {
		t = "TLS"
	}
	_ = fallback
	port := u.Port
	if port == 0 {
		port = sip.DefaultPort(t)
	}
	return hop{transport: t, addr: net.JoinHostPort(strings.Trim(u.Host, "[]"), strconv.Itoa(port))}, nil
}

const branchPrefix = sip.RFC3261BranchMagicCookie + "-sl"

// forwardRequest builds the copy of req to send to h (RFC 3261 §16.6).
//
// The copy shares req's headers, except those it changes: sipgo's Clone
// copied every header of every request and response relayed, a quarter
// of what the proxy allocated under call load (docs/BENCHMARKS.md).
// Shared headers are only read from then on; sipgo copies the ones it
// builds ACK, CANCEL and responses from.
func (r *Registrar) forwardRequest(req *sip.Request, h hop, target *sip.Uri, recordRoute bool) (*sip.Request, error) {
	if !r.hasTransport(h.transport) {
		return nil, fmt.Errorf("%w: %s to %s is not enabled", ErrNoRoute, h.transport, h.addr)
	}
	recipient := req.Recipient
	if target != nil {
		recipient = *target
	}
	out := sip.NewRequest(req.Method, *recipient.Clone())
	out.SipVersion = req.SipVersion
	firstVia, maxForwards := true, false
	for _, hd := range req.Headers() {
		switch hd := hd.(type) {
		case *sip.ViaHeader:
			if firstVia {
				firstVia = false
				out.AppendHeader(receivedVia(hd, req.Source()))
				continue
			}
		case *sip.MaxForwardsHeader:
			if !maxForwards {
				maxForwards = true
				mf := max(*hd, 1) - 1
				out.AppendHeader(&mf)
				continue
			}
		}
		if strings.EqualFold(hd.Name(), "Proxy-Authorization") {
			// Credentials for our realm are consumed here (RFC 3261 §22.3).
			if c, err := digest.ParseCredentials(hd.Value()); err == nil && c.Realm == r.domain {
				continue
			}
		}
		out.AppendHeader(hd)
	}
	if !maxForwards {
		mf := sip.MaxForwardsHeader(70)
		out.AppendHeader(&mf)
	}
	out.SetBody(req.Body())
	in := strings.ToUpper(req.Transport())
	outEP, inEP := r.endpoint(h.transport), r.endpoint(in)
	if recordRoute {
		// Double Record-Route (RFC 5658): each side sees the address and
		// transport it reaches us on, and a flow token for the other side.
		out.PrependHeader(r.recordRoute(inEP, flowKey{transport: in, addr: req.Source()}))
		out.PrependHeader(r.recordRoute(outEP, flowKey{transport: h.transport, addr: h.addr}))
	}
	via := &sip.ViaHeader{
		ProtocolName: "SIP", ProtocolVersion: "2.0",
		Transport: h.transport, Host: outEP.Host, Port: outEP.Port,
		Params: sip.NewParams(),
	}
	via.Params.Add("branch", branchPrefix+loopHash(req)+"."+sip.GenerateTagN(10))
	out.PrependHeader(via)
	out.SetTransport(h.transport)
	out.SetDestination(h.addr)
	out.SetSource("")
	out.Laddr = sip.Addr{}
	if h.transport == "UDP" {
		// Send from the listening socket, so replies and NATs see our port.
		if host, port, err := sip.ParseAddr(outEP.Local); err == nil {
			out.Laddr = sip.Addr{IP: net.ParseIP(host), Port: port, Hostname: host}
		}
	}
	return out, nil
}

// receivedVia is a copy of the Via a request came with that says where
// it really came from (RFC 3261 §18.2.1, RFC 3581).
func receivedVia(v *sip.ViaHeader, source string) *sip.ViaHeader {
	host, port, err := net.SplitHostPort(source)
	if err != nil || (v.Host == host && !v.Params.Has("rport")) {
		return v
	}
	v = v.Clone()
	if v.Host != host {
		v.Params.Add("received", host)
	}
	if v.Params.Has("rport") {
		v.Params.Add("rport", port)
		v.Params.Add("received", host)
	}
	return v
}

func (r *Registrar) recordRoute(ep Endpoint, fk flowKey) *sip.RecordRouteHeader {
	return &sip.RecordRouteHeader{Address: sip.Uri{
		Scheme: "sip",
		User:   r.flowToken(fk),
		Host:   ep.Host,
		Port:   ep.Port,
		UriParams: sip.HeaderParams{
			{K: "transport", V: strings.ToLower(ep.Transport)},
			{K: "lr", V: ""},
		},
	}}
}

// loopHash digests what a request's identity is for loop detection (RFC
// 3261 §16.6 item 8).
func loopHash(req *sip.Request) string {
	var fromTag string
	if f := req.From(); f != nil {
		fromTag = f.Params.GetOr("tag", "")
	}
	var seq uint32
	if c := req.CSeq(); c != nil {
		seq = c.SeqNo
	}
	var room [4]string
	prs := room[:0]
	for pr := range headersNamed(req, "Proxy-Require") {
		prs = append(prs, pr.Value())
	}
	return loopHashOf(req.Recipient.String(), fromTag, toTag(req), callID(req), seq, prs)
}

// loopHashOf is loopHash of the parts it reads, for a request read
// without sipgo's parse.
func loopHashOf(ruri, fromTag, toTag, callID string, seq uint32, proxyRequire []string) string {
	h := sha256.New()
	h.Write([]byte(ruri))
	h.Write([]byte(fromTag))
	h.Write([]byte(toTag))
	h.Write([]byte(callID))
	var n [20]byte
	h.Write(strconv.AppendUint(n[:0], uint64(seq), 10))
	for _, v := range proxyRequire {
		h.Write([]byte(v))
	}
	return hex.EncodeToString(h.Sum(nil)[:6])
}

// fork sends outs in parallel and relays responses upstream (RFC 3261
// §16.7): provisionals and every 2xx at once, otherwise the best final
// response once all branches have ended. The first 2xx CANCELs the rest.
func (r *Registrar) fork(ctx context.Context, req *sip.Request, tx sip.ServerTransaction, outs []*sip.Request) (*sip.Response, error) {
	if req.IsInvite() {
		r.respond(tx, req, sip.NewResponseFromRequest(req, sip.StatusTrying, "Trying", nil))
	}
	f := &forker{r: r, req: req, tx: tx}
	f.branches = make([]*branch, len(outs))
	for i, out := range outs {
		f.branches[i] = &branch{req: out}
	}
	if req.IsInvite() {
		tx.OnCancel(func(*sip.Request) { go f.cancelAll() })
	}
	var wg sync.WaitGroup
	for _, b := range f.branches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.run(ctx, b)
		}()
	}
	wg.Wait()

	f.mu.Lock()
	defer f.mu.Unlock()
	if f.answered || f.canceled {
		return nil, nil
	}
	finals := make([]*sip.Response, 0, len(f.branches))
	for _, b := range f.branches {
		finals = append(finals, b.final)
	}
	best := bestResponse(finals)
	if best == nil {
		return nil, statusErr(sip.StatusRequestTimeout, "Request Timeout", errors.New("no branch answered"))
	}
	return f.upstream(best, finals), nil
}

type forker struct {
	r   *Registrar
	req *sip.Request
	tx  sip.ServerTransaction

	mu       sync.Mutex
	branches []*branch
	answered bool // a 2xx went upstream
	canceled bool
}

type branch struct {
	req         *sip.Request
	tx          sip.ClientTransaction
	provisional bool // a provisional came, so CANCEL may be sent
	cancel      bool // CANCEL wanted
	cancelSent  bool
	final       *sip.Response
}

func (f *forker) run(ctx context.Context, b *branch) {
	ctx, stop := context.WithTimeout(ctx, branchTimeout)
	defer stop()
	tx, err := f.r.client.TransactionRequest(ctx, b.req, keep)
	if err != nil {
		f.r.log.Info("branch failed", "call_id", callID(f.req), "to", b.req.Destination(), "error", err)
		f.finish(b, synthetic(b.req, sip.StatusTemporarilyUnavailable, "Temporarily Unavailable"))
		return
	}
	defer tx.Terminate()
	f.mu.Lock()
	b.tx = tx
	f.mu.Unlock()
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				f.provisional(b, res)
				continue
			}
			f.finish(b, res)
			return
		case <-tx.Done():
			err := tx.Err()
			code, reason := sip.StatusRequestTimeout, "Request Timeout"
			if errors.Is(err, sip.ErrTransactionTransport) {
				code, reason = sip.StatusTemporarilyUnavailable, "Temporarily Unavailable"
			}
			f.r.log.Info("branch ended without answer", "call_id", callID(f.req), "to", b.req.Destination(), "error", err)
			f.finish(b, synthetic(b.req, code, reason))
			return
		case <-ctx.Done():
			f.cancelBranch(b)
			f.finish(b, synthetic(b.req, sip.StatusRequestTimeout, "Request Timeout"))
			return
		}
	}
}

func (f *forker) provisional(b *branch, res *sip.Response) {
	f.mu.Lock()
	b.provisional = true
	sendCancel := b.cancel && !b.cancelSent
	relay := res.StatusCode > 100 && !f.answered && !f.canceled
	f.mu.Unlock()
	if sendCancel {
		f.cancelBranch(b)
	}
	if relay {
		f.r.respond(f.tx, f.req, relayed(res))
	}
}

func (f *forker) finish(b *branch, res *sip.Response) {
	f.mu.Lock()
	b.final = res
	success := res.IsSuccess()
	canceled := f.canceled
	if success {
		f.answered = true
	}
	f.mu.Unlock()
	if !success {
		return
	}
	if canceled {
		// The caller gave up; this callee answered anyway: end its call.
		f.r.hangUp(f.req, b.req, res)
		return
	}
	f.r.respond(f.tx, f.req, relayed(res))
	if f.req.IsInvite() {
		f.cancelOthers(b)
	}
}

func (f *forker) cancelAll() {
	f.mu.Lock()
	f.canceled = true
	f.mu.Unlock()
	f.cancelOthers(nil)
}

func (f *forker) cancelOthers(keep *branch) {
	for _, b := range f.branches {
		if b != keep {
			f.cancelBranch(b)
		}
	}
}

// cancelBranch CANCELs a pending INVITE branch, once, and only after it
// has seen a provisional response (RFC 3261 §9.1).
func (f *forker) cancelBranch(b *branch) {
	f.mu.Lock()
	if !f.req.IsInvite() || b.final != nil || b.cancelSent {
		f.mu.Unlock()
		return
	}
	b.cancel = true
	if !b.provisional {
		f.mu.Unlock()
		return
	}
	b.cancelSent = true
	f.mu.Unlock()

	c := cancelRequest(b.req)
	ctx, stop := context.WithTimeout(context.Background(), 32*time.Second)
	defer stop()
	res, err := f.r.client.Do(ctx, c, keep)
	if err != nil {
		f.r.log.Info("CANCEL branch", "call_id", callID(f.req), "to", b.req.Destination(), "error", err)
		return
	}
	f.r.log.Debug("CANCEL branch answered", "call_id", callID(f.req), "status", res.StatusCode)
}

// upstream prepares the best final response for the caller, with every
// branch's challenges when it is a 401 or 407 (RFC 3261 §16.7 item 7).
func (f *forker) upstream(best *sip.Response, finals []*sip.Response) *sip.Response {
	out := relayed(best)
	if best.StatusCode == sip.StatusServiceUnavailable {
		// A 503 from downstream is not ours to pass on (RFC 3261 §16.7 item 6).
		out.StatusCode, out.Reason = sip.StatusInternalServerError, "Server Internal Error"
	}
	if best.StatusCode == sip.StatusUnauthorized || best.StatusCode == sip.StatusProxyAuthRequired {
		for _, res := range finals {
			if res == nil || res == best {
				continue
			}
			for _, name := range []string{"WWW-Authenticate", "Proxy-Authenticate"} {
				for _, h := range res.GetHeaders(name) {
					out.AppendHeader(sip.NewHeader(name, h.Value()))
				}
			}
		}
	}
	return out
}

// bestResponse picks the final response to send upstream when no branch
// succeeded (RFC 3261 §16.7 item 6): a 6xx if any, else one of the lowest
// class, where 401, 407, 415, 420 and 484 win within 4xx.
func bestResponse(finals []*sip.Response) *sip.Response {
	var best *sip.Response
	rank := func(res *sip.Response) int {
		c := res.StatusCode
		switch {
		case c >= 600:
			return 0
		case c >= 300 && c < 400:
			return 1000 + c
		case c == 401, c == 407, c == 415, c == 420, c == 484:
			return 2000 + c
		case c >= 400 && c < 500:
			return 3000 + c
		case c == 503:
			return 5000 + c
		default:
			return 4000 + c
		}
	}
	for _, res := range finals {
		if res == nil || res.IsProvisional() {
			continue
		}
		if best == nil || rank(res) < rank(best) {
			best = res
		}
	}
	return best
}

// relayed turns a branch's response into the one for upstream: our Via
// goes, and the transport layer sends it where the next Via says. The
// other headers are shared with res, as in forwardRequest.
func relayed(res *sip.Response) *sip.Response {
	out := sip.NewResponse(res.StatusCode, res.Reason)
	out.SipVersion = res.SipVersion
	firstVia := true
	for _, h := range res.Headers() {
		if _, ok := h.(*sip.ViaHeader); ok && firstVia {
			firstVia = false
			continue
		}
		out.AppendHeader(h)
	}
	out.SetBody(res.Body())
	return out
}

// synthetic is a final response the proxy makes up for a branch. It is
// built on the branch request, so it carries our Via like a real one.
func synthetic(req *sip.Request, code int, reason string) *sip.Response {
	return sip.NewResponseFromRequest(req, code, reason, nil)
}

// cancelRequest builds the CANCEL for an INVITE branch (RFC 3261 §9.1).
func cancelRequest(inv *sip.Request) *sip.Request {
	c := sip.NewRequest(sip.CANCEL, *inv.Recipient.Clone())
	c.AppendHeader(sip.HeaderClone(inv.Via()))
	for _, h := range inv.GetHeaders("Route") {
		c.AppendHeader(sip.HeaderClone(h))
	}
	c.AppendHeader(sip.HeaderClone(inv.From()))
	c.AppendHeader(sip.HeaderClone(inv.To()))
	c.AppendHeader(sip.HeaderClone(inv.CallID()))
	c.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sip.CANCEL})
	mf := sip.MaxForwardsHeader(70)
	c.AppendHeader(&mf)
	c.SetBody(nil)
	c.SetTransport(inv.Transport())
	c.SetDestination(inv.Destination())
	c.Laddr = inv.Laddr
	return c
}

// hangUp ACKs and BYEs a callee that answered after the caller cancelled.
func (r *Registrar) hangUp(orig, inv *sip.Request, res *sip.Response) {
	target := inv.Recipient
	if c := res.Contact(); c != nil {
		target = c.Address
	}
	for _, m := range []sip.RequestMethod{sip.ACK, sip.BYE} {
		req := sip.NewRequest(m, *target.Clone())
		for _, h := range res.GetHeaders("Record-Route") {
			rr := h.(*sip.RecordRouteHeader)
			if r.isSelf(&rr.Address) {
				continue
			}
			req.AppendHeader(&sip.RouteHeader{Address: rr.Address})
		}
		req.AppendHeader(sip.HeaderClone(inv.From()))
		req.AppendHeader(sip.HeaderClone(res.To()))
		req.AppendHeader(sip.HeaderClone(inv.CallID()))
		seq := inv.CSeq().SeqNo
		if m == sip.BYE {
			seq++
		}
		req.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: m})
		req.SetBody(nil)
		h := hop{transport: strings.ToUpper(inv.Transport()), addr: inv.Destination()}
		out, err := r.forwardRequest(req, h, nil, false)
		if err != nil {
			r.log.Warn("hang up late answer", "call_id", callID(orig), "error", err)
			return
		}
		if m == sip.ACK {
			err = r.client.WriteRequest(out, keep)
		} else {
			ctx, stop := context.WithTimeout(context.Background(), 32*time.Second)
			_, err = r.client.Do(ctx, out, keep)
			stop()
		}
		if err != nil {
			r.log.Info("hang up late answer", "call_id", callID(orig), "method", m, "error", err)
		}
	}
}

// forwardStateless sends a final response that matched no transaction
// to the next Via, when the top Via is ours (RFC 3261 §16.7): a 2xx
// retransmitted, or a failure that came after its transaction ended.
// A provisional response is dropped, although §16.7 says to forward it
// too: a branch's transaction ends at its final response, so a
// provisional that matches none came after the final one. sipgo hands
// each response to its own goroutine, so a 180 can be overtaken by its
// 200; relayed, it reached the caller after the 200. Kamailio's tm
// drops such a late provisional too.
func (r *Registrar) forwardStateless(res *sip.Response) {
	v := res.Via()
	if v == nil || !r.isLocalHost(v.Host) || res.IsProvisional() {
		return
	}
	if b, _ := v.Params.Get("branch"); !strings.HasPrefix(b, branchPrefix) {
		return
	}
	out := relayed(res)
	if out.Via() == nil {
		return
	}
	out.SetTransport(out.Via().Transport)
	err := r.writeUDP(out)
	if errors.Is(err, errNotUDP) {
		// Over TCP or TLS, only on the connection the request came on.
		err = r.client.TransportLayer().WriteMsg(out)
	}
	if err != nil {
		r.log.Debug("forward stray response", "call_id", callIDOf(res), "error", err)
	}
}

var errNotUDP = errors.New("not for UDP")

// writeUDP sends a response over UDP to where its top Via says
// (RFC 3261 §18.2.2; received and rport, RFC 3581 §4), from the SIP
// socket. sipgo's transport layer sends a response only where a
// request came from lately, and a stray response may come when that is
// forgotten.
func (r *Registrar) writeUDP(res *sip.Response) error {
	v := res.Via()
	r.mu.Lock()
	conns := r.udp
	r.mu.Unlock()
	if !strings.EqualFold(v.Transport, "UDP") || len(conns) == 0 {
		return errNotUDP
	}
	host, port := v.Host, v.Port
	if rcv, ok := v.Params.Get("received"); ok {
		host = rcv
	}
	if rp, ok := v.Params.Get("rport"); ok {
		if n, err := strconv.Atoi(rp); err == nil {
			port = n
		}
	}
	if port == 0 {
		port = 5060
	}
	if port < 0 || port > 65535 {
		return fmt.Errorf("Via port %d out of range", port)
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	if err != nil {
		return fmt.Errorf("%w: Via host %q is no address", errNotUDP, host)
	}
	ip = ip.Unmap()
	dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(port)))
	pc := conns[0] // a dual-stack socket sends to either family
	for _, c := range conns {
		if local, ok := c.LocalAddr().(*net.UDPAddr); ok && (local.IP.To4() != nil) == ip.Is4() {
			pc = c
			break
		}
	}
	_, err = pc.WriteTo([]byte(res.String()), dst)
	return err
}

// keep is a request option that leaves the request as built.
func keep(*sipgo.Client, *sip.Request) error { return nil }

func dialogCreating(req *sip.Request) bool {
	switch req.Method {
	case sip.INVITE, sip.SUBSCRIBE, sip.REFER:
		return toTag(req) == ""
	}
	return false
}

func toTag(req *sip.Request) string {
	if to := req.To(); to != nil {
		return to.Params.GetOr("tag", "")
	}
	return ""
}

func callID(req *sip.Request) string { return callIDOf(req) }

func callIDOf(m interface{ CallID() *sip.CallIDHeader }) string {
	if c := m.CallID(); c != nil {
		return c.Value()
	}
	return ""
}

func qOf(b location.Binding) int {
	if b.Q == 0 {
		return 1000
	}
	return b.Q
}
