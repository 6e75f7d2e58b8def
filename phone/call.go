package phone

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/sipline/sipline/media"
	"github.com/sipline/sipline/sdp"
)

// State is where a call is in its life.
type State int

// Call states.
const (
	Calling     State = iota + 1 // we sent INVITE
	Ringing                      // it rings, here or there
	Established                  // answered, media flows
	Ended
)

func (s State) String() string {
	switch s {
	case Calling:
		return "calling"
	case Ringing:
		return "ringing"
	case Established:
		return "established"
	case Ended:
		return "ended"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Summary is what a call was, printed at hangup.
type Summary struct {
	ID       string
	Peer     string
	Outgoing bool
	Duration time.Duration // from answer to hangup
	Reason   string
	Media    media.Stats
}

func (s Summary) String() string {
	dir := "from"
	if s.Outgoing {
		dir = "to"
	}
	m := s.Media
	rtt := "unknown"
	if m.RTT > 0 {
		rtt = m.RTT.Round(10 * time.Microsecond).String()
	}
	return fmt.Sprintf("call %s %s %s: %s, lasted %s, codec %s, packets sent %d received %d, lost %d (%.1f%%), jitter %.1f ms, RTT %s",
		s.ID, dir, s.Peer, s.Reason, s.Duration.Round(10*time.Millisecond), m.Codec, m.PacketsSent, m.PacketsReceived, m.Lost, m.LossPercent, m.Jitter, rtt)
}

type decision struct {
	answer bool
	code   int
}

// Call is one call, incoming or outgoing.
type Call struct {
	ID       string
	Outgoing bool
	Peer     string

	p      *Phone
	sipID  string
	rtp    net.PacketConn
	rtcp   net.PacketConn
	local  sdp.Local
	cancel context.CancelFunc // ends an outgoing INVITE
	decide chan decision      // answers an incoming one

	mu       sync.Mutex
	state    State
	cli      *sipgo.DialogClientSession
	srv      *sipgo.DialogServerSession
	media    *media.Session
	source   media.Source
	sink     media.Sink
	answered time.Time
	summary  Summary
	done     chan struct{}
}

// State returns the call's state.
func (c *Call) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Done is closed when the call has ended.
func (c *Call) Done() <-chan struct{} { return c.done }

// Summary is the call's record; complete once Done is closed.
func (c *Call) Summary() Summary {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.summary
}

func (p *Phone) newCall(outgoing bool, peer, sipID string) (*Call, error) {
	host := p.local.Addr()
	rtp, rtcp, err := listenPair(host)
	if err != nil {
		return nil, fmt.Errorf("phone: RTP socket: %w", err)
	}
	port := rtp.LocalAddr().(*net.UDPAddr).Port
	c := &Call{
		ID: p.nextID(), Outgoing: outgoing, Peer: peer, p: p, sipID: sipID, rtp: rtp, rtcp: rtcp,
		decide: make(chan decision, 1), done: make(chan struct{}), state: Calling,
		local: sdp.Local{Addr: host, Port: port, Codecs: p.codecs, Username: "sipline",
			SessionID: uint64(time.Now().UnixNano() & 0x7fffffffffff), Version: 1},
	}
	c.summary = Summary{ID: c.ID, Peer: peer, Outgoing: outgoing}
	return c, nil
}

func (p *Phone) track(c *Call) {
	p.mu.Lock()
	p.calls[c.sipID] = c
	p.mu.Unlock()
}

func (p *Phone) lookup(req *sip.Request) *Call {
	p.mu.Lock()
	defer p.mu.Unlock()
	if id := req.CallID(); id != nil {
		return p.calls[id.Value()]
	}
	return nil
}

func (p *Phone) busy() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.calls) > 0
}

