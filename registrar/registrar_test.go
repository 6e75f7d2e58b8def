package registrar_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/emiago/sipgo/siptest"
	icdigest "github.com/icholy/digest"

	"github.com/sipline/sipline/registrar"
	"github.com/sipline/sipline/registrar/digest"
	"github.com/sipline/sipline/registrar/location"
	"github.com/sipline/sipline/registrar/location/memstore"
)

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	t     testing.TB
	reg   *registrar.Registrar
	store location.Store
	clock *clock
	seq   uint32
}

func newFixture(t testing.TB, opts ...registrar.Option) *fixture {
	t.Helper()
	f := &fixture{t: t, store: memstore.New(), clock: &clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}}
	base := []registrar.Option{
		registrar.WithDomain("example.test", "127.0.0.1"),
		registrar.WithEndpoints(registrar.Endpoint{Transport: "UDP", Host: "127.0.0.1", Port: 5060, Local: "127.0.0.1:5060"}),
		registrar.WithUsers(map[string]registrar.User{
			"alice": {Password: "alice-secret"},
			"bob":   {HA1: digest.HA1(digest.MD5, "bob", "example.test", "bob-secret")},
		}),
		registrar.WithClock(f.clock.Now),
		registrar.WithMaxContacts(3),
	}
	reg, err := registrar.New(f.store, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ua, err := sipgo.NewUA()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ua.Close() })
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	client, err := sipgo.NewClient(ua)
	if err != nil {
		t.Fatal(err)
	}
	reg.Mount(srv, client)
	f.reg = reg
	return f
}

// request parses a raw request as if it arrived over UDP from src.
func (f *fixture) request(raw, src string) *sip.Request {
	f.t.Helper()
	f.seq++
	raw = strings.ReplaceAll(raw, "$SEQ", fmt.Sprint(f.seq))
	raw = strings.ReplaceAll(strings.TrimLeft(raw, "\n"), "\n", "\r\n") + "\r\n"
	msg, err := sip.ParseMessage([]byte(raw))
	if err != nil {
		f.t.Fatalf("parse %q: %v", raw, err)
	}
	req := msg.(*sip.Request)
	req.SetTransport("UDP")
	req.SetSource(src)
	return req
}

// do runs req through the registrar's handler and returns the responses.
func (f *fixture) do(req *sip.Request) []*sip.Response {
	f.t.Helper()
	tx := siptest.NewServerTxRecorder(req)
	f.reg.ServeSIP(req, tx)
	return tx.Result()
}

func final(t testing.TB, rs []*sip.Response) *sip.Response {
	t.Helper()
	for i := len(rs) - 1; i >= 0; i-- {
		if !rs[i].IsProvisional() {
			return rs[i]
		}
	}
	t.Fatalf("no final response in %d responses", len(rs))
	return nil
}

func registerReq(user, aor, contact, extra string) string {
	return fmt.Sprintf(`
REGISTER sip:example.test SIP/2.0
Via: SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bK-$SEQ;rport
Max-Forwards: 70
From: <sip:%[1]s@example.test>;tag=f1
To: <sip:%[2]s@example.test>
Call-ID: reg-%[1]s@10.0.0.5
CSeq: $SEQ REGISTER
Contact: %[3]s
%[4]sContent-Length: 0
`, user, aor, contact, extra)
}

// authorize answers res's challenge for algorithm alg on req.
func authorize(t testing.TB, req *sip.Request, res *sip.Response, user, password, alg string) {
	t.Helper()
	name, cred := "WWW-Authenticate", "Authorization"
	if res.StatusCode == 407 {
		name, cred = "Proxy-Authenticate", "Proxy-Authorization"
	}
	for _, h := range res.GetHeaders(name) {
		ch, err := icdigest.ParseChallenge(h.Value())
		if err != nil {
			t.Fatalf("parse challenge %q: %v", h.Value(), err)
		}
		if ch.Algorithm != alg {
			continue
		}
		c, err := icdigest.Digest(ch, icdigest.Options{Method: string(req.Method), URI: req.Recipient.String(), Username: user, Password: password, Count: 1})
		if err != nil {
			t.Fatal(err)
		}
		req.RemoveHeader(cred)
		req.AppendHeader(sip.NewHeader(cred, c.String()))
		return
	}
	t.Fatalf("no %s challenge in %s", alg, res.String())
}

