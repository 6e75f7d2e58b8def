package registrar

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sipline/sipline/registrar/location/memstore"
)

// capture is a PacketConn on 127.0.0.1:5060 that keeps what is written
// to it, and where.
type capture struct {
	net.PacketConn
	data []byte
	to   string
}

func (c *capture) WriteTo(b []byte, addr net.Addr) (int, error) {
	c.data, c.to = append(c.data[:0], b...), addr.String()
	return len(b), nil
}

func (c *capture) LocalAddr() net.Addr { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5060} }

func newRelay(t testing.TB) (*Registrar, *statelessConn, *capture) {
	t.Helper()
	r, err := New(memstore.New(), WithDomain("127.0.0.1"),
		WithEndpoints(Endpoint{Transport: "UDP", Host: "127.0.0.1", Port: 5060, Local: "127.0.0.1:5060"},
			Endpoint{Transport: "TCP", Host: "127.0.0.1", Port: 5060, Local: "127.0.0.1:5060"}))
	if err != nil {
		t.Fatal(err)
	}
	pc := &capture{}
	return r, r.newStatelessConn(pc), pc
}

// bye is a BYE from alice at 127.0.0.9:5070 to bob at 127.0.0.2:5080,
// with the route set given and the fields in extra.
func bye(route, extra string) string {
	return "BYE sip:bob@127.0.0.2:5080 SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 127.0.0.9:5070;branch=z9hG4bK-b1;rport\r\n" +
		route +
		"From: <sip:alice@127.0.0.1>;tag=a1\r\n" +
		"To: <sip:bob@127.0.0.1>;tag=b1\r\n" +
		"Call-ID: relay-1\r\n" +
		"CSeq: 2 BYE\r\n" +
		extra +
		"Content-Length: 0\r\n\r\n"
}

