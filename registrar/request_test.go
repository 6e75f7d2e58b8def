package registrar

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/sipline/sipline/registrar/location/memstore"
)

// registers are REGISTERs as UAs send them, and odd ones that are still
// valid SIP; parseRegister must read each as sipgo does, or decline it.
var registers = map[string]string{
	"sipp": string(benchRegister(nil, 7, "")),
	"sipp with credentials": string(benchRegister(nil, 8, `Authorization: Digest username="alice",realm="127.0.0.1",`+
		`nonce="abc",uri="sip:127.0.0.1:5060",response="0123456789abcdef0123456789abcdef",algorithm=MD5,cnonce="c0ffee",qop=auth,nc=00000001`+"\r\n")),
	"linphone": "REGISTER sip:example.test SIP/2.0\r\n" +
		"Via: SIP/2.0/TCP 10.0.0.5:41234;branch=z9hG4bK.Xy12;rport\r\n" +
		"From: <sip:alice@example.test>;tag=Q3x\r\n" +
		"To: sip:alice@example.test\r\n" +
		"CSeq: 20 REGISTER\r\n" +
		"Call-ID: aBc-123\r\n" +
		"Max-Forwards: 70\r\n" +
		"Supported: replaces, outbound, gruu, path\r\n" +
		"Accept: application/sdp\r\n" +
		"Accept: text/plain\r\n" +
		"Expires: 600\r\n" +
		"User-Agent: Linphone/5.2.0 (belle-sip/5.2.0)\r\n" +
		`Contact: <sip:alice@10.0.0.5:41234;transport=tcp>;+sip.instance="<urn:uuid:0a-1b>";reg-id=1;+org.linphone.specs="lime"` + "\r\n" +
		"Content-Length: 0\r\n\r\n",
	"compact forms and odd case": "REGISTER sip:example.test:5060;transport=udp SIP/2.0\r\n" +
		"v: SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bKa1;received=10.0.0.5\r\n" +
		"f: \"Alice, A.\" <sip:alice@example.test>;tag=1\r\n" +
		"t: \"Alice\" <sip:alice@example.test>\r\n" +
		"i: 55@10.0.0.5\r\n" +
		"CSEQ: 3 REGISTER\r\n" +
		"k: outbound\r\n" +
		"m: <sip:alice@10.0.0.5:5070>;expires=60, \"Desk, 2\" <sip:alice@10.0.0.6>;q=0.5\r\n" +
		"m: sip:alice@10.0.0.7;expires=0\r\n" +
		"EXPIRES  :   30  \r\n" +
		"authorization: Digest username=\"alice\"\r\n" +
		"require: outbound\r\n" +
		"l: 0\r\n\r\n",
	"star": "REGISTER sip:example.test SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP h.example:5070;branch=z9hG4bKs\r\nVia: SIP/2.0/UDP p.example;branch=z9hG4bKp\r\n" +
		"From: <sip:alice@example.test>;tag=1\r\nTo: <sip:alice@example.test>\r\n" +
		"Call-ID: x\r\nCSeq: 9 REGISTER\r\nContact: *\r\nExpires: 0\r\n\r\n",
	"to with tag, contact with headers": "REGISTER sip:example.test SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bKt\r\n" +
		"From: sip:alice@example.test;tag=1\r\nTo: <sip:alice@example.test>;tag=zz\r\n" +
		"Call-ID: t\r\nCSeq: 1 REGISTER\r\nContact: <sip:alice@10.0.0.5?X-A=1>\r\n\r\n",
	"no contact": "REGISTER sip:example.test SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bKq\r\n" +
		"From: <sip:alice@example.test>;tag=1\r\nTo: <sip:alice@example.test>\r\nCall-ID: q\r\nCSeq: 2 REGISTER\r\n\r\n",
	"missing call-id": "REGISTER sip:example.test SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bKm\r\n" +
		"From: <sip:alice@example.test>;tag=1\r\nTo: <sip:alice@example.test>\r\nCSeq: 2 REGISTER\r\n\r\n",
	"body": "REGISTER sip:example.test SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bKb\r\n" +
		"From: <sip:alice@example.test>;tag=1\r\nTo: <sip:alice@example.test>\r\nCall-ID: b\r\nCSeq: 2 REGISTER\r\n" +
		"Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
	"two Via values in one field": "REGISTER sip:example.test SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP h.example:5070;branch=z9hG4bKs, SIP/2.0/UDP p.example;branch=z9hG4bKp\r\n" +
		"From: <sip:alice@example.test>;tag=1\r\nTo: <sip:alice@example.test>\r\nCall-ID: x\r\nCSeq: 9 REGISTER\r\n\r\n",
}