// register runs the challenge and the authenticated REGISTER.
func (f *fixture) register(user, aor, contact, extra, src string) *sip.Response {
	f.t.Helper()
	res := final(f.t, f.do(f.request(registerReq(user, aor, contact, extra), src)))
	if res.StatusCode != 401 {
		return res
	}
	req := f.request(registerReq(user, aor, contact, extra), src)
	authorize(f.t, req, res, user, user+"-secret", "SHA-256")
	return final(f.t, f.do(req))
}

func contacts(res *sip.Response) []string {
	var out []string
	for _, h := range res.GetHeaders("Contact") {
		out = append(out, h.Value())
	}
	return out
}

func TestRegisterIsChallengedInTheConfiguredOrder(t *testing.T) {
	f := newFixture(t, registrar.WithAuth([]digest.Algorithm{digest.SHA256, digest.MD5}, time.Minute))
	res := final(t, f.do(f.request(registerReq("alice", "alice", "<sip:alice@10.0.0.5:5070>", ""), "10.0.0.5:5070")))
	if res.StatusCode != 401 {
		t.Fatalf("got %d, want 401", res.StatusCode)
	}
	hs := res.GetHeaders("WWW-Authenticate")
	if len(hs) != 2 || !strings.Contains(hs[0].Value(), "algorithm=SHA-256") || !strings.Contains(hs[1].Value(), "algorithm=MD5") {
		t.Fatalf("challenges = %v", hs)
	}
	for _, h := range hs {
		if !strings.Contains(h.Value(), `qop="auth"`) || !strings.Contains(h.Value(), `realm="example.test"`) {
			t.Errorf("challenge %q lacks qop or realm", h.Value())
		}
	}
}

func TestBaresipGetsOnlyTheFirstChallenge(t *testing.T) {
	for _, tc := range []struct {
		name, agent string
		opts        []registrar.Option
		want        int
	}{
		{"baresip", "baresip v1.0.0 (x86_64/linux)", nil, 1},
		{"linphone", "Linphone-Desktop/5.1 (belle-sip/5.1.0)", nil, 2},
		{"configured off", "baresip v1.0.0", []registrar.Option{registrar.WithSingleChallenge()}, 2},
		{"configured", "MyPhone/2", []registrar.Option{registrar.WithSingleChallenge("myphone")}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.opts...)
			req := registerReq("alice", "alice", "<sip:alice@10.0.0.5:5070>", "User-Agent: "+tc.agent+"\n")
			res := final(t, f.do(f.request(req, "10.0.0.5:5070")))
			hs := res.GetHeaders("WWW-Authenticate")
			if res.StatusCode != 401 || len(hs) != tc.want || !strings.Contains(hs[0].Value(), "algorithm=MD5") {
				t.Fatalf("got %d with challenges %v, want %d, MD5 first", res.StatusCode, hs, tc.want)
			}
		})
	}
}

func TestWithoutAuthRegisterIsNotChallenged(t *testing.T) {
	f := newFixture(t, registrar.WithoutAuth())
	res := final(t, f.do(f.request(registerReq("alice", "alice", "<sip:alice@10.0.0.5:5070>", ""), "10.0.0.5:5070")))
	if res.StatusCode != 200 || res.GetHeader("Contact") == nil {
		t.Fatalf("got %d %s, want 200 with the contact", res.StatusCode, res.Reason)
	}
}

