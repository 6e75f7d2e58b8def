package gcfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	const busy = 50 * mib // bytes a second: the registrar under load
	for _, c := range []struct {
		name    string
		live    uint64
		rate    float64
		floor   uint64
		percent int
		want    int
	}{
		{"busy: goal 128 MiB, not 96", 32 * mib, busy, 128 * mib, 200, 300},
		{"busy, smaller heap", 10 * mib, busy, 128 * mib, 200, 1180},
		{"a heap above the floor on its own", 64 * mib, busy, 128 * mib, 200, 200},
		{"bounded by the runtime's minimum goal: 4 MiB × 32", 1, busy, 128 * mib, 200, 3200},
		{"nothing live yet", 0, busy, 128 * mib, 200, 3200},
		{"bounded by maxPercent", 1, busy, 1 << 40, 200, maxPercent},
		{"exactly at the floor", 50 * mib, busy, 100 * mib, 100, 100},
		{"just under it", 50*mib - 1, busy, 100 * mib, 100, 101},
		{"idle", 32 * mib, 0, 128 * mib, 200, 200},
		{"slow: a collection every 6.4 s at 200%", 32 * mib, 10 * mib, 128 * mib, 200, 200},
		{"just busy: every 1.9 s at 200%", 32 * mib, 33.7 * mib, 128 * mib, 200, 300},
	} {
		if got := Percent(c.live, c.rate, c.floor, c.percent); got != c.want {
			t.Errorf("%s: Percent(%d, %.0f, %d, %d) = %d, want %d", c.name, c.live, c.rate, c.floor, c.percent, got, c.want)
		}
	}
}

var sink [][]byte

// A program that allocates fast gets GOGC raised after its collections,
// and the percentage given back once it goes quiet; once stopped, GOGC
// is the percentage given again.
func TestFloorFollowsCollections(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	f := Start(1<<30, 150)
	defer f.Stop()
	for i := 0; i < 200 && f.Percent() <= 150; i++ {
		// A few MB of garbage in well under a millisecond or two: far
		// above what 150% of a small heap allows for two seconds.
		for range 64 {
			sink = append(sink[:0], make([]byte, 64<<10))
		}
		runtime.GC()
		runtime.Gosched()
	}
	if p := f.Percent(); p <= 150 {
		t.Fatalf("GOGC %d after collections of a small, busy heap with a floor of 1 GiB, want above 150", p)
	}
	sink = nil
	for i := 0; i < 20 && f.Percent() != 150; i++ {
		time.Sleep(50 * time.Millisecond)
		runtime.GC()
		runtime.Gosched()
	}
	if p := f.Percent(); p != 150 {
		t.Fatalf("GOGC %d after collections of an idle program, want 150", p)
	}
	f.Stop()
	if p := debug.SetGCPercent(150); p != 150 {
		t.Fatalf("GOGC %d after Stop, want 150", p)
	}
}

// A program that goes idle with much of its heap garbage gets it
// collected and the memory handed back, without waiting for the runtime's
// forced collection two minutes on: with its floor raised, and at the
// percentage given.
func TestReleaseWhenIdle(t *testing.T) {
	for _, c := range []struct {
		name    string
		floor   uint64
		percent int
		raise   bool
	}{
		{"floor raised", 1 << 30, 150, true},
		{"at the percentage given", 0, 10_000, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			defer debug.SetGCPercent(debug.SetGCPercent(100))
			f := start(c.floor, c.percent, 300*time.Millisecond, 50*time.Millisecond)
			defer f.Stop()
			for i := 0; c.raise && i < 200 && f.Percent() <= c.percent; i++ {
				for range 64 {
					sink = append(sink[:0], make([]byte, 64<<10))
				}
				runtime.GC()
				runtime.Gosched()
			}
			if p := f.Percent(); c.raise && p <= c.percent {
				t.Fatalf("GOGC %d after collections of a small, busy heap with a floor of 1 GiB, want above %d", p, c.percent)
			}
			// 64 MiB of garbage, far under the goal: no collection of
			// the runtime's own comes for it.
			for range 1024 {
				sink = append(sink[:0], make([]byte, 64<<10))
			}
			sink = nil
			s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}, {Name: "/memory/classes/heap/released:bytes"}}
			metrics.Read(s)
			cycles, released := s[0].Value.Uint64(), s[1].Value.Uint64()
			deadline := time.Now().Add(5 * time.Second)
			for metrics.Read(s); s[1].Value.Uint64()-released < 32<<20 && time.Now().Before(deadline); metrics.Read(s) {
				time.Sleep(20 * time.Millisecond)
			}
			if got := s[1].Value.Uint64() - released; got < 32<<20 {
				t.Fatalf("%d MiB handed back to the OS in 5 s idle, want at least 32", got>>20)
			}
			if s[0].Value.Uint64() == cycles {
				t.Error("no collection while idle")
			}
			for p := f.Percent(); p != c.percent && time.Now().Before(deadline); p = f.Percent() {
				time.Sleep(20 * time.Millisecond)
			}
			if p := f.Percent(); p != c.percent {
				t.Errorf("GOGC %d after the collection of an idle program, want %d", p, c.percent)
			}
		})
	}
}

func TestIdle(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		name    string
		live    uint64
		rate    float64
		percent int
		want    bool
	}{
		{"no allocation", 30 * mib, 0, 200, true},
		{"re-registrations of 100,000 bindings: 100 KB/s", 30 * mib, 100e3, 200, true},
		{"just idle: the next collection in 61 s", 30 * mib, 60 * mib / 61.0, 200, true},
		{"just busy: in 59 s", 30 * mib, 60 * mib / 59.0, 200, false},
		{"under load: 15 MB/s", 30 * mib, 15e6, 200, false},
		{"a tiny heap counts as the runtime's minimum: 4 MiB", 0, 50e3, 100, true},
		{"and its own rate", 0, 80e3, 100, false},
	} {
		if got := Idle(c.live, c.rate, c.percent); got != c.want {
			t.Errorf("%s: Idle(%d, %.0f, %d) = %v, want %v", c.name, c.live, c.rate, c.percent, got, c.want)
		}
	}
}
