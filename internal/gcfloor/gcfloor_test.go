package gcfloor

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live, floor uint64
		percent     int
		want        int
	}{
		{live: 32 * mib, floor: 128 * mib, percent: 200, want: 300},   // goal 128 MiB, not 96
		{live: 10 * mib, floor: 128 * mib, percent: 200, want: 1180},  // 10 MiB × 12.8
		{live: 64 * mib, floor: 128 * mib, percent: 200, want: 200},   // 192 MiB is above the floor
		{live: 1, floor: 128 * mib, percent: 200, want: maxPercent},   // bounded
		{live: 0, floor: 128 * mib, percent: 200, want: maxPercent},   // nothing live yet
		{live: 50 * mib, floor: 100 * mib, percent: 100, want: 100},   // exactly at the floor
		{live: 50*mib - 1, floor: 100 * mib, percent: 100, want: 101}, // just under it
	} {
		if got := Percent(c.live, c.floor, c.percent); got != c.want {
			t.Errorf("Percent(%d, %d, %d) = %d, want %d", c.live, c.floor, c.percent, got, c.want)
		}
	}
}

// After a collection with a small live heap, the floor raises GOGC; once
// stopped, GOGC is the percentage given again.
func TestFloorFollowsCollections(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	f := Start(1<<30, 150)
	for range 3 {
		runtime.GC()
		runtime.Gosched()
	}
	// The finalizer runs on its own goroutine after the collection.
	for range 100 {
		if f.Percent() > 150 {
			break
		}
		runtime.GC()
	}
	if p := f.Percent(); p <= 150 {
		t.Fatalf("GOGC %d after collections with a small heap and a floor of 1 GiB, want above 150", p)
	}
	f.Stop()
	if p := debug.SetGCPercent(150); p != 150 {
		t.Fatalf("GOGC %d after Stop, want 150", p)
	}
}
