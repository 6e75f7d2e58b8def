package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestPoolRuns(t *testing.T) {
	ms := time.Millisecond
	// Run one: ours lower in both pairs. Run two: Kamailio lower in all
	// three, and by more. A third report from before the probes were kept.
	one := &Report{Loads: []Outcome{{Test: "REGISTER",
		OursHalfProbes:     toMicros(slicesOf(2, 1*ms, 3*ms)),
		KamailioHalfProbes: toMicros(slicesOf(2, 1*ms, 4*ms))}}}
	two := &Report{Loads: []Outcome{{Test: "REGISTER",
		OursHalfProbes:     toMicros(slicesOf(3, 1*ms, 9*ms)),
		KamailioHalfProbes: toMicros(slicesOf(3, 1*ms, 6*ms))}}}
	old := &Report{Loads: []Outcome{{Test: "REGISTER", P99Ratio: 0.5}}}

	// Through the files, as -pool reads them.
	dir := t.TempDir()
	var files []string
	for i, r := range []*Report{one, old, two} {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, string(rune('a'+i))+".json")
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	rs, err := readReports(files)
	if err != nil {
		t.Fatal(err)
	}
	ps := poolRuns(rs)
	if len(ps) != 1 {
		t.Fatalf("pooled %d tests, want 1: %+v", len(ps), ps)
	}
	p := ps[0]
	if p.Runs != 2 || p.Pairs != 5 || p.OursLower != 2 {
		t.Errorf("runs %d, pairs %d, ours lower %d: want 2, 5, 2", p.Runs, p.Pairs, p.OursLower)
	}
	// 15 of each slice's 1000 times are its tail. Pooled, the p99 of
	// 5000 times is the 51st worst: past run two's 45 tail times, into
	// run one's. Either run alone would say 0.75 or 1.50.
	if p.OursP99 != 3*ms || p.KamailioP99 != 4*ms || p.Ratio != 0.75 {
		t.Errorf("p99 %v against %v, ratio %.2f: want 3ms against 4ms, 0.75", p.OursP99, p.KamailioP99, p.Ratio)
	}
	if !(p.Low <= p.Ratio && p.Ratio <= p.High) || p.Low == p.High {
		t.Errorf("interval %.2f–%.2f around %.2f", p.Low, p.High, p.Ratio)
	}

	// The microseconds keep the times as percentile reports them.
	s := slicesOf(1, 1*ms, 3*ms)
	s[0][0] = 1234567 * time.Nanosecond
	got := fromMicros(toMicros(s))[0]
	if !slices.Contains(got, 1235*time.Microsecond) || !slices.IsSorted(got) || percentile(got, 0.99) != percentile(s[0], 0.99) {
		t.Errorf("round trip: %v…, p99 %v against %v", got[:3], percentile(got, 0.99), percentile(s[0], 0.99))
	}

	if _, err := readReports([]string{filepath.Join(dir, "none.json")}); err == nil {
		t.Error("a missing file read without error")
	}
}
