package registrar

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sipline/sipline/registrar/location"
	"github.com/sipline/sipline/registrar/location/memstore"
)

// BenchmarkProxyInvite is a call's INVITE as the socket reader proxies
// it, from the datagram to the bytes written downstream (with the 100
// upstream), then the callee's 200 relayed upstream; auth is off, the
// digest has benchmarks of its own. The transactions stay in the table
// for their 5 s, as under load.
func BenchmarkProxyInvite(b *testing.B) {
	store := memstore.New()
	callee := "127.0.0.2:5080"
	_, err := store.Update(context.Background(), "sip:bob@127.0.0.1", func([]location.Binding) ([]location.Binding, error) {
		return []location.Binding{{AOR: "sip:bob@127.0.0.1", Contact: "sip:bob@" + callee, Expires: time.Now().Add(time.Hour),
			Transport: "UDP", Source: callee}}, nil
	})
	if err != nil {
		b.Fatal(err)
	}
	r, err := New(store, WithDomain("127.0.0.1"), WithoutAuth(), WithUsers(map[string]User{"bob": {Password: "bob-secret"}}),
		WithEndpoints(Endpoint{Transport: "UDP", Host: "127.0.0.1", Port: 5060, Local: "127.0.0.1:5060"}))
	if err != nil {
		b.Fatal(err)
	}
	pc := &capture{}
	c := r.newStatelessConn(pc)
	rd := &reader{}
	inv := []byte("INVITE sip:bob@127.0.0.1:5060 SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 127.0.0.9:5070;branch=z9hG4bK-100000000;rport\r\n" +
		"From: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>\r\n" +
		"Call-ID: bench-100000000\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.9:5070>\r\n" +
		"Max-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: 0\r\n\r\n")
	alice := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 9), Port: 5070}
	at := bytes.Index(inv, []byte("z9hG4bK-")) + 8
	cid := bytes.Index(inv, []byte("bench-")) + 6
	var n [10]byte
	seq := 0
	b.ReportAllocs()
	for b.Loop() {
		// A new transaction each time.
		seq++
		num := strconv.AppendInt(n[:0], int64(100_000_000+seq%100_000_000), 10)[1:]
		copy(inv[at:at+8], num)
		copy(inv[cid:cid+8], num)
		if !c.proxyInvite(rd, inv, alice) || !strings.HasPrefix(string(pc.data), "INVITE ") {
			b.Fatalf("not forwarded: %s", pc.data)
		}
		// The 200 is the forwarded INVITE's head under a status line:
		// the relay reads no more. Building it is two of the allocations.
		_, rest, _ := strings.Cut(string(pc.data), "\r\n")
		res := []byte("SIP/2.0 200 OK\r\n" + rest)
		if !c.txResponse(rd, res) || !strings.HasPrefix(string(pc.data), "SIP/2.0 200 OK") {
			b.Fatalf("not relayed: %s", pc.data)
		}
	}
}
