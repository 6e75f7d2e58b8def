package registrar

import (
	"slices"
	"strings"
	"testing"
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

func TestParseRegisterReadsAsSipgo(t *testing.T) {
	for name, raw := range registers {
		t.Run(name, func(t *testing.T) {
			var rq regRequest
			via, ok := parseRegister(raw, &rq)
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
			if _, ok := parseRegister(raw, new(regRequest)); ok {
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
		if _, ok := parseRegister(registers[name], &rq); !ok {
			t.Fatalf("%s: declined", name)
		}
		var fresh regRequest
		parseRegister(registers[name], &fresh)
		if err := sameRequest(&rq, &fresh); err != "" {
			t.Fatalf("%s, after others: %s", name, err)
		}
	}
}

func FuzzParseRegister(f *testing.F) {
	for _, raw := range registers {
		f.Add(raw)
	}
	for _, raw := range declined {
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		var rq regRequest
		via, ok := parseRegister(raw, &rq)
		if !ok {
			return
		}
		// Where sipgo rejects a message that parseRegister reads, the
		// difference is in a field the registrar does not read.
		if err := sameAsSipgo(raw, &rq, via); err != "" && !strings.HasPrefix(err, "sipgo:") {
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
	if err != nil {
		return "sipgo: " + err.Error()
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