// declined are REGISTERs parseRegister leaves to sipgo.
var declined = map[string]string{
	"folded": "REGISTER sip:example.test SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bKf\r\n" +
		"From: <sip:alice@example.test>;tag=1\r\nTo:\r\n <sip:alice@example.test>\r\nCall-ID: f\r\nCSeq: 2 REGISTER\r\n\r\n",
	"ipv6 via": "REGISTER sip:[::1] SIP/2.0\r\nVia: SIP/2.0/UDP [::1]:5070;branch=z9hG4bK6\r\n" +
		"From: <sip:alice@[::1]>;tag=1\r\nTo: <sip:alice@[::1]>\r\nCall-ID: 6\r\nCSeq: 2 REGISTER\r\n\r\n",
	"two to": "REGISTER sip:example.test SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bK2\r\n" +
		"From: <sip:alice@example.test>;tag=1\r\nTo: <sip:alice@example.test>\r\nTo: <sip:bob@example.test>\r\nCall-ID: 2\r\nCSeq: 2 REGISTER\r\n\r\n",
	"bare LF":          "REGISTER sip:example.test SIP/2.0\nVia: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bK3\n\n",
	"no end of header": "REGISTER sip:example.test SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bK4\r\n",
	"bad cseq":         "REGISTER sip:example.test SIP/2.0\r\nCSeq: x REGISTER\r\n\r\n",
	"bad contact":      "REGISTER sip:example.test SIP/2.0\r\nContact: <sip:alice@10.0.0.5\r\n\r\n",
	"not SIP/2.0":      "REGISTER sip:example.test SIP/3.0\r\nCall-ID: v\r\n\r\n",
}

// invites are INVITEs as UAs send them, for the stateless challenge:
// parseRequest must read each as sipgo does, and statelessChallenge must
// answer 407 exactly where the proxy would (challenged), or leave it to
// the proxy.
var invites = map[string]struct {
	raw        string
	challenged bool
}{
	"sipp": {benchInvite(""), true},
	"sipp with credentials": {benchInvite(`Proxy-Authorization: Digest username="alice",realm="127.0.0.1",nonce="abc",` +
		`uri="sip:bob@127.0.0.1:5060",response="0123456789abcdef0123456789abcdef",algorithm=MD5` + "\r\n"), false},
	"linphone, compact forms": {"INVITE sip:bob@example.test SIP/2.0\r\n" +
		"v: SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bK.a1;rport\r\n" +
		"f: \"Alice\" <sip:alice@Example.Test>;tag=1\r\nt: sip:bob@example.test\r\ni: c1\r\nCSeq: 20 INVITE\r\n" +
		"m: <sip:alice@10.0.0.5:5070>;+sip.instance=\"<urn:uuid:1>\"\r\nMax-Forwards: 70\r\n" +
		"User-Agent: Linphone/5.2.0\r\nProxy-Require: \r\nl: 0\r\n\r\n", true},
	"to a foreign domain":       {strings.Replace(benchInvite(""), "INVITE sip:bob@127.0.0.1:5060", "INVITE sip:bob@elsewhere.test", 1), true},
	"in a dialog":               {strings.Replace(benchInvite(""), "To: <sip:bob@127.0.0.1>", "To: <sip:bob@127.0.0.1>;tag=9", 1), false},
	"from a foreign domain":     {strings.Replace(benchInvite(""), "From: <sip:alice@127.0.0.1>", "From: <sip:alice@elsewhere.test>", 1), false},
	"with a route":              {strings.Replace(benchInvite(""), "Max-Forwards: 70", "Route: <sip:127.0.0.1;lr>\r\nMax-Forwards: 70", 1), false},
	"no hops left":              {strings.Replace(benchInvite(""), "Max-Forwards: 70", "Max-Forwards: 0", 1), false},
	"no hops left, then some":   {strings.Replace(benchInvite(""), "Max-Forwards: 70", "Max-Forwards: 0\r\nMax-Forwards: 70", 1), false},
	"looped":                    {strings.Replace(benchInvite(""), "Max-Forwards: 70", "Via: SIP/2.0/UDP 127.0.0.1;branch="+branchPrefix+"x.y\r\nMax-Forwards: 70", 1), false},
	"to the registrar":          {strings.Replace(benchInvite(""), "INVITE sip:bob@127.0.0.1:5060", "INVITE sip:127.0.0.1", 1), false},
	"unsupported proxy-require": {strings.Replace(benchInvite(""), "Max-Forwards: 70", "Proxy-Require: foo\r\nMax-Forwards: 70", 1), false},
	"no branch cookie":          {strings.Replace(benchInvite(""), "branch=z9hG4bK-", "branch=", 1), false},
	"no call-id":                {strings.Replace(benchInvite(""), "Call-ID: 1-4242@127.0.0.9\r\n", "", 1), false},
}