func TestRegisterWithDigest(t *testing.T) {
	for _, alg := range []string{"SHA-256", "MD5"} {
		t.Run(alg, func(t *testing.T) {
			f := newFixture(t)
			req := f.request(registerReq("alice", "alice", "<sip:alice@10.0.0.5:5070>", ""), "10.0.0.5:5070")
			res := final(t, f.do(req))
			req = f.request(registerReq("alice", "alice", "<sip:alice@10.0.0.5:5070>", ""), "10.0.0.5:5070")
			authorize(t, req, res, "alice", "alice-secret", alg)
			res = final(t, f.do(req))
			if res.StatusCode != 200 {
				t.Fatalf("got %d %s, want 200", res.StatusCode, res.Reason)
			}
			if got := contacts(res); len(got) != 1 || got[0] != "<sip:alice@10.0.0.5:5070>;expires=3600" {
				t.Fatalf("contacts = %q", got)
			}
			bs, err := f.store.Lookup(context.Background(), "sip:alice@example.test")
			if err != nil || len(bs) != 1 || bs[0].Source != "10.0.0.5:5070" || bs[0].Transport != "UDP" {
				t.Fatalf("stored %+v, %v", bs, err)
			}
		})
	}
}

func TestPrecomputedHA1Works(t *testing.T) {
	f := newFixture(t)
	res := final(t, f.do(f.request(registerReq("bob", "bob", "<sip:bob@10.0.0.6>", ""), "10.0.0.6:5060")))
	req := f.request(registerReq("bob", "bob", "<sip:bob@10.0.0.6>", ""), "10.0.0.6:5060")
	authorize(t, req, res, "bob", "bob-secret", "MD5")
	if res := final(t, f.do(req)); res.StatusCode != 200 {
		t.Fatalf("got %d, want 200", res.StatusCode)
	}
}

func TestBadCredentialsLookTheSameForKnownAndUnknownUsers(t *testing.T) {
	f := newFixture(t)
	try := func(user, password string) *sip.Response {
		res := final(t, f.do(f.request(registerReq(user, user, "<sip:x@10.0.0.5>", ""), "10.0.0.5:5070")))
		req := f.request(registerReq(user, user, "<sip:x@10.0.0.5>", ""), "10.0.0.5:5070")
		authorize(t, req, res, user, password, "SHA-256")
		return final(t, f.do(req))
	}
	known, unknown := try("alice", "wrong"), try("mallory", "wrong")
	if known.StatusCode != 401 || unknown.StatusCode != 401 || known.Reason != unknown.Reason {
		t.Fatalf("known user: %d %s; unknown user: %d %s", known.StatusCode, known.Reason, unknown.StatusCode, unknown.Reason)
	}
	if len(known.GetHeaders("WWW-Authenticate")) != len(unknown.GetHeaders("WWW-Authenticate")) {
		t.Fatal("the challenges differ in number")
	}
}

func TestReplayedCredentialsAreRejected(t *testing.T) {
	f := newFixture(t)
	res := final(t, f.do(f.request(registerReq("alice", "alice", "<sip:alice@10.0.0.5>", ""), "10.0.0.5:5070")))
	req := f.request(registerReq("alice", "alice", "<sip:alice@10.0.0.5>", ""), "10.0.0.5:5070")
	authorize(t, req, res, "alice", "alice-secret", "SHA-256")
	auth := req.GetHeader("Authorization").Value()
	if res := final(t, f.do(req)); res.StatusCode != 200 {
		t.Fatalf("first: %d", res.StatusCode)
	}
	again := f.request(registerReq("alice", "alice", "<sip:alice@10.0.0.5>", ""), "10.0.0.5:5070")
	again.AppendHeader(sip.NewHeader("Authorization", auth))
	if res := final(t, f.do(again)); res.StatusCode != 401 {
		t.Fatalf("replay: got %d, want 401", res.StatusCode)
	}
}

func TestExpiredNonceIsStale(t *testing.T) {
	f := newFixture(t, registrar.WithAuth([]digest.Algorithm{digest.MD5}, time.Minute))
	res := final(t, f.do(f.request(registerReq("alice", "alice", "<sip:alice@10.0.0.5>", ""), "10.0.0.5:5070")))
	f.clock.Add(2 * time.Minute)
	req := f.request(registerReq("alice", "alice", "<sip:alice@10.0.0.5>", ""), "10.0.0.5:5070")
	authorize(t, req, res, "alice", "alice-secret", "MD5")
	res = final(t, f.do(req))
	if res.StatusCode != 401 || !strings.Contains(res.GetHeader("WWW-Authenticate").Value(), "stale=true") {
		t.Fatalf("got %d %v, want 401 with stale=true", res.StatusCode, res.GetHeader("WWW-Authenticate"))
	}
}

