package gcfloor

import (
	"runtime"
	"runtime/debug"
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
