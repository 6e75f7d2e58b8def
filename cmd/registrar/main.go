// Command registrar runs the SIP registrar and stateful proxy.
//
//	registrar -config configs/registrar.yaml
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/sipline/sipline/internal/gcfloor"
	"github.com/sipline/sipline/registrar"
	"github.com/sipline/sipline/registrar/digest"
	"github.com/sipline/sipline/registrar/location"
	"github.com/sipline/sipline/registrar/location/boltstore"
	"github.com/sipline/sipline/registrar/location/memstore"
)

// transactionWait is how long an ended transaction is kept.
const transactionWait = 5 * time.Second

func main() {
	configPath := flag.String("config", "configs/registrar.yaml", "config file")
	flag.Parse()
	// The heap is small and its garbage short-lived: collecting at 200%
	// growth instead of 100% cut CPU per REGISTER by about a tenth under
	// load, and a heap goal of at least 128 MiB while it allocates fast
	// made the collections behind its p99 latency 2 to 4 times rarer
	// (docs/BENCHMARKS.md). GOGC overrides both; GOMEMLIMIT still caps
	// the heap.
	if os.Getenv("GOGC") == "" {
		gcfloor.Start(128<<20, 200)
	}
	if err := run(*configPath); err != nil {
		fmt.Fprintln(os.Stderr, "registrar:", err)
		os.Exit(1)
	}
}

func run(configPath string) error {
	cfg, err := loadConfig(configPath)
	if err != nil {
		return err
	}
	log := newLogger(cfg)
	if cfg.sampleCredentials() && !cfg.loopbackOnly() {
		log.Warn("sample credentials in use on a non-loopback address: change the users' passwords", "config", configPath)
	}

	store, err := openStore(cfg)
	if err != nil {
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			log.Error("close store", "error", err)
		}
	}()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	l, err := listen(cfg)
	if err != nil {
		return err
	}
	defer l.close()

	opts, err := registrarOptions(cfg, log, l.endpoints)
	if err != nil {
		return err
	}
	start := time.Now()
	reg, err := registrar.New(store, opts...)
	if err != nil {
		return err
	}
	// Loading the bindings left garbage the size of the store: hand it
	// back now rather than at the first collections under load.
	debug.FreeOSMemory()

	// A transaction that has ended is kept for retransmissions 5 s, as
	// Kamailio's tm keeps it (wt_timer), instead of sipgo's 64×T1 = 32 s
	// (RFC 3261 Timers J, L and M over UDP). Under call load those kept
	// transactions were most of the live heap, 46–73 MB at 700 calls/s,
	// and the collector's mark phases over them 30–60 ms long
	// (docs/BENCHMARKS.md). What arrives later still works: a
	// retransmitted request starts a new transaction, and a response
	// that matches none, if final, is forwarded statelessly
	// (UnhandledResponse).
	sip.Timer_J, sip.Timer_L, sip.Timer_M = transactionWait, transactionWait, transactionWait

	sipLog := log.With("component", "sipgo")
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent("sipline-registrar"),
		sipgo.WithUserAgentHostname(cfg.Domain),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(sipLog)),
		sipgo.WithUserAgentTransactionLayerOptions(
			sip.WithTransactionLayerLogger(sipLog),
			sip.WithTransactionLayerUnhandledResponseHandler(reg.UnhandledResponse),
		),
	)
	if err != nil {
		return fmt.Errorf("sip user agent: %w", err)
	}
	defer ua.Close()
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(sipLog))
	if err != nil {
		return fmt.Errorf("sip server: %w", err)
	}
	client, err := sipgo.NewClient(ua, sipgo.WithClientLogger(sipLog), sipgo.WithClientHostname(cfg.advertiseHost()))
	if err != nil {
		return fmt.Errorf("sip client: %w", err)
	}
	reg.Mount(srv, client)

	var wg sync.WaitGroup
	serve := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil && ctx.Err() == nil {
				log.Error("listener stopped", "listener", name, "error", err)
				stop()
			}
		}()
	}
	if l.udp != nil {
		serve("udp", func() error { return srv.ServeUDP(reg.StatelessUDP(registrar.AnswerSTUN(l.udp))) })
	}
	if l.tcp != nil {
		serve("tcp", func() error { return srv.ServeTCP(reg.TrackFlows(l.tcp, "TCP")) })
	}
	if l.tls != nil {
		serve("tls", func() error { return srv.ServeTLS(reg.TrackFlows(l.tls, "TLS")) })
	}
	var admin *http.Server
	if cfg.Admin.Listen != "" {
		admin = &http.Server{Addr: cfg.Admin.Listen, Handler: reg.AdminHandler(), ReadHeaderTimeout: 5 * time.Second}
		al, err := net.Listen("tcp", cfg.Admin.Listen)
		if err != nil {
			return fmt.Errorf("admin.listen %s: %w", cfg.Admin.Listen, err)
		}
		serve("admin", func() error {
			if err := admin.Serve(al); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	serve("expiry", func() error {
		if err := reg.Run(ctx); !errors.Is(err, context.Canceled) {
			return err
		}
		return nil
	})
	for _, ep := range l.endpoints {
		log.Info("listening", "transport", ep.Transport, "addr", ep.Local, "advertise", net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port)))
	}
	log.Info("registrar ready", "domain", cfg.Domain, "store", cfg.Store, "users", len(cfg.Users), "startup", time.Since(start).String())

	<-ctx.Done()
	log.Info("shutting down")
	if admin != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = admin.Shutdown(sctx)
		cancel()
	}
	l.close()
	wg.Wait()
	return nil
}