// Call places a call to target ("bob", "bob@host" or a SIP URI). It
// returns once the call has started; watch Events or Done for the rest.
func (p *Phone) Call(ctx context.Context, target string) (*Call, error) {
	to, err := p.Target(target)
	if err != nil {
		return nil, err
	}
	c, err := p.newCall(true, to.String(), "")
	if err != nil {
		return nil, err
	}
	offer, err := sdp.Offer(c.local)
	if err != nil {
		c.rtp.Close()
		c.rtcp.Close()
		return nil, err
	}
	ictx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	ct := sip.ContentTypeHeader("application/sdp")
	from := &sip.FromHeader{Address: p.aor(), Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(10))
	req := sip.NewRequest(sip.INVITE, to)
	req.SetBody(offer)
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: to})
	req.AppendHeader(p.route())
	req.AppendHeader(&ct)
	p.prepare(req)
	dlg, err := p.dialog.WriteInvite(ictx, req)
	if err != nil {
		cancel()
		c.rtp.Close()
		c.rtcp.Close()
		return nil, fmt.Errorf("phone: INVITE %s: %w", to.String(), err)
	}
	c.cli, c.sipID = dlg, dlg.InviteRequest.CallID().Value()
	p.track(c)
	p.log.Info("calling", "call_id", c.sipID, "to", to.String())
	p.emit(Event{CallID: c.ID, Kind: "calling", Detail: to.String(), Call: c})
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.runOutgoing(ictx, c)
	}()
	return c, nil
}

func (p *Phone) runOutgoing(ctx context.Context, c *Call) {
	err := c.cli.WaitAnswer(ctx, sipgo.AnswerOptions{
		Username: p.cfg.User, Password: p.cfg.Password,
		OnResponse: func(res *sip.Response) error {
			if res.StatusCode == 180 || res.StatusCode == 183 {
				c.setState(Ringing)
				p.emit(Event{CallID: c.ID, Kind: "ringing", Detail: fmt.Sprint(res.StatusCode, " ", res.Reason), Call: c})
				c.earlyMedia(res)
			}
			return nil
		},
	})
	if err != nil {
		var de *sipgo.ErrDialogResponse
		switch {
		case errors.As(err, &de):
			c.end(fmt.Sprintf("%d %s", de.Res.StatusCode, failureText(de.Res.StatusCode, de.Res.Reason)))
		case ctx.Err() != nil:
			c.end("cancelled")
		default:
			c.end("failed: " + err.Error())
		}
		return
	}
	res, err := sdp.Negotiated(c.cli.InviteResponse.Body(), c.local)
	if err == nil {
		c.mu.Lock()
		m := c.media
		c.mu.Unlock()
		if m != nil {
			// Early media already flows: follow the final answer.
			m.Update(res.Remote, res.Direction.Sends(), res.Direction.Receives())
		} else {
			err = c.startMedia(res)
		}
	}
	if aerr := c.cli.Ack(context.Background()); aerr != nil {
		p.log.Warn("ACK", "call_id", c.sipID, "error", aerr)
	}
	if err != nil {
		p.log.Warn("media", "call_id", c.sipID, "error", err)
		bctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = c.cli.Bye(bctx)
		cancel()
		c.end("media failed: " + err.Error())
		return
	}
	c.established()
}

// earlyMedia plays what a provisional response with an SDP answer brings
// (RFC 3960): a ringback tone or an announcement.
func (c *Call) earlyMedia(res *sip.Response) {
	if len(res.Body()) == 0 {
		return
	}
	c.mu.Lock()
	started := c.media != nil
	c.mu.Unlock()
	if started {
		return
	}
	r, err := sdp.Negotiated(res.Body(), c.local)
	if err != nil {
		c.p.log.Warn("early media refused", "call_id", c.sipID, "error", err)
		return
	}
	if err := c.startMedia(r); err != nil {
		c.p.log.Warn("early media", "call_id", c.sipID, "error", err)
		return
	}
	c.p.emit(Event{CallID: c.ID, Kind: "early-media", Detail: r.Codec.String(), Call: c})
}

// failureText makes a final response readable for a person.
func failureText(code int, reason string) string {
	switch code {
	case 404:
		return "no such user"
	case 480:
		return "not available now (not registered)"
	case 486:
		return "busy"
	case 488:
		return "no common codec"
	case 603:
		return "declined"
	case 408:
		return "no answer (timeout)"
	}
	return reason
}

