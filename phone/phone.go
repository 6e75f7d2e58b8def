package phone

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/sipline/sipline/media"
	"github.com/sipline/sipline/sdp"
)

// Config is one account on one registrar.
type Config struct {
	// User and Password authenticate; the AOR is sip:User@Domain.
	User, Password string
	Domain         string
	// Registrar is the "host:port" requests go to (the outbound proxy).
	Registrar string
	// Transport is "udp", "tcp" or "tls". Over TLS the phone opens no
	// listener: requests reach it over the connection it registered on.
	Transport string
	// TLS configures the TLS client (trusted roots); nil means the system's.
	TLS *tls.Config
	// Listen is the local SIP address, "127.0.0.1:5070"; port 0 picks one.
	Listen string
	// Expires is the registration lifetime asked for, in seconds.
	Expires int
	// Codecs in order of preference: "PCMU", "PCMA".
	Codecs []string
	// AutoAnswer answers incoming calls at once.
	AutoAnswer bool
	// Keepalive is the interval of the heartbeat to the registrar; 30 s
	// when zero.
	Keepalive time.Duration
	// Audio opens the audio for a call: what to send and where what is
	// heard goes. nil means silence and nowhere.
	Audio func() (media.Source, media.Sink, error)
	// Events receives what happens, for printing; it must not block.
	Events func(Event)
	Logger *slog.Logger
}

// Event is something that happened to the phone or a call.
type Event struct {
	CallID string // our call ID, "" for registration events
	Kind   string // "registered", "ringing", "answered", "ended", "dtmf", …
	Detail string
	Call   *Call
}

// Phone is a registered user agent.
type Phone struct {
	cfg    Config
	log    *slog.Logger
	ua     *sipgo.UserAgent
	srv    *sipgo.Server
	client *sipgo.Client
	dialog *sipgo.DialogUA
	local  netip.AddrPort // our SIP address
	codecs []sdp.Codec

	mu    sync.Mutex
	calls map[string]*Call // by SIP Call-ID
	seq   int
	reg   registration
	wg    sync.WaitGroup

	public       netip.AddrPort     // our address as the registrar sees it, behind a NAT
	extraContact *sip.ContactHeader // a stale Contact to remove with the next REGISTER
	monitor      flowMonitor
	registered   atomic.Bool
	kick         chan string // re-register now, and why
}

// New validates cfg and binds the SIP socket.
func New(cfg Config) (*Phone, error) {
	if cfg.User == "" || cfg.Domain == "" || cfg.Registrar == "" {
		return nil, fmt.Errorf("phone: user, domain and registrar are needed")
	}
	if cfg.Transport == "" {
		cfg.Transport = "udp"
	}
	cfg.Transport = strings.ToLower(cfg.Transport)
	if cfg.Expires == 0 {
		cfg.Expires = 600
	}
	if cfg.Keepalive == 0 {
		cfg.Keepalive = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if len(cfg.Codecs) == 0 {
		cfg.Codecs = []string{"PCMU", "PCMA"}
	}
	p := &Phone{cfg: cfg, log: cfg.Logger.With("component", "phone", "aor", "sip:"+cfg.User+"@"+cfg.Domain),
		calls: map[string]*Call{}, kick: make(chan string, 1)}
	ra, err := net.ResolveUDPAddr("udp", cfg.Registrar)
	if err != nil {
		return nil, fmt.Errorf("phone: registrar %q: %w", cfg.Registrar, err)
	}
	p.monitor.remote = ra.String()
	for _, name := range cfg.Codecs {
		switch strings.ToUpper(name) {
		case "PCMU":
			p.codecs = append(p.codecs, sdp.PCMU)
		case "PCMA":
			p.codecs = append(p.codecs, sdp.PCMA)
		default:
			return nil, fmt.Errorf("phone: codec %q: want PCMU or PCMA", name)
		}
	}
	p.codecs = append(p.codecs, sdp.TelephoneEvent)
	return p, nil
}

// Run serves SIP and keeps the phone registered until ctx ends; then it
// hangs up, unregisters and returns.
func (p *Phone) Run(ctx context.Context, ready func()) error {
	host, _, err := net.SplitHostPort(p.cfg.Listen)
	if err != nil {
		return fmt.Errorf("phone: listen %q: %w", p.cfg.Listen, err)
	}
	p.ua, err = sipgo.NewUA(sipgo.WithUserAgent("sipline-phone"), sipgo.WithUserAgentHostname(p.cfg.Domain),
		sipgo.WithUserAgenTLSConfig(p.cfg.TLS),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(p.log), sip.WithTransportLayerReadFilter(p.monitor.readFilter)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(p.log)))
	if err != nil {
		return fmt.Errorf("phone: %w", err)
	}
	defer p.ua.Close()
	p.srv, err = sipgo.NewServer(p.ua, sipgo.WithServerLogger(p.log))
	if err != nil {
		return fmt.Errorf("phone: %w", err)
	}
	var serve func() error
	switch p.cfg.Transport {
	case "udp":
		c, err := net.ListenPacket("udp", p.cfg.Listen)
		if err != nil {
			return fmt.Errorf("phone: listen %s: %w", p.cfg.Listen, err)
		}
		p.local = c.LocalAddr().(*net.UDPAddr).AddrPort()
		serve = func() error { return p.srv.ServeUDP(c) }
		defer c.Close()
	case "tcp":
		l, err := net.Listen("tcp", p.cfg.Listen)
		if err != nil {
			return fmt.Errorf("phone: listen %s: %w", p.cfg.Listen, err)
		}
		p.local = l.Addr().(*net.TCPAddr).AddrPort()
		serve = func() error { return p.srv.ServeTCP(l) }
		defer l.Close()
	case "tls":
		addr, err := netip.ParseAddr(host)
		if err != nil {
			return fmt.Errorf("phone: listen %q: over TLS it must be an IP address: %w", p.cfg.Listen, err)
		}
		p.local = netip.AddrPortFrom(addr, 0)
		serve = func() error { return nil }
	default:
		return fmt.Errorf("phone: transport %q: want udp, tcp or tls", p.cfg.Transport)
	}
	// rport (RFC 3581) asks the registrar to say where our requests come from.
	copts := []sipgo.ClientOption{sipgo.WithClientHostname(host), sipgo.WithClientLogger(p.log), sipgo.WithClientNAT()}
	if p.cfg.Transport == "udp" {
		// Send from our SIP socket, so answers come back to it.
		copts = append(copts, sipgo.WithClientConnectionAddr(p.local.String()))
	}
	p.client, err = sipgo.NewClient(p.ua, copts...)
	if err != nil {
		return fmt.Errorf("phone: %w", err)
	}
	p.dialog = &sipgo.DialogUA{Client: p.client, ContactHDR: p.contact()}
	p.srv.OnInvite(p.onInvite)
	p.srv.OnAck(p.onAck)
	p.srv.OnBye(p.onBye)
	p.srv.OnCancel(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
	})
	p.srv.OnInfo(p.onInfo)
	p.srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	go func() { _ = serve() }()
	if p.cfg.Transport == "udp" {
		// Requests leave from the listening socket: wait until sipgo has it.
		for i := 0; i < 100; i++ {
			if c, err := p.ua.TransportLayer().GetConnection("udp", p.local.String()); err == nil && c != nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	kctx, stopKeepalive := context.WithCancel(ctx)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.keepalive(kctx, p.cfg.Keepalive, func(reason string) {
			select {
			case p.kick <- reason:
			default:
			}
		})
	}()
	err = p.keepRegistered(ctx, ready)
	stopKeepalive()
	p.hangupAll()
	p.wg.Wait()
	return err
}