func newLogger(cfg *Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

func openStore(cfg *Config) (location.Store, error) {
	if cfg.Store == "memory" {
		return memstore.New(), nil
	}
	path := filepath.Join(cfg.DataDir, "bindings.db")
	s, err := boltstore.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data_dir %s: %w", cfg.DataDir, err)
	}
	return s, nil
}

func registrarOptions(cfg *Config, log *slog.Logger, eps []registrar.Endpoint) ([]registrar.Option, error) {
	var algs []digest.Algorithm
	for _, a := range cfg.Auth.Algorithms {
		alg, err := digest.ParseAlgorithm(a)
		if err != nil {
			return nil, fmt.Errorf("auth.algorithms: %w", err)
		}
		algs = append(algs, alg)
	}
	users := make(map[string]registrar.User, len(cfg.Users))
	for name, u := range cfg.Users {
		users[name] = registrar.User{Password: u.Password, HA1: u.HA1, HA1SHA256: u.HA1SHA256}
	}
	opts := []registrar.Option{
		registrar.WithLogger(log),
		registrar.WithDomain(cfg.Domain, cfg.Aliases...),
		registrar.WithEndpoints(eps...),
		registrar.WithUsers(users),
		registrar.WithExpires(cfg.Expires.Default, cfg.Expires.Min, cfg.Expires.Max),
		registrar.WithMaxContacts(cfg.MaxContacts),
		registrar.WithAuth(algs, time.Duration(cfg.Auth.NonceTTL)*time.Second),
	}
	if cfg.Auth.Disabled {
		log.Warn("auth.disabled: anyone may register any user of the domain and call without credentials")
		opts = append(opts, registrar.WithoutAuth())
	}
	if cfg.Auth.SingleChallengeAgents != nil {
		opts = append(opts, registrar.WithSingleChallenge(cfg.Auth.SingleChallengeAgents...))
	}
	if cfg.Auth.Secret != "" {
		opts = append(opts, registrar.WithSecret([]byte(cfg.Auth.Secret)))
	}
	return opts, nil
}

// listeners holds the sockets the registrar serves.
type listeners struct {
	udp       net.PacketConn
	tcp, tls  net.Listener
	endpoints []registrar.Endpoint
	once      sync.Once
}

// listen opens the configured sockets. Stream sockets probe idle peers
// with TCP keepalives, so a peer that vanished is noticed within about a
// minute and its flow dropped.
func listen(cfg *Config) (*listeners, error) {
	l := &listeners{}
	host := cfg.advertiseHost()
	advPort := 0
	if _, p, err := net.SplitHostPort(cfg.Advertise); err == nil {
		advPort, _ = strconv.Atoi(p)
	}
	endpoint := func(transport string, local net.Addr) registrar.Endpoint {
		port := advPort
		if port == 0 || transport == "TLS" {
			_, p, _ := net.SplitHostPort(local.String())
			port, _ = strconv.Atoi(p)
		}
		return registrar.Endpoint{Transport: transport, Host: host, Port: port, Local: local.String()}
	}
	lc := net.ListenConfig{KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 10 * time.Second, Count: 3}}
	fail := func(key, addr string, err error) (*listeners, error) {
		l.close()
		return nil, fmt.Errorf("%s %s: %w", key, addr, err)
	}
	if a := cfg.Listen.UDP; a != "" {
		c, err := lc.ListenPacket(context.Background(), "udp", a)
		if err != nil {
			return fail("listen.udp", a, err)
		}
		l.udp = c
		l.endpoints = append(l.endpoints, endpoint("UDP", c.LocalAddr()))
	}
	if a := cfg.Listen.TCP; a != "" {
		t, err := lc.Listen(context.Background(), "tcp", a)
		if err != nil {
			return fail("listen.tcp", a, err)
		}
		l.tcp = t
		l.endpoints = append(l.endpoints, endpoint("TCP", t.Addr()))
	}
	if a := cfg.Listen.TLS; a != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.Cert, cfg.TLS.Key)
		if err != nil {
			return fail("tls.cert", cfg.TLS.Cert, err)
		}
		t, err := lc.Listen(context.Background(), "tcp", a)
		if err != nil {
			return fail("listen.tls", a, err)
		}
		l.tls = tls.NewListener(t, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		l.endpoints = append(l.endpoints, endpoint("TLS", t.Addr()))
	}
	return l, nil
}

func (l *listeners) close() {
	l.once.Do(func() {
		for _, c := range []interface{ Close() error }{l.udp, l.tcp, l.tls} {
			if c != nil {
				_ = c.Close()
			}
		}
	})
}