func (c *Call) setState(s State) {
	c.mu.Lock()
	if c.state != Ended {
		c.state = s
	}
	c.mu.Unlock()
}

func (c *Call) established() {
	c.mu.Lock()
	c.state, c.answered = Established, time.Now()
	c.mu.Unlock()
	c.p.log.Info("call established", "call_id", c.sipID)
	c.p.emit(Event{CallID: c.ID, Kind: "answered", Call: c})
}

func (c *Call) startMedia(res sdp.Result) error {
	codec, ok := media.CodecByName(res.Codec.Name)
	if !ok {
		return fmt.Errorf("codec %s", res.Codec)
	}
	var src media.Source
	var sink media.Sink
	if c.p.cfg.Audio != nil {
		var err error
		if src, sink, err = c.p.cfg.Audio(); err != nil {
			return err
		}
	}
	cfg := media.Config{
		Conn: c.rtp, RTCP: c.rtcp, Remote: res.Remote, RemoteRTCP: res.RemoteRTCP, Codec: codec, PT: res.Codec.PT,
		Ptime: time.Duration(res.Ptime) * time.Millisecond,
		Send:  res.Direction.Sends(), Recv: res.Direction.Receives(), Source: src, Sink: sink,
		OnDTMF: func(d byte) {
			c.p.emit(Event{CallID: c.ID, Kind: "dtmf", Detail: string(d), Call: c})
		},
	}
	if res.DTMF.Name != "" {
		cfg.DTMFPT = res.DTMF.PT
	}
	m, err := media.Start(cfg)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.media, c.source, c.sink = m, src, sink
	c.mu.Unlock()
	return nil
}

// end stops the media and reports the call's summary, once.
func (c *Call) end(reason string) {
	c.mu.Lock()
	if c.state == Ended {
		c.mu.Unlock()
		return
	}
	c.state = Ended
	m, src, sink := c.media, c.source, c.sink
	c.summary.Reason = reason
	if !c.answered.IsZero() {
		c.summary.Duration = time.Since(c.answered)
	}
	c.mu.Unlock()
	if m != nil {
		c.summary.Media = m.Stats()
		_ = m.Close()
	} else {
		_ = c.rtp.Close()
		_ = c.rtcp.Close()
	}
	for _, cl := range []interface{ Close() error }{src, sink} {
		if cl != nil {
			_ = cl.Close()
		}
	}
	if c.cancel != nil {
		c.cancel()
	}
	c.p.mu.Lock()
	delete(c.p.calls, c.sipID)
	c.p.mu.Unlock()
	c.p.log.Info("call ended", "call_id", c.sipID, "reason", reason)
	c.p.emit(Event{CallID: c.ID, Kind: "ended", Detail: c.Summary().String(), Call: c})
	close(c.done)
}

// Answer accepts an incoming call that rings.
func (c *Call) Answer() error { return c.decideOnce(decision{answer: true}) }

// Reject refuses an incoming call that rings, with 486 Busy Here or 603 Decline.
func (c *Call) Reject(code int) error { return c.decideOnce(decision{code: code}) }

func (c *Call) decideOnce(d decision) error {
	if c.Outgoing || c.State() != Ringing {
		return fmt.Errorf("phone: call %s is %s, not ringing here", c.ID, c.State())
	}
	select {
	case c.decide <- d:
		return nil
	default:
		return fmt.Errorf("phone: call %s is already being answered", c.ID)
	}
}

// Hangup ends the call: BYE once answered, CANCEL while it rings out,
// 603 while it rings here.
func (c *Call) Hangup(ctx context.Context) error {
	switch st := c.State(); {
	case st == Ended:
		return nil
	case st == Established:
		var err error
		if c.cli != nil {
			err = c.cli.Bye(ctx)
		} else {
			err = c.srv.Bye(ctx)
		}
		c.end("hung up here")
		return err
	case c.Outgoing:
		c.cancel()
		return nil
	default:
		return c.Reject(603)
	}
}

