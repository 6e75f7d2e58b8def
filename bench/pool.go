package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"text/tabwriter"
	"time"
)

// One run's twenty pairs of slices at half leave a p99 ratio whose 90%
// interval often spans 1 on this machine. Pooling the pairs of several
// runs, each pair still two slices taken in the same seconds, narrows it
// without comparing one run's server with another run's.

// pooledHalf is one load test's latency at half over several runs.
type pooledHalf struct {
	Test                 string
	Runs, Pairs          int
	OursLower            int // pairs whose slice of ours had the lower p99
	OursP99, KamailioP99 time.Duration
	Ratio, Low, High     float64
}

// poolRuns pools each load test's pairs of slices at half over the
// reports, in the order the tests first appear. A run without the
// prober's times (before they were kept) adds nothing.
func poolRuns(reports []*Report) []pooledHalf {
	var (
		out       []pooledHalf
		ours, kam = map[string][][]time.Duration{}, map[string][][]time.Duration{}
	)
	for _, r := range reports {
		for _, o := range r.Loads {
			n := min(len(o.OursHalfProbes), len(o.KamailioHalfProbes))
			if n == 0 {
				continue
			}
			i := slices.IndexFunc(out, func(p pooledHalf) bool { return p.Test == o.Test })
			if i < 0 {
				i = len(out)
				out = append(out, pooledHalf{Test: o.Test})
			}
			out[i].Runs++
			ours[o.Test] = append(ours[o.Test], fromMicros(o.OursHalfProbes[:n])...)
			kam[o.Test] = append(kam[o.Test], fromMicros(o.KamailioHalfProbes[:n])...)
		}
	}
	for i := range out {
		p := &out[i]
		u, k := ours[p.Test], kam[p.Test]
		p.Pairs, p.OursLower = len(u), lowerPairs(u, k)
		var buf []time.Duration
		p.OursP99, p.KamailioP99 = pooledP99(u, &buf), pooledP99(k, &buf)
		p.Ratio = p99Ratio(u, k, &buf)
		p.Low, p.High = p99Interval(u, k, 1000)
	}
	return out
}

// toMicros keeps a server's probe times by slice, to the microsecond.
func toMicros(each [][]time.Duration) [][]int32 {
	out := make([][]int32, len(each))
	for i, s := range each {
		out[i] = make([]int32, len(s))
		for j, d := range s {
			out[i][j] = int32(d.Round(time.Microsecond) / time.Microsecond)
		}
	}
	return out
}

// fromMicros is toMicros undone, each slice sorted.
func fromMicros(us [][]int32) [][]time.Duration {
	out := make([][]time.Duration, len(us))
	for i, s := range us {
		out[i] = make([]time.Duration, len(s))
		for j, v := range s {
			out[i][j] = time.Duration(v) * time.Microsecond
		}
		slices.Sort(out[i])
	}
	return out
}

// readReports reads the JSON results of earlier runs.
func readReports(files []string) ([]*Report, error) {
	var rs []*Report
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		r := new(Report)
		if err := json.Unmarshal(b, r); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		rs = append(rs, r)
	}
	return rs, nil
}

func printPooled(w io.Writer, ps []pooledHalf) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "test\truns\tpairs of slices\tours p99 at ½ kam\tkamailio p99 at ½ kam\tp99 ratio (90% interval)\tpairs ours lower")
	for _, p := range ps {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%v\t%v\t%.2f (%.2f–%.2f)\t%d of %d\n", p.Test, p.Runs, p.Pairs, p.OursP99, p.KamailioP99, p.Ratio, p.Low, p.High, p.OursLower, p.Pairs)
	}
	tw.Flush()
}
