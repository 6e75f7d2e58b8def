package phone

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// registration is the state of our REGISTER dialog-let: one Call-ID and a
// growing CSeq across refreshes (RFC 3261 §10.2.4).
type registration struct {
	callID string
	cseq   uint32
}

// keepRegistered registers, refreshes before expiry, retries with backoff
// while the registrar is down or refuses, and unregisters when ctx ends.
func (p *Phone) keepRegistered(ctx context.Context, ready func()) error {
	p.reg.callID = sip.GenerateTagN(16) + "@" + p.local.Addr().String()
	backoff := time.Second
	first := true
	for ctx.Err() == nil {
		granted, err := p.register(ctx, p.cfg.Expires)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			p.log.Warn("register failed", "error", err, "retry_in", backoff.String())
			p.emit(Event{Kind: "register-failed", Detail: err.Error()})
			if !sleep(ctx, backoff) {
				break
			}
			backoff = min(2*backoff, time.Minute)
			continue
		}
		backoff = time.Second
		p.registered.Store(true)
		p.emit(Event{Kind: "registered", Detail: fmt.Sprintf("for %d s", granted)})
		if first && ready != nil {
			ready()
			first = false
		}
		refresh := time.NewTimer(max(time.Duration(granted)*time.Second*8/10, time.Second))
		select {
		case <-ctx.Done():
		case <-refresh.C:
		case why := <-p.kick:
			// The flow died: register again now, over a new one.
			p.registered.Store(false)
			p.log.Warn("flow to the registrar failed, registering again", "error", why)
			p.emit(Event{Kind: "reconnecting", Detail: why})
		}
		refresh.Stop()
	}
	p.registered.Store(false)
	uctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := p.register(uctx, 0); err != nil {
		p.log.Warn("unregister failed", "error", err)
		return nil
	}
	p.emit(Event{Kind: "unregistered"})
	return nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// register sends one REGISTER, answering a digest challenge, and returns
// the lifetime the registrar granted.
func (p *Phone) register(ctx context.Context, expires int) (int, error) {
	aor := p.aor()
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: p.cfg.Domain})
	from := &sip.FromHeader{Address: aor, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(10))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: aor})
	callID := sip.CallIDHeader(p.reg.callID)
	req.AppendHeader(&callID)
	p.reg.cseq++
	req.AppendHeader(&sip.CSeqHeader{SeqNo: p.reg.cseq, MethodName: sip.REGISTER})
	contact := p.contact()
	req.AppendHeader(&contact)
	if p.extraContact != nil {
		req.AppendHeader(p.extraContact)
	}
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(expires)))
	req.AppendHeader(p.route())
	p.prepare(req)

	res, err := p.client.Do(ctx, req)
	// A challenge gets credentials; a stale nonce (RFC 7616 §3.3) gets
	// them again at once, once, with the fresh nonce.
	for try := 0; err == nil && try < 2 && challenged(res) && (try == 0 || stale(res)); try++ {
		res, err = p.client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: p.cfg.User, Password: p.cfg.Password})
		p.reg.cseq = req.CSeq().SeqNo
	}
	if err != nil {
		return 0, fmt.Errorf("REGISTER to %s: %w", p.cfg.Registrar, err)
	}
	if res.StatusCode != sip.StatusOK {
		return 0, fmt.Errorf("REGISTER to %s: %d %s", p.cfg.Registrar, res.StatusCode, res.Reason)
	}
	if expires > 0 && p.cfg.Transport == "udp" && p.extraContact == nil {
		if public, ok := rportCorrection(p.contactAddr(), res.Via()); ok {
			// Behind a NAT (RFC 3581): register the address the registrar
			// sees instead, and drop the one it cannot reach.
			p.log.Info("registrar sees another address; registering that", "contact", public.String())
			old := p.contact()
			p.mu.Lock()
			p.public = public
			p.mu.Unlock()
			return p.reregister(ctx, expires, old)
		}
	}
	granted := expires
	for _, h := range res.GetHeaders("Contact") {
		c, ok := h.(*sip.ContactHeader)
		if !ok || c.Address.Host != contact.Address.Host || c.Address.Port != contact.Address.Port {
			continue
		}
		if v, ok := c.Params.Get("expires"); ok {
			if n, err := strconv.Atoi(v); err == nil {
				granted = n
			}
		}
	}
	return granted, nil
}

// prepare makes an out-of-dialog request leave from our SIP socket on UDP,
// so replies and calls come back to the port in our Contact.
func (p *Phone) prepare(req *sip.Request) {
	req.SetTransport(sip.NetworkToUpper(p.cfg.Transport))
	if p.cfg.Transport == "udp" {
		req.Laddr = sip.Addr{IP: p.local.Addr().AsSlice(), Port: int(p.local.Port()), Hostname: p.local.Addr().String()}
	}
}

func challenged(res *sip.Response) bool {
	return res.StatusCode == sip.StatusUnauthorized || res.StatusCode == sip.StatusProxyAuthRequired
}

func stale(res *sip.Response) bool {
	for _, name := range []string{"WWW-Authenticate", "Proxy-Authenticate"} {
		for _, h := range res.GetHeaders(name) {
			if strings.Contains(strings.ToLower(strings.ReplaceAll(h.Value(), " ", "")), "stale=true") {
				return true
			}
		}
	}
	return false
}

// rportCorrection reports the address the registrar saw our request come
// from (Via received and rport, RFC 3581 §4), when it is not the one in
// our Contact.
func rportCorrection(contact netip.AddrPort, via *sip.ViaHeader) (netip.AddrPort, bool) {
	if via == nil {
		return netip.AddrPort{}, false
	}
	host, ok := via.Params.Get("received")
	if !ok || host == "" {
		host = via.Host
	}
	port := int(contact.Port())
	if v, ok := via.Params.Get("rport"); ok && v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > 65535 {
			return netip.AddrPort{}, false
		}
		port = n
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, false
	}
	seen := netip.AddrPortFrom(addr.Unmap(), uint16(port))
	return seen, seen != contact
}

// reregister registers the current Contact and removes old.
func (p *Phone) reregister(ctx context.Context, expires int, old sip.ContactHeader) (int, error) {
	old.Params = sip.NewParams()
	old.Params.Add("expires", "0")
	p.extraContact = &old
	defer func() { p.extraContact = nil }()
	return p.register(ctx, expires)
}