// SendDTMF sends digits as RFC 4733 events.
func (c *Call) SendDTMF(digits string) error {
	c.mu.Lock()
	m := c.media
	c.mu.Unlock()
	if m == nil {
		return fmt.Errorf("phone: call %s has no media", c.ID)
	}
	return m.SendDTMF(digits)
}

func (p *Phone) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if c := p.lookup(req); c != nil {
		// A re-INVITE: hold, resume, a new address. Answer with what we have.
		p.onReinvite(c, req, tx)
		return
	}
	dlg, err := p.dialog.ReadInvite(req, tx)
	if err != nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 400, "Bad Request", nil))
		return
	}
	if p.busy() {
		_ = dlg.Respond(486, "Busy Here", nil)
		return
	}
	from := req.From().Address
	c, err := p.newCall(false, from.String(), req.CallID().Value())
	if err != nil {
		_ = dlg.Respond(500, "Server Internal Error", nil)
		return
	}
	c.srv = dlg
	answer, res, err := sdp.Answer(req.Body(), c.local)
	if err != nil {
		p.log.Warn("offer refused", "call_id", c.sipID, "error", err)
		_ = dlg.Respond(488, "Not Acceptable Here", nil)
		c.rtp.Close()
		c.rtcp.Close()
		return
	}
	p.track(c)
	c.setState(Ringing)
	_ = dlg.Respond(180, "Ringing", nil)
	p.emit(Event{CallID: c.ID, Kind: "incoming", Detail: from.String(), Call: c})
	if p.cfg.AutoAnswer {
		c.decide <- decision{answer: true}
	}
	// A call refused here ends before its final response goes out, so
	// that the phone is free when the caller learns of it: a caller that
	// called again at once was answered 486 Busy Here by the call it had
	// just been refused.
	select {
	case d := <-c.decide:
		if !d.answer {
			c.end(fmt.Sprintf("rejected here with %d", d.code))
			_ = dlg.Respond(d.code, reasonFor(d.code), nil)
			return
		}
	case <-dlg.Context().Done():
		c.end("cancelled by the caller")
		return
	case <-time.After(3 * time.Minute):
		c.end("not answered")
		_ = dlg.Respond(480, "Temporarily Unavailable", nil)
		return
	}
	if err := c.startMedia(res); err != nil {
		c.end("media failed: " + err.Error())
		_ = dlg.Respond(500, "Server Internal Error", nil)
		return
	}
	if err := dlg.RespondSDP(answer); err != nil {
		c.end("answer failed: " + err.Error())
		return
	}
	c.established()
}

func reasonFor(code int) string {
	switch code {
	case 486:
		return "Busy Here"
	case 603:
		return "Decline"
	}
	return "Rejected"
}

// onReinvite answers a re-INVITE of the established call: a new address
// or direction (hold and resume).
func (p *Phone) onReinvite(c *Call, req *sip.Request, tx sip.ServerTransaction) {
	c.mu.Lock()
	c.local.Version++
	local := c.local
	m := c.media
	c.mu.Unlock()
	answer, res, err := sdp.Answer(req.Body(), local)
	if err != nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 488, "Not Acceptable Here", nil))
		return
	}
	if m != nil {
		m.Update(res.Remote, res.Direction.Sends(), res.Direction.Receives())
	}
	out := sip.NewSDPResponseFromRequest(req, answer)
	contact := p.contact()
	out.AppendHeader(&contact)
	_ = tx.Respond(out)
	p.emit(Event{CallID: c.ID, Kind: "updated", Detail: res.Direction.String(), Call: c})
}

func (p *Phone) onAck(req *sip.Request, tx sip.ServerTransaction) {
	if c := p.lookup(req); c != nil && c.srv != nil {
		_ = c.srv.ReadAck(req, tx)
	}
}

func (p *Phone) onBye(req *sip.Request, tx sip.ServerTransaction) {
	c := p.lookup(req)
	if c == nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
		return
	}
	var err error
	if c.cli != nil {
		err = c.cli.ReadBye(req, tx)
	} else {
		err = c.srv.ReadBye(req, tx)
	}
	if err != nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
	}
	c.end("hung up by the other side")
}

