package registrar

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/sipline/sipline/internal/macpool"
	"github.com/sipline/sipline/registrar/digest"
	"github.com/sipline/sipline/registrar/location"
)

// User is one account's credentials. Either Password or a precomputed HA1
// per algorithm is set.
type User struct {
	Password  string
	HA1       string // MD5(user:realm:password), hex
	HA1SHA256 string // SHA-256(user:realm:password), hex
}

// Endpoint is one transport the registrar is reachable on.
type Endpoint struct {
	// Transport is "UDP", "TCP" or "TLS".
	Transport string
	// Host and Port are what the registrar puts in Via and Record-Route.
	Host string
	Port int
	// Local is the bound "ip:port", from the listener. For UDP it selects
	// the socket requests are sent from.
	Local string
}

// Registrar handles REGISTER and proxies everything else.
type Registrar struct {
	store location.Store
	log   *slog.Logger
	now   func() time.Time

	domain       string
	hosts        map[string]bool // host names and addresses that are us
	endpoints    []Endpoint
	users        map[string]map[digest.Algorithm]string
	pendingUsers map[string]User
	dummyHA1     map[digest.Algorithm]string
	algorithms   []digest.Algorithm
	authOff      bool
	// singleChallengeAgents are lower-case User-Agent substrings that get
	// only the first challenge.
	singleChallengeAgents []string
	nonceTTL              time.Duration
	secret                []byte
	flowMACs              *macpool.Pool // keyed with secret, for flow tokens
	auth                  *digest.Server
	expDefault            int
	expMin                int
	expMax                int
	maxContacts           int
	metrics               *Metrics

	client *sipgo.Client

	// refused holds the re-INVITEs answered with a failure lately, whose
	// ACKs are for the transaction, not to relay (relayInDialog).
	refused branchSet

	mu      sync.Mutex
	udp     []net.PacketConn                // the sockets StatelessUDP returns, for stray responses (writeUDP)
	index   map[string]aorState             // AOR -> its bindings' count, next expiry, flows
	total   int                             // bindings in index
	flows   map[flowKey]map[string]struct{} // stream flow -> AORs bound through it
	live    map[flowKey]struct{}            // stream flows open in this process
	tracked map[string]bool                 // transports whose flows TrackFlows sees
}

type aorState struct {
	count int
	next  time.Time
	flows []flowKey
}

// Option configures a Registrar.
type Option func(*Registrar) error

// WithLogger sets the logger. The default discards.
func WithLogger(l *slog.Logger) Option {
	return func(r *Registrar) error {
		r.log = l.With("component", "registrar")
		return nil
	}
}

// WithClock injects the clock, for tests.
func WithClock(now func() time.Time) Option {
	return func(r *Registrar) error { r.now = now; return nil }
}

// WithDomain sets the SIP domain (also the digest realm) and other host
// names that are local.
func WithDomain(domain string, aliases ...string) Option {
	return func(r *Registrar) error {
		if domain == "" {
			return fmt.Errorf("%w: empty domain", ErrConfig)
		}
		r.domain = strings.ToLower(domain)
		r.hosts[r.domain] = true
		for _, a := range aliases {
			r.hosts[strings.ToLower(a)] = true
		}
		return nil
	}
}

// WithEndpoints declares the transports the registrar is reachable on.
func WithEndpoints(eps ...Endpoint) Option {
	return func(r *Registrar) error {
		for _, ep := range eps {
			ep.Transport = strings.ToUpper(ep.Transport)
			switch ep.Transport {
			case "UDP", "TCP", "TLS":
			default:
				return fmt.Errorf("%w: transport %q", ErrConfig, ep.Transport)
			}
			if ep.Host == "" || ep.Port <= 0 {
				return fmt.Errorf("%w: endpoint %s %q:%d needs a host and port", ErrConfig, ep.Transport, ep.Host, ep.Port)
			}
			r.endpoints = append(r.endpoints, ep)
			r.hosts[strings.ToLower(ep.Host)] = true
			if h, _, err := net.SplitHostPort(ep.Local); err == nil {
				if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
					addLocalAddrs(r.hosts)
				} else {
					r.hosts[h] = true
				}
			}
		}
		return nil
	}
}

