// Package gcfloor keeps the garbage collector from running often while
// the live heap is small.
//
// With GOGC alone the collector aims at a heap a fixed factor above the
// live one. A registrar's live heap is small (tens of MB) while it
// allocates fast under load (tens of MB/s, every request's garbage), so
// it collects several times a second, and each collection's mark phase
// slows the requests in flight: that was its p99 latency
// (docs/BENCHMARKS.md). The runtime has a ceiling (GOMEMLIMIT) but no
// floor; this is the floor: after each collection it sets GOGC so that
// the next goal is at least Min bytes, and back to the percentage given
// once the live heap is large enough for that to be the higher goal.
package gcfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// maxPercent bounds the GOGC this sets, whatever the floor asks.
const maxPercent = 10_000

// Floor is a running floor; Stop ends it.
type Floor struct {
	min     uint64
	percent int
	stopped atomic.Bool
	sample  []metrics.Sample
	last    atomic.Int64 // the GOGC set last
}

// Start sets GOGC to percent and then keeps the heap goal at least min
// bytes, from the first collection on.
func Start(min uint64, percent int) *Floor {
	f := &Floor{min: min, percent: percent, sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	f.last.Store(int64(percent))
	debug.SetGCPercent(percent)
	f.arm()
	return f
}

// Stop puts GOGC back to the percentage given and stops adjusting it.
func (f *Floor) Stop() {
	f.stopped.Store(true)
	debug.SetGCPercent(f.percent)
}

// Percent is the GOGC set after the latest collection.
func (f *Floor) Percent() int { return int(f.last.Load()) }

// arm sets a finalizer on a fresh object, which runs after the next
// collection that finds it unreachable: that is, once per cycle.
func (f *Floor) arm() {
	sentinel := new([16]byte)
	runtime.SetFinalizer(sentinel, func(*[16]byte) {
		if f.stopped.Load() {
			return
		}
		f.adjust()
		f.arm()
	})
}

func (f *Floor) adjust() {
	metrics.Read(f.sample)
	if f.sample[0].Value.Kind() != metrics.KindUint64 {
		return
	}
	p := Percent(f.sample[0].Value.Uint64(), f.min, f.percent)
	if int64(p) != f.last.Load() && !f.stopped.Load() {
		debug.SetGCPercent(p)
		f.last.Store(int64(p))
	}
}

// Percent is the GOGC that makes the goal after a collection that left
// live bytes at least floor: percent, or more while live is small.
func Percent(live, floor uint64, percent int) int {
	if live == 0 {
		return maxPercent
	}
	if live*uint64(100+percent) >= floor*100 {
		return percent
	}
	return int(min(maxPercent, (floor*100+live-1)/live-100))
}
