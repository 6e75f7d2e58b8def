package main

import (
	"testing"
	"time"
)

// slicesOf makes n slices of 1000 probe times each, 985 of them from
// base up and the worst 15 at tail: a slice's p99 is tail.
func slicesOf(n int, base, tail time.Duration) [][]time.Duration {
	out := make([][]time.Duration, n)
	for i := range out {
		s := make([]time.Duration, 1000)
		for j := range s {
			s[j] = base + time.Duration(j)*time.Microsecond/10
			if j >= 985 {
				s[j] = tail
			}
		}
		out[i] = s
	}
	return out
}

func TestP99Interval(t *testing.T) {
	ms := time.Millisecond
	// Ours clearly lower in every slice: the whole interval below 1.
	lo, hi := p99Interval(slicesOf(10, 1*ms, 5*ms), slicesOf(10, 2*ms, 8*ms), 1000)
	if !(lo <= hi && hi < 1) {
		t.Errorf("ours lower everywhere: interval %.2f–%.2f, want it below 1", lo, hi)
	}

	// The same servers, but two of ours' ten slices met a noisy minute
	// (every probe of them slow): the pooled ratio is over 1, and the
	// interval reaches below 1, since resampling often leaves those
	// slices out.
	ours := slicesOf(10, 1*ms, 5*ms)
	ours[3], ours[7] = slicesOf(1, 20*ms, 30*ms)[0], slicesOf(1, 20*ms, 30*ms)[0]
	kam := slicesOf(10, 2*ms, 8*ms)
	if r := p99Ratio(ours, kam, nil); r <= 1 {
		t.Fatalf("pooled ratio %.2f, want over 1", r)
	}
	lo, hi = p99Interval(ours, kam, 1000)
	if !(lo < 1 && hi > 1) {
		t.Errorf("two noisy slices of ours: interval %.2f–%.2f, want it across 1", lo, hi)
	}
	if lo2, hi2 := p99Interval(ours, kam, 1000); lo2 != lo || hi2 != hi {
		t.Errorf("not repeatable: %.3f–%.3f then %.3f–%.3f", lo, hi, lo2, hi2)
	}

	// One pair: both ends are its ratio.
	lo, hi = p99Interval(slicesOf(1, 1*ms, 4*ms), slicesOf(1, 1*ms, 2*ms), 1000)
	if lo != 2 || hi != 2 {
		t.Errorf("one pair: %.2f–%.2f, want 2–2", lo, hi)
	}
}
