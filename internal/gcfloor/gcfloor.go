// Package gcfloor keeps the garbage collector from running often while
// the live heap is small and the program allocates fast.
//
// With GOGC alone the collector aims at a heap a fixed factor above the
// live one. A registrar's live heap is small (tens of MB) while it
// allocates fast under load (tens of MB/s, every request's garbage), so
// it collects several times a second, and each collection's mark phase
// slows the requests in flight: that was its p99 latency
// (docs/BENCHMARKS.md). The runtime has a ceiling (GOMEMLIMIT) but no
// floor; this is the floor. After each collection it sets GOGC so that
// the next goal is at least the floor, while the allocation rate would
// otherwise bring a collection within busyInterval; idle, or with a live
// heap large enough, GOGC is the percentage given.
//
// A program that goes idle makes little garbage, so nothing starts its
// next collection until the runtime forces one after two minutes, and
// until then it holds the last load's garbage, up to the goal: a
// registrar that has just registered 100,000 users at 5,000/s holds
// 125 MiB RSS, where 15 MB of its heap is live. So once the program has
// been idle for quietFor with much memory to spare, the floor collects
// and hands that memory to the OS: 48 MiB RSS then.
package gcfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"time"
)

const (
	// maxPercent bounds the GOGC this sets, whatever the floor asks.
	maxPercent = 10_000
	// heapMinimum is the runtime's smallest goal at GOGC=100; it scales
	// with GOGC, so a GOGC raised for a tiny live heap would otherwise set
	// a goal of heapMinimum×GOGC/100 far above the floor (400 MB at
	// 10,000%, seen right after start-up).
	heapMinimum = 4 << 20
	// busyInterval: a program whose allocations would bring collections
	// closer together than this at the given percentage gets the floor.
	busyInterval = 2 * time.Second
	// quietFor is how long a program stays idle before the floor hands
	// its spare memory back: longer than the lulls of a load that goes
	// on, such as the benchmark's turns between servers (6 s). quietTick
	// is how often it looks.
	quietFor  = 15 * time.Second
	quietTick = time.Second
	// idleGap: a program whose allocations would bring its next
	// collection no sooner than this at the percentage given is idle.
	idleGap = time.Minute
	// spareMin: less memory to spare than this is not worth a collection
	// to hand back.
	spareMin = 16 << 20
)

// Floor is a running floor; Stop ends it.
type Floor struct {
	floor   uint64
	percent int
	stopped atomic.Bool
	last    atomic.Int64 // the GOGC set last
	idle    atomic.Bool  // set by release for the collection it starts
	done    chan struct{}

	// Used by the finalizer goroutine only.
	samples    []metrics.Sample
	lastAt     time.Time
	lastAllocs uint64
}

// Start sets GOGC to percent and then, after each collection, raises it
// so that the next goal is at least floor bytes while the program
// allocates fast; it hands spare memory back once the program is idle.
func Start(floor uint64, percent int) *Floor {
	return start(floor, percent, quietFor, quietTick)
}

func start(floor uint64, percent int, quiet, tick time.Duration) *Floor {
	f := &Floor{floor: floor, percent: percent, samples: newSamples(), done: make(chan struct{})}
	f.last.Store(int64(percent))
	debug.SetGCPercent(percent)
	metrics.Read(f.samples)
	f.lastAt, f.lastAllocs = time.Now(), f.samples[1].Value.Uint64()
	f.arm()
	go f.release(quiet, tick)
	return f
}

func newSamples() []metrics.Sample {
	return []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/heap/allocs:bytes"}}
}

// Stop puts GOGC back to the percentage given and stops adjusting it.
func (f *Floor) Stop() {
	if f.stopped.Swap(true) {
		return
	}
	close(f.done)
	debug.SetGCPercent(f.percent)
}

// release looks every tick at how fast the program allocates. Once the
// program has been idle (Idle) for quiet with spareMin or more of its heap
// not live, it collects and hands the free memory to the OS; with that
// collection GOGC goes back to the percentage given (adjust).
func (f *Floor) release(quiet, tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	samples := append(newSamples(), metrics.Sample{Name: "/memory/classes/heap/objects:bytes"}, metrics.Sample{Name: "/memory/classes/heap/free:bytes"})
	metrics.Read(samples)
	allocs, last, since := samples[1].Value.Uint64(), time.Now(), time.Time{}
	for {
		select {
		case <-f.done:
			return
		case now := <-t.C:
			metrics.Read(samples)
			live := samples[0].Value.Uint64()
			rate := float64(samples[1].Value.Uint64()-allocs) / max(now.Sub(last).Seconds(), 1e-3)
			allocs, last = samples[1].Value.Uint64(), now
			switch {
			case !Idle(live, rate, f.percent):
				since = time.Time{}
			case since.IsZero():
				since = now
			case now.Sub(since) >= quiet && samples[2].Value.Uint64()+samples[3].Value.Uint64() >= live+spareMin:
				f.idle.Store(true)
				debug.FreeOSMemory()
				since = time.Time{}
			}
		}
	}
}

// Idle reports whether a program with live bytes live, allocating rate
// bytes a second, would take idleGap or more to its next collection at
// percent.
func Idle(live uint64, rate float64, percent int) bool {
	return rate*idleGap.Seconds() < float64(max(live, heapMinimum))*float64(percent)/100
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
	metrics.Read(f.samples)
	if f.samples[0].Value.Kind() != metrics.KindUint64 || f.samples[1].Value.Kind() != metrics.KindUint64 {
		return
	}
	now, allocs := time.Now(), f.samples[1].Value.Uint64()
	rate := float64(allocs-f.lastAllocs) / max(now.Sub(f.lastAt).Seconds(), 1e-3)
	f.lastAt, f.lastAllocs = now, allocs
	if f.idle.Swap(false) {
		// The collection release started: the program has been idle,
		// whatever it allocated before it went so.
		rate = 0
	}
	p := Percent(f.samples[0].Value.Uint64(), rate, f.floor, f.percent)
	if int64(p) != f.last.Load() && !f.stopped.Load() {
		debug.SetGCPercent(p)
		f.last.Store(int64(p))
	}
}

// Percent is the GOGC to set after a collection that left live bytes,
// with the program allocating rate bytes a second: percent, or enough
// more for a goal of floor bytes while the program is busy, that is,
// while at percent it would collect more often than every busyInterval.
func Percent(live uint64, rate float64, floor uint64, percent int) int {
	if live*uint64(100+percent) >= floor*100 {
		return percent
	}
	if rate <= 0 || float64(live)*float64(percent)/100/rate >= busyInterval.Seconds() {
		return percent
	}
	limit := min(maxPercent, floor*100/heapMinimum)
	if live == 0 {
		return int(limit)
	}
	return int(min(limit, (floor*100+live-1)/live-100))
}