// benchInvite is an INVITE as sipp sends it in the load test
// (bench/sipp/call_auth.xml), with auth added.
func benchInvite(auth string) string {
	const sdp = "v=0\r\no=caller 1 1 IN IP4 127.0.0.9\r\ns=-\r\nc=IN IP4 127.0.0.9\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n"
	return "INVITE sip:bob@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.9:5070;branch=z9hG4bK-00000001;rport\r\n" +
		"From: <sip:alice@127.0.0.1>;tag=4242C1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: 1-4242@127.0.0.9\r\n" +
		"CSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.9:5070>\r\n" + auth + "Max-Forwards: 70\r\n" +
		"Content-Type: application/sdp\r\nContent-Length: " + strconv.Itoa(len(sdp)) + "\r\n\r\n" + sdp
}

func TestStatelessChallengeAgreesWithProxy(t *testing.T) {
	r := newChallenger(t)
	for name, inv := range invites {
		t.Run(name, func(t *testing.T) {
			var rq regRequest
			via, ok := parseRequest(inv.raw, &rq)
			if !ok {
				if inv.challenged {
					t.Fatal("declined")
				}
				return
			}
			if err := sameAsSipgo(inv.raw, &rq, via); err != "" {
				t.Fatal(err)
			}
			se := r.statelessChallenge(&rq, via)
			if got := se != nil; got != inv.challenged {
				t.Fatalf("challenged: %v, want %v", got, inv.challenged)
			}
			if err := proxyAgrees(r, inv.raw, se); err != "" {
				t.Fatal(err)
			}
		})
	}
}