func TestRegisterStatus(t *testing.T) {
	tests := []struct {
		name    string
		user    string
		aor     string
		contact string
		extra   string
		code    int
		header  [2]string
	}{
		{name: "a user cannot register another user's AOR", user: "alice", aor: "bob", contact: "<sip:alice@10.0.0.5>", code: 403},
		{name: "an expiry below the minimum gets 423 with Min-Expires", user: "alice", aor: "alice", contact: "<sip:alice@10.0.0.5>", extra: "Expires: 30\n", code: 423, header: [2]string{"Min-Expires", "60"}},
		{name: "a contact expires below the minimum gets 423", user: "alice", aor: "alice", contact: "<sip:alice@10.0.0.5>;expires=10", code: 423},
		{name: "an unsupported Require gets 420", user: "alice", aor: "alice", contact: "<sip:alice@10.0.0.5>", extra: "Require: foo\n", code: 420, header: [2]string{"Unsupported", "foo"}},
		{name: "a star contact without Expires 0 gets 400", user: "alice", aor: "alice", contact: "*", code: 400},
		{name: "a malformed Expires gets 400", user: "alice", aor: "alice", contact: "<sip:alice@10.0.0.5>", extra: "Expires: soon\n", code: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			res := f.register(tt.user, tt.aor, tt.contact, tt.extra, "10.0.0.5:5070")
			if res.StatusCode != tt.code {
				t.Fatalf("got %d %s, want %d", res.StatusCode, res.Reason, tt.code)
			}
			if tt.header[0] != "" {
				if h := res.GetHeader(tt.header[0]); h == nil || h.Value() != tt.header[1] {
					t.Fatalf("%s = %v, want %q", tt.header[0], h, tt.header[1])
				}
			}
		})
	}
}

