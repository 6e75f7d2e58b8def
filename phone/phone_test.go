package phone_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"

	"github.com/sipline/sipline/phone"
	"github.com/sipline/sipline/registrar"
	"github.com/sipline/sipline/registrar/location/memstore"
)

// startRegistrar runs an in-process registrar on a loopback UDP port.
func startRegistrar(t *testing.T) string {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := conn.LocalAddr().(*net.UDPAddr)
	reg, err := registrar.New(memstore.New(),
		registrar.WithDomain("127.0.0.1"),
		registrar.WithEndpoints(registrar.Endpoint{Transport: "UDP", Host: "127.0.0.1", Port: addr.Port, Local: addr.String()}),
		registrar.WithUsers(map[string]registrar.User{"alice": {Password: "a"}, "bob": {Password: "b"}, "carol": {Password: "c"}}))
	if err != nil {
		t.Fatal(err)
	}
	ua, err := sipgo.NewUA()
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := sipgo.NewServer(ua)
	client, _ := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	reg.Mount(srv, client)
	go func() { _ = srv.ServeUDP(conn) }()
	t.Cleanup(func() { ua.Close(); conn.Close() })
	return addr.String()
}

// events records a phone's events.
type events struct {
	mu  sync.Mutex
	log []phone.Event
	ch  chan phone.Event
}

func newEvents() *events { return &events{ch: make(chan phone.Event, 100)} }

func (e *events) add(ev phone.Event) {
	e.mu.Lock()
	e.log = append(e.log, ev)
	e.mu.Unlock()
	e.ch <- ev
}

// wait returns the next event of kind, failing after d.
func (e *events) wait(t *testing.T, kind string, d time.Duration) phone.Event {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case ev := <-e.ch:
			if ev.Kind == kind {
				return ev
			}
		case <-timeout:
			e.mu.Lock()
			defer e.mu.Unlock()
			var kinds []string
			for _, ev := range e.log {
				kinds = append(kinds, ev.Kind)
			}
			t.Fatalf("no %q event within %s; got %v", kind, d, kinds)
		}
	}
}

func startPhone(t *testing.T, reg, user, password string, autoAnswer bool) (*phone.Phone, *events) {
	t.Helper()
	ev := newEvents()
	p, err := phone.New(phone.Config{User: user, Password: password, Domain: "127.0.0.1", Registrar: reg,
		Listen: "127.0.0.1:0", AutoAnswer: autoAnswer, Events: ev.add})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, nil) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Errorf("phone %s did not stop", user)
		}
	})
	ev.wait(t, "registered", 5*time.Second)
	return p, ev
}

func TestCallStates(t *testing.T) {
	reg := startRegistrar(t)
	alice, aev := startPhone(t, reg, "alice", "a", false)
	_, bev := startPhone(t, reg, "bob", "b", false)

	call, err := alice.Call(context.Background(), "bob")
	if err != nil {
		t.Fatal(err)
	}
	if s := call.State(); s != phone.Calling && s != phone.Ringing {
		t.Fatalf("a new call is %s", s)
	}
	in := bev.wait(t, "incoming", 5*time.Second).Call
	aev.wait(t, "ringing", 5*time.Second)
	if in.State() != phone.Ringing || call.State() != phone.Ringing {
		t.Fatalf("ringing: caller %s, callee %s", call.State(), in.State())
	}
	if err := call.Answer(); err == nil {
		t.Fatal("the caller could answer its own call")
	}
	if err := in.Answer(); err != nil {
		t.Fatal(err)
	}
	aev.wait(t, "answered", 5*time.Second)
	bev.wait(t, "answered", 5*time.Second)
	if in.State() != phone.Established || call.State() != phone.Established {
		t.Fatalf("answered: caller %s, callee %s", call.State(), in.State())
	}
	if err := in.Hangup(context.Background()); err != nil {
		t.Fatal(err)
	}
	ended := aev.wait(t, "ended", 5*time.Second)
	<-call.Done()
	if call.State() != phone.Ended || in.State() != phone.Ended || !strings.Contains(ended.Detail, "hung up by the other side") {
		t.Fatalf("after hangup: caller %s, callee %s, %q", call.State(), in.State(), ended.Detail)
	}
}

func TestCallFailures(t *testing.T) {
	reg := startRegistrar(t)
	alice, aev := startPhone(t, reg, "alice", "a", false)
	_, bev := startPhone(t, reg, "bob", "b", false)

	t.Run("a rejected call ends with 486 busy", func(t *testing.T) {
		call, err := alice.Call(context.Background(), "bob")
		if err != nil {
			t.Fatal(err)
		}
		in := bev.wait(t, "incoming", 5*time.Second).Call
		if err := in.Reject(486); err != nil {
			t.Fatal(err)
		}
		<-call.Done()
		if got := call.Summary().Reason; got != "486 busy" {
			t.Fatalf("reason %q", got)
		}
	})
	t.Run("a call the caller gives up on is cancelled at the callee", func(t *testing.T) {
		call, err := alice.Call(context.Background(), "bob")
		if err != nil {
			t.Fatal(err)
		}
		in := bev.wait(t, "incoming", 5*time.Second).Call
		aev.wait(t, "ringing", 5*time.Second)
		if err := call.Hangup(context.Background()); err != nil {
			t.Fatal(err)
		}
		select {
		case <-in.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("the callee still rings after CANCEL")
		}
		if got := in.Summary().Reason; got != "cancelled by the caller" {
			t.Fatalf("callee reason %q", got)
		}
		<-call.Done()
	})
	t.Run("a user with no phone gives 480", func(t *testing.T) {
		call, err := alice.Call(context.Background(), "carol")
		if err != nil {
			t.Fatal(err)
		}
		<-call.Done()
		if got := call.Summary().Reason; !strings.HasPrefix(got, "480 ") {
			t.Fatalf("reason %q", got)
		}
	})
	t.Run("an unknown user gives 404", func(t *testing.T) {
		call, err := alice.Call(context.Background(), "nobody")
		if err != nil {
			t.Fatal(err)
		}
		<-call.Done()
		if got := call.Summary().Reason; got != "404 no such user" {
			t.Fatalf("reason %q", got)
		}
	})
}

func TestASecondCallGetsBusy(t *testing.T) {
	reg := startRegistrar(t)
	alice, aev := startPhone(t, reg, "alice", "a", false)
	carol, _ := startPhone(t, reg, "carol", "c", false)
	_, bev := startPhone(t, reg, "bob", "b", true)
	first, err := alice.Call(context.Background(), "bob")
	if err != nil {
		t.Fatal(err)
	}
	// Both ends: bob answers before alice has the 200.
	bev.wait(t, "answered", 5*time.Second)
	aev.wait(t, "answered", 5*time.Second)
	second, err := carol.Call(context.Background(), "bob")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-second.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the second call did not end")
	}
	if got := second.Summary().Reason; got != "486 busy" {
		t.Fatalf("second call: %q", got)
	}
	if first.State() != phone.Established {
		t.Fatalf("the first call is %s", first.State())
	}
	_ = first.Hangup(context.Background())
}