// contactAddr is the address in our Contact: the local one, or the one
// the registrar sees when we are behind a NAT.
func (p *Phone) contactAddr() netip.AddrPort {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.public.IsValid() {
		return p.public
	}
	return p.local
}

// contact is our Contact header.
func (p *Phone) contact() sip.ContactHeader {
	a := p.contactAddr()
	// Over TLS the port stays 0: sipgo fills in the connection's.
	u := sip.Uri{Scheme: "sip", User: p.cfg.User, Host: a.Addr().String(), Port: int(a.Port())}
	if p.cfg.Transport != "udp" {
		u.UriParams = sip.HeaderParams{{K: "transport", V: p.cfg.Transport}}
	}
	return sip.ContactHeader{Address: u}
}

// route is the preloaded Route to the registrar, our outbound proxy.
func (p *Phone) route() *sip.RouteHeader {
	host, port, _ := net.SplitHostPort(p.cfg.Registrar)
	n, _ := strconv.Atoi(port)
	return &sip.RouteHeader{Address: sip.Uri{Scheme: "sip", Host: host, Port: n,
		UriParams: sip.HeaderParams{{K: "transport", V: p.cfg.Transport}, {K: "lr", V: ""}}}}
}

func (p *Phone) aor() sip.Uri { return sip.Uri{Scheme: "sip", User: p.cfg.User, Host: p.cfg.Domain} }

func (p *Phone) emit(e Event) {
	if p.cfg.Events != nil {
		p.cfg.Events(e)
	}
}

// Target turns "bob", "bob@host" or "sip:bob@host" into a URI.
func (p *Phone) Target(s string) (sip.Uri, error) {
	if !strings.Contains(s, ":") || !strings.HasPrefix(s, "sip") {
		if !strings.Contains(s, "@") {
			s += "@" + p.cfg.Domain
		}
		s = "sip:" + s
	}
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		return u, fmt.Errorf("phone: target %q: %w", s, err)
	}
	return u, nil
}

// nextID numbers calls for people.
func (p *Phone) nextID() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seq++
	return strconv.Itoa(p.seq)
}

// Calls returns the calls in progress.
func (p *Phone) Calls() []*Call {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*Call, 0, len(p.calls))
	for _, c := range p.calls {
		out = append(out, c)
	}
	return out
}

func (p *Phone) hangupAll() {
	for _, c := range p.Calls() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_ = c.Hangup(ctx)
		cancel()
	}
}

var errNoCall = errors.New("phone: no such call")