func TestExpiryRules(t *testing.T) {
	tests := []struct {
		name    string
		contact string
		extra   string
		want    string
	}{
		{name: "no expiry gets the default", contact: "<sip:a@10.0.0.5>", want: "<sip:a@10.0.0.5>;expires=3600"},
		{name: "the Expires header applies", contact: "<sip:a@10.0.0.5>", extra: "Expires: 600\n", want: "<sip:a@10.0.0.5>;expires=600"},
		{name: "the contact parameter beats the header", contact: "<sip:a@10.0.0.5>;expires=120", extra: "Expires: 600\n", want: "<sip:a@10.0.0.5>;expires=120"},
		{name: "an expiry above the maximum is capped", contact: "<sip:a@10.0.0.5>", extra: "Expires: 99999\n", want: "<sip:a@10.0.0.5>;expires=7200"},
		{name: "q and instance are kept", contact: `<sip:a@10.0.0.5>;q=0.5;+sip.instance="<urn:uuid:1>";reg-id=1`, want: `<sip:a@10.0.0.5>;expires=3600;q=0.5;+sip.instance="<urn:uuid:1>";reg-id=1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			res := f.register("alice", "alice", tt.contact, tt.extra, "10.0.0.5:5070")
			if res.StatusCode != 200 {
				t.Fatalf("got %d %s", res.StatusCode, res.Reason)
			}
			if got := contacts(res); len(got) != 1 || got[0] != tt.want {
				t.Fatalf("contacts = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestBindingsExpireOnTime(t *testing.T) {
	f := newFixture(t)
	if res := f.register("alice", "alice", "<sip:a@10.0.0.5>;expires=60", "", "10.0.0.5:5070"); res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	f.clock.Add(20 * time.Second)
	res := f.register("alice", "alice", "<sip:b@10.0.0.5>;expires=120", "", "10.0.0.5:5070")
	got := strings.Join(contacts(res), ",")
	if !strings.Contains(got, "<sip:a@10.0.0.5>;expires=40") || !strings.Contains(got, "<sip:b@10.0.0.5>;expires=120") {
		t.Fatalf("contacts = %s", got)
	}
	f.clock.Add(41 * time.Second)
	res = f.register("alice", "alice", "<sip:c@10.0.0.5>;expires=120", "", "10.0.0.5:5070")
	got = strings.Join(contacts(res), ",")
	if strings.Contains(got, "sip:a@") || !strings.Contains(got, "<sip:b@10.0.0.5>;expires=79") {
		t.Fatalf("after a's expiry, contacts = %s", got)
	}
	f.reg.ExpireNow(context.Background())
	bs, _ := f.store.Lookup(context.Background(), "sip:alice@example.test")
	if len(bs) != 2 {
		t.Fatalf("store keeps %d bindings after expiry, want 2", len(bs))
	}
}

func TestStarRemovesAllBindings(t *testing.T) {
	f := newFixture(t)
	f.register("alice", "alice", "<sip:a@10.0.0.5>", "", "10.0.0.5:5070")
	f.register("alice", "alice", "<sip:b@10.0.0.5>", "", "10.0.0.5:5070")
	res := f.register("alice", "alice", "*", "Expires: 0\n", "10.0.0.5:5070")
	if res.StatusCode != 200 || len(contacts(res)) != 0 {
		t.Fatalf("got %d with contacts %q", res.StatusCode, contacts(res))
	}
	if _, err := f.store.Lookup(context.Background(), "sip:alice@example.test"); err == nil {
		t.Fatal("bindings left after Contact: *")
	}
}

func TestMaxContactsDropsTheOldest(t *testing.T) {
	f := newFixture(t)
	for _, c := range []string{"a", "b", "c", "d"} {
		f.clock.Add(time.Second)
		f.register("alice", "alice", "<sip:"+c+"@10.0.0.5>", "", "10.0.0.5:5070")
	}
	bs, _ := f.store.Lookup(context.Background(), "sip:alice@example.test")
	var got []string
	for _, b := range bs {
		got = append(got, b.Contact)
	}
	if strings.Join(got, ",") != "sip:b@10.0.0.5,sip:c@10.0.0.5,sip:d@10.0.0.5" {
		t.Fatalf("bindings = %v", got)
	}
}

func TestInstanceReplacesItsOldContact(t *testing.T) {
	f := newFixture(t)
	f.register("alice", "alice", `<sip:a@10.0.0.5:5070>;+sip.instance="<urn:uuid:1>";reg-id=1`, "", "10.0.0.5:5070")
	res := f.register("alice", "alice", `<sip:a@10.0.0.9:5070>;+sip.instance="<urn:uuid:1>";reg-id=1`, "", "10.0.0.9:5070")
	if got := contacts(res); len(got) != 1 || !strings.HasPrefix(got[0], "<sip:a@10.0.0.9:5070>") {
		t.Fatalf("contacts = %q", got)
	}
}

func TestOptionsToTheRegistrar(t *testing.T) {
	f := newFixture(t)
	res := final(t, f.do(f.request(`
OPTIONS sip:127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bK-o$SEQ
Max-Forwards: 70
From: <sip:alice@example.test>;tag=o1
To: <sip:127.0.0.1:5060>
Call-ID: opt-$SEQ
CSeq: 1 OPTIONS
Content-Length: 0
`, "10.0.0.5:5070")))
	if res.StatusCode != 200 || res.GetHeader("Allow") == nil || res.GetHeader("Supported") == nil || res.GetHeader("Accept") == nil {
		t.Fatalf("got %s", res.String())
	}
}

func inviteReq(from, to string) string {
	return fmt.Sprintf(`
INVITE sip:%[2]s SIP/2.0
Via: SIP/2.0/UDP 10.0.0.7:5080;branch=z9hG4bK-i$SEQ
Max-Forwards: 70
From: <sip:%[1]s>;tag=i1
To: <sip:%[2]s>
Call-ID: inv-$SEQ
CSeq: 1 INVITE
Contact: <sip:caller@10.0.0.7:5080>
Content-Length: 0
`, from, to)
}

func TestProxyStatus(t *testing.T) {
	tests := []struct {
		name     string
		from, to string
		route    bool
		code     int
	}{
		{name: "a local caller is challenged", from: "alice@example.test", to: "bob@example.test", code: 407},
		{name: "an unknown callee gets 404", from: "carol@elsewhere.test", to: "nobody@example.test", code: 404},
		{name: "a callee with no binding gets 480", from: "carol@elsewhere.test", to: "bob@example.test", code: 480},
		{name: "relaying for strangers is denied", from: "carol@elsewhere.test", to: "dave@elsewhere.test", code: 403},
		// A Route naming the proxy, as a UA with an outbound proxy sends,
		// changes none of that for a request outside a dialog.
		{name: "a preloaded route opens no relay", from: "carol@elsewhere.test", to: "dave@elsewhere.test", route: true, code: 403},
		{name: "a local caller with a preloaded route is challenged", from: "alice@example.test", to: "dave@elsewhere.test", route: true, code: 407},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			raw := inviteReq(tt.from, tt.to)
			if tt.route {
				raw = strings.Replace(raw, "Max-Forwards: 70", "Max-Forwards: 70\nRoute: <sip:127.0.0.1:5060;lr>", 1)
			}
			res := final(t, f.do(f.request(raw, "10.0.0.7:5080")))
			if res.StatusCode != tt.code {
				t.Fatalf("got %d %s, want %d", res.StatusCode, res.Reason, tt.code)
			}
		})
	}
}

func TestMaxForwardsZeroGets483(t *testing.T) {
	f := newFixture(t)
	req := f.request(strings.Replace(inviteReq("carol@elsewhere.test", "bob@example.test"), "Max-Forwards: 70", "Max-Forwards: 0", 1), "10.0.0.7:5080")
	if res := final(t, f.do(req)); res.StatusCode != 483 {
		t.Fatalf("got %d, want 483", res.StatusCode)
	}
}

func TestRequestsToTheRegistrarItselfGet405WithAllow(t *testing.T) {
	f := newFixture(t)
	res := final(t, f.do(f.request(`
MESSAGE sip:127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bK-m$SEQ
Max-Forwards: 70
From: <sip:carol@elsewhere.test>;tag=m1
To: <sip:127.0.0.1:5060>
Call-ID: msg-$SEQ
CSeq: 1 MESSAGE
Content-Length: 0
`, "10.0.0.5:5070")))
	if res.StatusCode != 405 || res.GetHeader("Allow") == nil {
		t.Fatalf("got %s", res.StartLine())
	}
}

func TestALoopIsDetected(t *testing.T) {
	f := newFixture(t)
	raw := strings.ReplaceAll(inviteReq("carol@elsewhere.test", "bob@example.test"), "$SEQ", "7")
	first := f.request(raw, "10.0.0.7:5080")
	// What the proxy would send on carries its Via; the same request
	// coming back with it is a loop.
	branch := registrar.LoopBranch(first)
	looped := f.request(strings.Replace(raw, "Via: SIP/2.0/UDP 10.0.0.7:5080;branch=z9hG4bK-i7",
		"Via: SIP/2.0/UDP 127.0.0.1:5060;branch="+branch+"\nVia: SIP/2.0/UDP 10.0.0.7:5080;branch=z9hG4bK-i7", 1), "127.0.0.1:5060")
	if res := final(t, f.do(looped)); res.StatusCode != 482 {
		t.Fatalf("got %d, want 482 Loop Detected", res.StatusCode)
	}
	spiral := f.request(strings.Replace(raw, "Via: SIP/2.0/UDP 10.0.0.7:5080;branch=z9hG4bK-i7",
		"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-sl000000000000.x\nVia: SIP/2.0/UDP 10.0.0.7:5080;branch=z9hG4bK-i7", 1), "127.0.0.1:5060")
	if res := final(t, f.do(spiral)); res.StatusCode == 482 {
		t.Fatal("a spiral (our Via, another request) was taken for a loop")
	}
}