func newChallenger(t testing.TB) *Registrar {
	r, err := New(memstore.New(), WithDomain("127.0.0.1", "example.test"),
		WithUsers(map[string]User{"alice": {Password: "alice-secret"}, "bob": {Password: "bob-secret"}}))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// proxyAgrees checks a stateless challenge se against what the proxy
// answers the same request, parsed by sipgo: a 407 too, with as many
// challenges. "" when they agree.
func proxyAgrees(r *Registrar, raw string, se *StatusError) string {
	if se == nil {
		return ""
	}
	req, err := parseSIP(raw)
	if err != nil {
		return "sipgo: " + err.Error()
	}
	req.SetTransport("UDP")
	req.SetSource("127.0.0.9:5070")
	err = r.validate(req)
	if err == nil {
		_, err = r.route(req)
	}
	var want *StatusError
	if !errors.As(err, &want) || want.Code != sip.StatusProxyAuthRequired {
		return "challenged statelessly; the proxy answers " + errString(err)
	}
	if se.Code != want.Code || len(se.Headers) != len(want.Headers) {
		return "a different challenge from the proxy's"
	}
	return ""
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}

func TestParseRequestReadsAsSipgo(t *testing.T) {
	for name, raw := range registers {
		t.Run(name, func(t *testing.T) {
			var rq regRequest
			via, ok := parseRequest(raw, &rq)
			if !ok {
				t.Fatal("declined")
			}
			if err := sameAsSipgo(raw, &rq, via); err != "" {
				t.Fatal(err)
			}
		})
	}
	for name, raw := range declined {
		t.Run(name, func(t *testing.T) {
			if _, ok := parseRequest(raw, new(regRequest)); ok {
				t.Fatal("read; want it left to sipgo")
			}
		})
	}
}

// TestParseRegisterReusesMemory checks that a worker's regRequest carries
// nothing of one request into the next.
func TestParseRegisterReusesMemory(t *testing.T) {
	var rq regRequest
	for _, name := range []string{"compact forms and odd case", "no contact", "linphone", "star", "sipp"} {
		if _, ok := parseRequest(registers[name], &rq); !ok {
			t.Fatalf("%s: declined", name)
		}
		var fresh regRequest
		parseRequest(registers[name], &fresh)
		if err := sameRequest(&rq, &fresh); err != "" {
			t.Fatalf("%s, after others: %s", name, err)
		}
	}
}

// FuzzParseRequest holds parseRequest to sipgo's reading, and the
// stateless challenge to the proxy's answer.
func FuzzParseRequest(f *testing.F) {
	for _, raw := range registers {
		f.Add(raw)
	}
	for _, raw := range declined {
		f.Add(raw)
	}
	for _, inv := range invites {
		f.Add(inv.raw)
	}
	r := newChallenger(f)
	f.Fuzz(func(t *testing.T, raw string) {
		var rq regRequest
		via, ok := parseRequest(raw, &rq)
		if !ok {
			return
		}
		// Where sipgo rejects a message that parseRequest reads, the
		// difference is in a field the registrar does not read.
		if err := sameAsSipgo(raw, &rq, via); err != "" && !strings.HasPrefix(err, "sipgo:") {
			t.Fatal(err)
		}
		if err := proxyAgrees(r, raw, r.statelessChallenge(&rq, via)); err != "" && !strings.HasPrefix(err, "sipgo:") {
			t.Fatal(err)
		}
	})
}

// sameAsSipgo compares what parseRegister read with what register reads
// of sipgo's parse of the same message; "" when they agree.
func sameAsSipgo(raw string, rq *regRequest, via topVia) string {
	req, err := parseSIP(raw)
	if err != nil {
		return "sipgo: " + err.Error()
	}
	want, err := requestOf(req)
	if err != nil && rq.method == sip.REGISTER {
		return "sipgo: " + err.Error()
	}
	if rq.method != req.Method {
		return "method " + string(rq.method) + ", sipgo " + string(req.Method)
	}
	if rq.method == sip.INVITE {
		want.contacts = nil // not read
		if err := sameInvite(req, rq); err != "" {
			return err
		}
	}
	if e := sameRequest(rq, &want); e != "" {
		return e
	}
	if want.hasTo && rq.toTag != req.To().Params.Has("tag") {
		return "To tag"
	}
	if f := req.From(); (f == nil) != (rq.from == "") || f != nil && fromURI(rq.from) != f.Address.String() {
		return "From: " + rq.from
	}
	if v := req.Via(); v != nil && !topViaHasSeveral(raw) {
		branch, _ := v.Params.Get("branch")
		if (topVia{v.Host, v.Port, branch}) != via {
			return "Via: got " + via.host + " " + via.branch + ", sipgo " + v.Host + " " + branch
		}
	} else if v == nil && via != (topVia{}) {
		return "Via where sipgo has none"
	}
	return ""
}

func sameRequest(got, want *regRequest) string {
	switch {
	case got.host != want.host:
		return "host " + got.host + ", want " + want.host
	case got.hasTo != want.hasTo || got.to.String() != want.to.String():
		return "To " + got.to.String() + ", want " + want.to.String()
	case got.callID != want.callID:
		return "Call-ID " + got.callID + ", want " + want.callID
	case got.hasCSeq != want.hasCSeq || got.cseq != want.cseq:
		return "CSeq"
	case !slices.Equal(got.fields, want.fields):
		return "fields"
	case len(got.contacts) != len(want.contacts):
		return "number of contacts"
	}
	for i, c := range got.contacts {
		w := want.contacts[i]
		if c.uri.Wildcard != w.uri.Wildcard || c.uri.String() != w.uri.String() || c.params.String() != w.params.String() {
			return "Contact " + c.uri.String() + ";" + c.params.String() + ", want " + w.uri.String() + ";" + w.params.String()
		}
	}
	return ""
}

// sameInvite compares what parseRequest read of an INVITE for the
// stateless challenge with sipgo's parse of it.
func sameInvite(req *sip.Request, rq *regRequest) string {
	if f := req.From(); f != nil && f.Address.String() != rq.fromURI.String() {
		return "From URI " + rq.fromURI.String() + ", sipgo " + f.Address.String()
	}
	if routed := req.Route() != nil; routed != rq.routed {
		return "Route"
	}
	mf := req.MaxForwards()
	if noHops := mf != nil && mf.Val() == 0; noHops != rq.noHops {
		return "Max-Forwards 0"
	}
	looped := false
	for _, h := range req.GetHeaders("Via") {
		looped = looped || strings.Contains(h.Value(), branchPrefix)
	}
	if looped != rq.looped {
		return "a Via of ours"
	}
	return ""
}

// topViaHasSeveral reports whether raw's first Via field has more than
// one value, which sipgo can misread (see parseTopVia).
func topViaHasSeveral(raw string) bool {
	for _, line := range strings.Split(raw, "\r\n")[1:] {
		name, value, _ := strings.Cut(line, ":")
		if isName(strings.TrimSpace(name), "Via", "v") {
			return strings.Contains(value, ",")
		}
	}
	return false
}
