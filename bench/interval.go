package main

import (
	"math/rand/v2"
	"slices"
	"time"
)

// p99Interval says how far noise moves the ratio of two servers' pooled
// p99s, ours over Kamailio's, measured in slices taken in turns. It
// resamples the pairs of slices (ours[n] beside kam[n], each a slice's
// probe times) with replacement, pools each side's resampled slices, and
// returns the 5th and 95th percentiles of the ratio over rounds: a 90%
// interval by the bootstrap. Pairs, not single slices, are resampled,
// since the two slices of a pair ran next to each other and share that
// minute's noise. The seed is fixed, so a run's figures can be recomputed.
//
// With a single pair, or none, there is nothing to resample: both ends
// are the ratio itself.
func p99Interval(ours, kam [][]time.Duration, rounds int) (lo, hi float64) {
	n := min(len(ours), len(kam))
	if n < 2 {
		r := p99Ratio(ours[:n], kam[:n], nil)
		return r, r
	}
	rng := rand.New(rand.NewPCG(5, 99))
	ratios := make([]float64, rounds)
	pick := make([]int, n)
	var buf []time.Duration
	po, pk := make([][]time.Duration, n), make([][]time.Duration, n)
	for i := range ratios {
		for j := range pick {
			pick[j] = rng.IntN(n)
		}
		for j, p := range pick {
			po[j], pk[j] = ours[p], kam[p]
		}
		ratios[i] = p99Ratio(po, pk, &buf)
	}
	slices.Sort(ratios)
	return ratios[rounds*5/100], ratios[rounds*95/100-1]
}

// p99Ratio is the p99 of ours' slices pooled over that of kam's; buf is
// room to pool in, reused between calls.
func p99Ratio(ours, kam [][]time.Duration, buf *[]time.Duration) float64 {
	if buf == nil {
		buf = new([]time.Duration)
	}
	k := pooledP99(kam, buf)
	if k == 0 {
		return 0
	}
	return float64(pooledP99(ours, buf)) / float64(k)
}

func pooledP99(sl [][]time.Duration, buf *[]time.Duration) time.Duration {
	b := (*buf)[:0]
	for _, s := range sl {
		b = append(b, s...)
	}
	slices.Sort(b)
	*buf = b
	return percentile(b, 0.99)
}

// lowerPairs counts the pairs of slices, each slice's times sorted, in
// which ours' p99 was the lower.
func lowerPairs(ours, kam [][]time.Duration) int {
	n := 0
	for i := range min(len(ours), len(kam)) {
		if percentile(ours[i], 0.99) < percentile(kam[i], 0.99) {
			n++
		}
	}
	return n
}
