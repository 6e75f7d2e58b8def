package locationtest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/sipline/sipline/registrar/location"
)

// benchAORs is how many AORs the benchmarks spread their work over.
const benchAORs = 1000

// Benchmark measures the stores newStore returns, so that implementations
// can be compared:
//
//   - Update: REGISTER-like refreshes, each replacing one AOR's binding,
//     from 32 goroutines per CPU as a registrar has many requests in flight
//     (a store that groups commits needs concurrent writers to do so);
//   - Lookup: one AOR of two bindings, out of 1000.
//
// The Update writers each wait for their Update to return before the next,
// so a store that delays commits to group them does at most writers ÷
// (delay + commit) Updates a second here. A registrar has as many Updates
// in flight as arrive during one delay, so its throughput is not bound so.
func Benchmark(b *testing.B, newStore func(b *testing.B) location.Store) {
	aors := make([]string, benchAORs)
	bindings := make([][]location.Binding, benchAORs)
	for i := range aors {
		aors[i] = fmt.Sprintf("sip:user%d@example.com", i)
		bindings[i] = []location.Binding{binding(aors[i], i), binding(aors[i], i+benchAORs)}
	}
	open := func(b *testing.B) location.Store {
		s := newStore(b)
		b.Cleanup(func() { _ = s.Close() })
		return s
	}
	ctx := context.Background()

	b.Run("Update", func(b *testing.B) {
		s := open(b)
		var next atomic.Int64
		b.ReportAllocs()
		b.SetParallelism(32)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := int(next.Add(1) % benchAORs)
				if _, err := s.Update(ctx, aors[i], func(cur []location.Binding) ([]location.Binding, error) {
					return append(cur[:0], bindings[i][0]), nil
				}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})

	b.Run("Lookup", func(b *testing.B) {
		s := open(b)
		all := make(map[string][]location.Binding, len(aors))
		for i, aor := range aors {
			all[aor] = bindings[i]
		}
		fill(b, s, all)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := s.Lookup(ctx, aors[i%benchAORs]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