// WithUsers sets the accounts. Names are case-sensitive, as in SIP URIs.
func WithUsers(users map[string]User) Option {
	return func(r *Registrar) error {
		r.pendingUsers = users
		return nil
	}
}

// WithExpires sets the default, minimum and maximum registration
// lifetimes, in seconds.
func WithExpires(def, minimum, maximum int) Option {
	return func(r *Registrar) error {
		if minimum < 1 || def < minimum || maximum < def {
			return fmt.Errorf("%w: expires need 1 <= min (%d) <= default (%d) <= max (%d)", ErrConfig, minimum, def, maximum)
		}
		r.expDefault, r.expMin, r.expMax = def, minimum, maximum
		return nil
	}
}

// WithMaxContacts caps the bindings per AOR. Past it, the least recently
// refreshed binding is dropped.
func WithMaxContacts(n int) Option {
	return func(r *Registrar) error {
		if n < 1 {
			return fmt.Errorf("%w: max contacts %d", ErrConfig, n)
		}
		r.maxContacts = n
		return nil
	}
}

// WithAuth sets the digest algorithms offered in each challenge, most
// preferred first, and how long a nonce stays fresh.
func WithAuth(algs []digest.Algorithm, nonceTTL time.Duration) Option {
	return func(r *Registrar) error {
		if len(algs) == 0 {
			return fmt.Errorf("%w: no digest algorithm", ErrConfig)
		}
		r.algorithms = algs
		r.nonceTTL = nonceTTL
		return nil
	}
}

// WithoutAuth turns digest authentication off: any user of the domain may
// register, and calls are not challenged. It is for closed networks and
// for measuring the registrar against others run the same way.
func WithoutAuth() Option {
	return func(r *Registrar) error { r.authOff = true; return nil }
}

// WithSingleChallenge sets the User-Agent substrings (matched without
// case) of clients that get only the most preferred challenge, because
// they fail on one they do not know. The default is baresip's.
func WithSingleChallenge(agents ...string) Option {
	return func(r *Registrar) error {
		r.singleChallengeAgents = r.singleChallengeAgents[:0]
		for _, a := range agents {
			if a = strings.ToLower(strings.TrimSpace(a)); a != "" {
				r.singleChallengeAgents = append(r.singleChallengeAgents, a)
			}
		}
		return nil
	}
}

// WithSecret sets the key that signs nonces and flow tokens. Nodes that
// share registrations share it. The default is random per process.
func WithSecret(secret []byte) Option {
	return func(r *Registrar) error {
		if len(secret) < 16 {
			return fmt.Errorf("%w: secret shorter than 16 bytes", ErrConfig)
		}
		r.secret = secret
		return nil
	}
}

// WithMetrics sets where counters go. The default is a private set.
func WithMetrics(m *Metrics) Option {
	return func(r *Registrar) error { r.metrics = m; return nil }
}

// New returns a Registrar keeping bindings in store.
func New(store location.Store, opts ...Option) (*Registrar, error) {
	r := &Registrar{
		store:                 store,
		log:                   slog.New(slog.DiscardHandler),
		now:                   time.Now,
		hosts:                 map[string]bool{},
		algorithms:            []digest.Algorithm{digest.MD5, digest.SHA256},
		singleChallengeAgents: []string{"baresip"},
		nonceTTL:              5 * time.Minute,
		expDefault:            3600,
		expMin:                60,
		expMax:                7200,
		maxContacts:           10,
		index:                 map[string]aorState{},
		flows:                 map[flowKey]map[string]struct{}{},
		live:                  map[flowKey]struct{}{},
		tracked:               map[string]bool{},
	}
	for _, o := range opts {
		if err := o(r); err != nil {
			return nil, err
		}
	}
	if r.domain == "" {
		return nil, fmt.Errorf("%w: no domain", ErrConfig)
	}
	if r.secret == nil {
		r.secret = make([]byte, 32)
		if _, err := rand.Read(r.secret); err != nil {
			return nil, fmt.Errorf("registrar: secret: %w", err)
		}
	}
	r.flowMACs = macpool.New(r.secret)
	if r.metrics == nil {
		r.metrics = NewMetrics()
	}
	var err error
	r.auth, err = digest.NewServer(r.domain, r.secret, digest.WithNonceTTL(r.nonceTTL), digest.WithClock(r.now))
	if err != nil {
		return nil, fmt.Errorf("registrar: digest: %w", err)
	}
	r.users = make(map[string]map[digest.Algorithm]string, len(r.pendingUsers))
	for name, u := range r.pendingUsers {
		h := map[digest.Algorithm]string{}
		if u.Password != "" {
			h[digest.MD5] = digest.HA1(digest.MD5, name, r.domain, u.Password)
			h[digest.SHA256] = digest.HA1(digest.SHA256, name, r.domain, u.Password)
		}
		if u.HA1 != "" {
			h[digest.MD5] = strings.ToLower(u.HA1)
		}
		if u.HA1SHA256 != "" {
			h[digest.SHA256] = strings.ToLower(u.HA1SHA256)
		}
		if len(h) == 0 {
			return nil, fmt.Errorf("%w: user %q has no password or ha1", ErrConfig, name)
		}
		r.users[name] = h
	}
	r.pendingUsers = nil
	// Unknown users are verified against a random HA1, so they fail
	// exactly as a wrong password does.
	dummy := rand.Text()
	r.dummyHA1 = map[digest.Algorithm]string{
		digest.MD5:    digest.HA1(digest.MD5, "-", r.domain, dummy),
		digest.SHA256: digest.HA1(digest.SHA256, "-", r.domain, dummy),
	}
	if err := r.loadIndex(context.Background()); err != nil {
		return nil, err
	}
	r.metrics.bindings.Set(float64(r.bindingCount()))
	return r, nil
}