// onInfo takes DTMF sent as SIP INFO (application/dtmf-relay).
func (p *Phone) onInfo(req *sip.Request, tx sip.ServerTransaction) {
	c := p.lookup(req)
	if c == nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
		return
	}
	_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	for _, line := range strings.Split(string(req.Body()), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "Signal") {
			p.emit(Event{CallID: c.ID, Kind: "dtmf", Detail: strings.TrimSpace(v), Call: c})
		}
	}
}

// Hold puts the peer on hold: a re-INVITE offering sendonly (RFC 3264 §8.4).
func (c *Call) Hold(ctx context.Context) error { return c.reinvite(ctx, sdp.SendOnly) }

// Resume takes the call off hold: a re-INVITE offering sendrecv.
func (c *Call) Resume(ctx context.Context) error { return c.reinvite(ctx, sdp.SendRecv) }

func (c *Call) reinvite(ctx context.Context, dir sdp.Direction) error {
	if c.State() != Established {
		return fmt.Errorf("phone: call %s is %s", c.ID, c.State())
	}
	c.mu.Lock()
	c.local.Direction = dir
	c.local.Version++
	local, m := c.local, c.media
	c.mu.Unlock()
	offer, err := sdp.Offer(local)
	if err != nil {
		return err
	}
	target := c.remoteTarget()
	req := sip.NewRequest(sip.INVITE, target)
	req.SetBody(offer)
	ct := sip.ContentTypeHeader("application/sdp")
	req.AppendHeader(&ct)
	var res *sip.Response
	if c.cli != nil {
		res, err = c.cli.Do(ctx, req)
	} else {
		res, err = c.srv.Do(ctx, req)
	}
	if err != nil {
		return fmt.Errorf("phone: re-INVITE: %w", err)
	}
	if !res.IsSuccess() {
		return fmt.Errorf("phone: re-INVITE: %d %s", res.StatusCode, res.Reason)
	}
	ack := sip.NewRequest(sip.ACK, target)
	ack.AppendHeader(&sip.CSeqHeader{SeqNo: req.CSeq().SeqNo, MethodName: sip.ACK})
	if c.cli != nil {
		err = c.cli.WriteRequest(ack)
	} else {
		err = c.srv.WriteRequest(ack)
	}
	if err != nil {
		return fmt.Errorf("phone: ACK re-INVITE: %w", err)
	}
	result, err := sdp.Negotiated(res.Body(), local)
	if err != nil {
		return err
	}
	if m != nil {
		// Holding, we mute our side too; the held peer stops sending.
		m.Update(result.Remote, result.Direction.Sends() && dir != sdp.SendOnly, result.Direction.Receives())
	}
	c.p.emit(Event{CallID: c.ID, Kind: "updated", Detail: result.Direction.String(), Call: c})
	return nil
}

// remoteTarget is the peer's Contact: where in-dialog requests go.
func (c *Call) remoteTarget() sip.Uri {
	if c.cli != nil {
		if h := c.cli.InviteResponse.Contact(); h != nil {
			return *h.Address.Clone()
		}
		return c.cli.InviteRequest.Recipient
	}
	if h := c.srv.InviteRequest.Contact(); h != nil {
		return *h.Address.Clone()
	}
	return c.srv.InviteRequest.Recipient
}

// listenPair binds an RTP socket on an even port and RTCP on the next.
func listenPair(host netip.Addr) (rtp, rtcp net.PacketConn, err error) {
	for range 50 {
		rtp, err = net.ListenPacket("udp", netip.AddrPortFrom(host, 0).String())
		if err != nil {
			return nil, nil, err
		}
		port := rtp.LocalAddr().(*net.UDPAddr).Port
		if port%2 == 0 && port < 65535 {
			if rtcp, err = net.ListenPacket("udp", netip.AddrPortFrom(host, uint16(port+1)).String()); err == nil {
				return rtp, rtcp, nil
			}
		}
		rtp.Close()
	}
	return nil, nil, fmt.Errorf("no free RTP/RTCP port pair on %s", host)
}