func TestRelayInDialog(t *testing.T) {
	r, c, pc := newRelay(t)
	alice := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 9), Port: 5070}
	own := r.flowToken(flowKey{transport: "UDP", addr: alice.String()})
	natted := r.flowToken(flowKey{transport: "UDP", addr: "127.0.0.3:6000"})
	overTCP := r.flowToken(flowKey{transport: "TCP", addr: "127.0.0.3:6000"})
	ours := func(tok string) string { return "<sip:" + tok + "@127.0.0.1:5060;transport=udp;lr>" }
	both := "Route: " + ours(natted) + ", " + ours(own) + "\r\n"

	relayed := []struct {
		name, raw, to string
		want, not     []string
	}{
		{
			name: "the route set we made, to the request URI",
			raw:  bye(both, "Max-Forwards: 70\r\n"),
			to:   "127.0.0.2:5080",
			want: []string{
				"BYE sip:bob@127.0.0.2:5080 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=" + relayPrefix,
				"\r\nVia: SIP/2.0/UDP 127.0.0.9:5070;branch=z9hG4bK-b1;rport=5070;received=127.0.0.9\r\n",
				"\r\nMax-Forwards: 69\r\n", "\r\nContent-Length: 0\r\n\r\n",
			},
			not: []string{"Route:"},
		},
		{
			name: "on separate lines, without Max-Forwards",
			raw:  bye("Route: "+ours(natted)+"\r\nRoute: "+ours(own)+"\r\n", ""),
			to:   "127.0.0.2:5080",
			want: []string{"\r\nMax-Forwards: 70\r\n"},
			not:  []string{"Route:"},
		},
		{
			name: "to the flow the last token names, when it is not the sender's",
			raw:  bye("Route: "+ours(own)+", "+ours(natted)+"\r\n", ""),
			to:   "127.0.0.3:6000",
		},
		{
			name: "to a further Route",
			raw:  bye("Route: "+ours(own)+", <sip:10.0.0.7:5070;lr>\r\nRoute: <sip:10.0.0.8;lr>\r\n", ""),
			to:   "10.0.0.7:5070",
			want: []string{"\r\nRoute: <sip:10.0.0.7:5070;lr>, <sip:10.0.0.8;lr>\r\n"},
			not:  []string{own},
		},
	}
	for _, tt := range relayed {
		t.Run(tt.name, func(t *testing.T) {
			if !c.relayInDialog(&reader{}, []byte(tt.raw), alice) {
				t.Fatal("not relayed")
			}
			got := string(pc.data)
			if pc.to != tt.to {
				t.Errorf("sent to %s, want %s", pc.to, tt.to)
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("lacks %q:\n%s", w, got)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(got, n) {
					t.Errorf("has %q:\n%s", n, got)
				}
			}
			if _, err := parseSIP(got); err != nil {
				t.Errorf("sipgo cannot read it: %v\n%s", err, got)
			}
			// A retransmission goes with the same branch.
			first := got
			c.relayInDialog(&reader{}, []byte(tt.raw), alice)
			if string(pc.data) != first {
				t.Errorf("retransmission relayed otherwise:\n%s\nthen:\n%s", first, pc.data)
			}
		})
	}

	ack := strings.NewReplacer("BYE sip:", "ACK sip:", "2 BYE", "1 ACK", "branch=z9hG4bK-b1", "branch=z9hG4bK-a1").Replace(bye(both, ""))
	if !c.relayInDialog(&reader{}, []byte(ack), alice) || pc.to != "127.0.0.2:5080" {
		t.Errorf("an ACK for a 2xx was not relayed to bob: %s\n%s", pc.to, pc.data)
	}
	// The ACK for a failure answered to a re-INVITE is the transaction's.
	r.refused.add(alice.String(), "z9hG4bK-a1", r.now())

	left := map[string]string{
		"an ACK for a refused re-INVITE": ack,
		"INVITE":                         strings.Replace(bye(both, ""), "BYE sip:", "INVITE sip:", 1),
		"no To tag":                      strings.Replace(bye(both, ""), ";tag=b1", "", 1),
		"a Route without token":          bye("Route: <sip:127.0.0.1:5060;lr>\r\n", ""),
		"a forged token":                 bye("Route: "+ours(own[:len(own)-2]+"AA")+"\r\n", ""),
		"no Route of ours first":         bye("Route: <sip:10.0.0.7;lr>, "+ours(own)+"\r\n", ""),
		"Max-Forwards 0":                 bye(both, "Max-Forwards: 0\r\n"),
		"Proxy-Require":                  bye(both, "Proxy-Require: foo\r\n"),
		"a Via of ours":                  bye(both, "Via: SIP/2.0/UDP 127.0.0.1:5060;branch="+branchPrefix+"abc.1\r\n"),
		"on to TCP":                      bye("Route: "+ours(own)+", "+ours(overTCP)+"\r\n", ""),
		"a folded line":                  bye(both, "Subject: a\r\n b\r\n"),
		"two Call-IDs":                   bye(both, "Call-ID: relay-2\r\n"),
		"a wrong Content-Length":         strings.Replace(bye(both, ""), "Content-Length: 0", "Content-Length: 5", 1),
		"to a host name":                 strings.Replace(bye(both, ""), "bob@127.0.0.2:5080", "bob@bob.example.test", 1),
		"to the registrar itself":        strings.Replace(bye(both, ""), "bob@127.0.0.2:5080", "127.0.0.1:5060", 1),
		"an RFC 2543 branch":             strings.Replace(bye(both, ""), "branch=z9hG4bK-b1", "branch=b1", 1),
		"to IPv6 from IPv4 socket":       strings.Replace(bye(both, ""), "bob@127.0.0.2:5080", "bob@[::1]:5080", 1),
	}
	for name, raw := range left {
		t.Run("left to sipgo: "+name, func(t *testing.T) {
			if c.relayInDialog(&reader{}, []byte(raw), alice) {
				t.Fatalf("relayed:\n%s", pc.data)
			}
		})
	}
}

func TestRelayResponse(t *testing.T) {
	_, c, pc := newRelay(t)
	res := "SIP/2.0 200 OK\r\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=" + relayPrefix + "0123456789abcdef\r\n" +
		"Via: SIP/2.0/UDP 127.0.0.9:5070;branch=z9hG4bK-b1;rport=5071;received=127.0.0.8\r\n" +
		"From: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>;tag=b1\r\n" +
		"Call-ID: relay-1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
	if !c.relayResponse(&reader{}, []byte(res)) {
		t.Fatal("not relayed")
	}
	want := "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.9:5070;branch=z9hG4bK-b1;rport=5071;received=127.0.0.8\r\n" +
		"From: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>;tag=b1\r\n" +
		"Call-ID: relay-1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
	if string(pc.data) != want || pc.to != "127.0.0.8:5071" {
		t.Errorf("sent to %s:\n%s\nwant to 127.0.0.8:5071:\n%s", pc.to, pc.data, want)
	}

	left := map[string]string{
		"a stateful branch of ours": strings.Replace(res, relayPrefix, branchPrefix+"abc", 1),
		"a Via not ours on top":     strings.Replace(res, "UDP 127.0.0.1:5060", "UDP 10.0.0.1:5060", 1),
		"no Via after ours":         strings.Replace(res, "Via: SIP/2.0/UDP 127.0.0.9:5070;branch=z9hG4bK-b1;rport=5071;received=127.0.0.8\r\n", "", 1),
		"then over TCP":             strings.Replace(res, "UDP 127.0.0.9", "TCP 127.0.0.9", 1),
		"then to a host name":       strings.Replace(res, "127.0.0.9:5070;branch=z9hG4bK-b1;rport=5071;received=127.0.0.8", "ua.example.test:5070;branch=z9hG4bK-b1", 1),
	}
	for name, raw := range left {
		t.Run("left to sipgo: "+name, func(t *testing.T) {
			if c.relayResponse(&reader{}, []byte(raw)) {
				t.Fatalf("relayed:\n%s", pc.data)
			}
		})
	}
}

