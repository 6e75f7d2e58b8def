package registrar

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/sipline/sipline/registrar/location/memstore"
)

// The forwarded copy shares the headers it does not change with the
// request the server transaction keeps: those it changes (the Via and
// Max-Forwards it came with, credentials for our realm) must be its own.
func TestForwardRequestLeavesTheOriginal(t *testing.T) {
	r, err := New(memstore.New(), WithDomain("127.0.0.1"),
		WithEndpoints(Endpoint{Transport: "UDP", Host: "127.0.0.1", Port: 5060, Local: "127.0.0.1:5060"}))
	if err != nil {
		t.Fatal(err)
	}
	const raw = "INVITE sip:bob@127.0.0.1 SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 10.0.0.5:5070;rport;branch=z9hG4bK-c1\r\n" +
		"Via: SIP/2.0/UDP 10.0.0.6:5080;branch=z9hG4bK-c0\r\n" +
		"Max-Forwards: 9\r\n" +
		"From: <sip:alice@127.0.0.1>;tag=a1\r\n" +
		"To: <sip:bob@127.0.0.1>\r\n" +
		"Call-ID: fwd-1\r\n" +
		"CSeq: 2 INVITE\r\n" +
		"Proxy-Authorization: Digest username=\"alice\",realm=\"elsewhere.test\",nonce=\"n0\",uri=\"sip:bob@127.0.0.1\",response=\"00\"\r\n" +
		"Proxy-Authorization: Digest username=\"alice\",realm=\"127.0.0.1\",nonce=\"n1\",uri=\"sip:bob@127.0.0.1\",response=\"11\"\r\n" +
		"Content-Type: application/sdp\r\n" +
		"Content-Length: 4\r\n\r\nv=0\n"
	req, err := parseSIP(raw)
	if err != nil {
		t.Fatal(err)
	}
	req.SetTransport("UDP")
	req.SetSource("192.0.2.7:40000")
	before := req.String()

	target := sip.Uri{Scheme: "sip", User: "bob", Host: "127.0.0.2", Port: 5062}
	h := hop{transport: "UDP", addr: "127.0.0.2:5062"}
	out, err := r.forwardRequest(req, h, &target, true)
	if err != nil {
		t.Fatal(err)
	}
	other, err := r.forwardRequest(req, h, &target, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := req.String(); got != before {
		t.Fatalf("forwarding changed the original:\n%s\nwas:\n%s", got, before)
	}
	fwd := out.String()
	for _, want := range []string{
		"INVITE sip:bob@127.0.0.2:5062 SIP/2.0\r\n",
		"\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=" + branchPrefix,
		"\r\nVia: SIP/2.0/UDP 10.0.0.5:5070;rport=40000;branch=z9hG4bK-c1;received=192.0.2.7\r\n" +
			"Via: SIP/2.0/UDP 10.0.0.6:5080;branch=z9hG4bK-c0\r\n",
		"\r\nMax-Forwards: 8\r\n",
		`realm="elsewhere.test"`,
		"\r\nRecord-Route: <sip:ft-",
		"\r\n\r\nv=0\n",
	} {
		if !strings.Contains(fwd, want) {
			t.Errorf("forwarded request lacks %q:\n%s", want, fwd)
		}
	}
	if strings.Contains(fwd, `realm="127.0.0.1"`) {
		t.Errorf("forwarded request still carries our realm's credentials:\n%s", fwd)
	}

	if out.Via() == other.Via() || out.MaxForwards() == other.MaxForwards() {
		t.Errorf("two branches share the headers forwardRequest changes")
	}
}

// BenchmarkProxyRelay is the proxy's own work on an INVITE with
// credentials and on its 200: the copy forwarded to the callee, and the
// copy relayed to the caller. Parsing and the transactions are sipgo's,
// and not in it.
func BenchmarkProxyRelay(b *testing.B) {
	r, err := New(memstore.New(), WithDomain("127.0.0.1"),
		WithEndpoints(Endpoint{Transport: "UDP", Host: "127.0.0.1", Port: 5060, Local: "127.0.0.1:5060"}))
	if err != nil {
		b.Fatal(err)
	}
	req, err := parseSIP(benchInvite(`Proxy-Authorization: Digest username="alice",realm="127.0.0.1",nonce="abc",` +
		`uri="sip:bob@127.0.0.1:5060",response="0123456789abcdef0123456789abcdef",algorithm=MD5` + "\r\n"))
	if err != nil {
		b.Fatal(err)
	}
	req.SetTransport("UDP")
	req.SetSource("127.0.0.9:5070")
	target := sip.Uri{Scheme: "sip", User: "bob", Host: "127.0.0.9", Port: 5080}
	h := hop{transport: "UDP", addr: "127.0.0.9:5080"}
	out, err := r.forwardRequest(req, h, &target, true)
	if err != nil {
		b.Fatal(err)
	}
	res := sip.NewResponseFromRequest(out, sip.StatusOK, "OK", nil)
	res.To().Params.Add("tag", "callee")
	b.Run("request", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.forwardRequest(req, h, &target, true); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("response", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if relayed(res).Via() == nil {
				b.Fatal("no Via left")
			}
		}
	})
}
