package registrar_test

import (
	"testing"

	"github.com/sipline/sipline/registrar"
)

// BenchmarkHandleRegister measures the registrar's handling of REGISTER
// in process, from the raw message to the response, without sockets:
//
//   - challenge: a REGISTER without credentials, answered 401;
//   - digest: the whole exchange, 401 then an authenticated REGISTER
//     answered 200 (the client's digest computation included);
//   - open: a REGISTER answered 200 with auth off.
//
// Each is a refresh of one binding, the registrar's steady state; the
// store is the in-memory one.
func BenchmarkHandleRegister(b *testing.B) {
	const contact = "<sip:alice@10.0.0.5:5070>"
	b.Run("challenge", func(b *testing.B) {
		f := newFixture(b)
		b.ReportAllocs()
		for b.Loop() {
			if res := final(b, f.do(f.request(registerReq("alice", "alice", contact, ""), "10.0.0.5:5070"))); res.StatusCode != 401 {
				b.Fatalf("got %d", res.StatusCode)
			}
		}
	})
	b.Run("digest", func(b *testing.B) {
		f := newFixture(b)
		b.ReportAllocs()
		for b.Loop() {
			if res := f.register("alice", "alice", contact, "", "10.0.0.5:5070"); res.StatusCode != 200 {
				b.Fatalf("got %d %s", res.StatusCode, res.Reason)
			}
		}
	})
	b.Run("open", func(b *testing.B) {
		f := newFixture(b, registrar.WithoutAuth())
		b.ReportAllocs()
		for b.Loop() {
			if res := final(b, f.do(f.request(registerReq("alice", "alice", contact, ""), "10.0.0.5:5070"))); res.StatusCode != 200 {
				b.Fatalf("got %d", res.StatusCode)
			}
		}
	})
}