// Whatever relayInDialog relays, sipgo reads, with the same Call-ID and
// CSeq, and one more Via.
func FuzzRelayInDialog(f *testing.F) {
	r, c, pc := newRelay(f)
	own := r.flowToken(flowKey{transport: "UDP", addr: "127.0.0.9:5070"})
	route := "Route: <sip:" + own + "@127.0.0.1:5060;transport=udp;lr>\r\n"
	f.Add(bye(route, "Max-Forwards: 70\r\n"))
	f.Add(bye(route+"Route: <sip:10.0.0.7;lr>\r\n", "Content-Type: text/plain\r\n"))
	f.Add(strings.Replace(bye(route, ""), "BYE", "INFO", 2))
	alice := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 9), Port: 5070}
	f.Fuzz(func(t *testing.T, raw string) {
		if !c.relayInDialog(&reader{}, []byte(raw), alice) {
			return
		}
		in, err := parseSIP(raw)
		if err != nil {
			return // sipgo would not have read it either; nothing lost
		}
		out, err := parseSIP(string(pc.data))
		if err != nil {
			t.Fatalf("relayed what sipgo cannot read: %v\n%q\nfrom\n%q", err, pc.data, raw)
		}
		if out.CallID().Value() != in.CallID().Value() || out.CSeq().Value() != in.CSeq().Value() ||
			len(out.GetHeaders("Via")) != len(in.GetHeaders("Via"))+1 || string(out.Body()) != string(in.Body()) {
			t.Fatalf("relayed otherwise:\n%q\nfrom\n%q", pc.data, raw)
		}
	})
}

func TestBranchSetForgets(t *testing.T) {
	var s branchSet
	t0 := time.Unix(1_000_000, 0)
	s.add("127.0.0.9:5070", "z9hG4bK-1", t0)
	for _, tt := range []struct {
		after time.Duration
		want  bool
	}{{0, true}, {refusedTTL - time.Second, true}, {refusedTTL + time.Second, true}, {2*refusedTTL + time.Second, false}} {
		if got := s.has("127.0.0.9:5070", "z9hG4bK-1", t0.Add(tt.after)); got != tt.want {
			t.Errorf("after %v: %v, want %v", tt.after, got, tt.want)
		}
	}
	if s.has("127.0.0.9:5071", "z9hG4bK-1", t0) {
		t.Error("another source's branch is in the set")
	}
}

// BenchmarkRelay is a BYE inside a dialog relayed from the UDP socket,
// and bob's 200 to it relayed back: what sipgo did with two
// transactions and two parses before.
func BenchmarkRelay(b *testing.B) {
	r, c, pc := newRelay(b)
	rd := &reader{}
	alice := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 9), Port: 5070}
	own := r.flowToken(flowKey{transport: "UDP", addr: alice.String()})
	callee := r.flowToken(flowKey{transport: "UDP", addr: "127.0.0.2:5080"})
	req := []byte(bye("Route: <sip:"+callee+"@127.0.0.1:5060;transport=udp;lr>, <sip:"+own+"@127.0.0.1:5060;transport=udp;lr>\r\n", "Max-Forwards: 70\r\n"))
	b.Run("request", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !c.relayInDialog(rd, req, alice) {
				b.Fatal("not relayed")
			}
		}
	})
	head, _, _ := strings.Cut(string(pc.data), "\r\n\r\n")
	_, head, _ = strings.Cut(head, "\r\n")
	res := []byte("SIP/2.0 200 OK\r\n" + head + "\r\n\r\n")
	b.Run("response", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !c.relayResponse(rd, res) {
				b.Fatal("not relayed")
			}
		}
	})
}