// Mount installs the handlers on srv. client sends the proxied requests;
// it must share srv's user agent.
func (r *Registrar) Mount(srv *sipgo.Server, client *sipgo.Client) {
	r.client = client
	for _, m := range append([]sip.RequestMethod{sip.REGISTER, sip.ACK}, proxiedMethods...) {
		srv.OnRequest(m, r.ServeSIP)
	}
	srv.OnNoRoute(r.ServeSIP)
}

// ServeSIP handles one request in its server transaction.
func (r *Registrar) ServeSIP(req *sip.Request, tx sip.ServerTransaction) {
	switch req.Method {
	case sip.REGISTER:
		r.handleRegister(req, tx)
	case sip.ACK:
		r.handleAck(req, tx)
	default:
		r.handleRequest(req, tx)
	}
}

// UnhandledResponse forwards a final response that matched no client
// transaction, such as a retransmitted 2xx to INVITE, or a failure that
// comes after its transaction has ended (RFC 3261 §16.7).
// Install it with sip.WithTransactionLayerUnhandledResponseHandler.
func (r *Registrar) UnhandledResponse(res *sip.Response) {
	r.forwardStateless(res)
}

// Run expires bindings on time until ctx is done.
func (r *Registrar) Run(ctx context.Context) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			r.expire(ctx)
		}
	}
}

// isLocalHost reports whether host names this registrar.
func (r *Registrar) isLocalHost(host string) bool {
	return r.hosts[strings.ToLower(strings.Trim(host, "[]"))]
}

// isSelf reports whether uri points at this registrar: a local host with
// no port or one of our ports.
func (r *Registrar) isSelf(uri *sip.Uri) bool {
	if !r.isLocalHost(uri.Host) {
		return false
	}
	if uri.Port == 0 {
		return true
	}
	for _, ep := range r.endpoints {
		if ep.Port == uri.Port {
			return true
		}
		if _, p, err := net.SplitHostPort(ep.Local); err == nil && p == strconv.Itoa(uri.Port) {
			return true
		}
	}
	return false
}

// endpoint returns the endpoint for transport, falling back to the first.
func (r *Registrar) endpoint(transport string) Endpoint {
	for _, ep := range r.endpoints {
		if strings.EqualFold(ep.Transport, transport) {
			return ep
		}
	}
	if len(r.endpoints) > 0 {
		return r.endpoints[0]
	}
	return Endpoint{Transport: strings.ToUpper(transport), Host: r.domain, Port: 5060}
}

func (r *Registrar) hasTransport(transport string) bool {
	for _, ep := range r.endpoints {
		if strings.EqualFold(ep.Transport, transport) {
			return true
		}
	}
	return false
}

func addLocalAddrs(hosts map[string]bool) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			hosts[n.IP.String()] = true
		}
	}
}
