// Command bench measures the registrar against Kamailio 5.6 side by side,
// driven by sipp on loopback, and the phone's CPU per call. `make bench`
// runs it in full; `go test ./bench` runs a smoke version of a few
// seconds. Results are printed as a table and written as JSON.
//
//	go run ./bench -out bench-results.json
//	go run ./bench -pool run1.json run2.json   # latency at half, over runs
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"text/tabwriter"
	"time"
)

// plan says how hard and how long to push.
type plan struct {
	users     int           // distinct REGISTER users
	step      time.Duration // length of one load step
	startRate int           // first rate tried, per second
	maxRate   int           // never try above this
	refine    int           // bisection steps after the first failure
	bindings  int           // for the memory and restart measurement
	quiet     time.Duration // from the bindings' load to the second memory reading
	phoneCall time.Duration // length of the measured phone call
	fixedRate int           // if set, one step at this rate instead of the search
	keep      bool          // keep the working directory
	// halfSlices is how many slices of load each server gets at half
	// Kamailio's maximum, the two taking turns (harness.atHalf), and
	// halfSlice the length of each. Twenty, not ten as in the eighth
	// round: with ten, a calls test's 90% interval for the p99 ratio
	// spanned 0.75–2.10 (docs/BENCHMARKS.md, ninth round).
	halfSlices int
	halfSlice  time.Duration
	// retryFailed runs a failed step of the search once more before the
	// rate counts as failed.
	retryFailed bool
}

var fullPlan = plan{users: 10000, step: 5 * time.Second, startRate: 2500, maxRate: 160000, refine: 3, halfSlices: 20, halfSlice: 3 * time.Second, retryFailed: true, bindings: 100000, quiet: 20 * time.Second, phoneCall: 10 * time.Second}

// smokePlan checks that the harness works, in seconds: no figure from it
// means anything.
var smokePlan = plan{users: 200, step: time.Second, startRate: 200, maxRate: 400, refine: 0, halfSlices: 1, halfSlice: time.Second, retryFailed: true, bindings: 2000, quiet: time.Second, phoneCall: 2 * time.Second}

// Report is everything one run measured.
type Report struct {
	Date     string    `json:"date"`
	Host     string    `json:"host"`
	Kamailio string    `json:"kamailio"`
	Sipp     string    `json:"sipp"`
	Loads    []Outcome `json:"loads"`
	// Memory and restart with many persisted bindings (ours, bolt store):
	// RSS holding them once restarted; right after registering them, with
	// the load's garbage and answer cache not yet collected; and Quiet
	// after that, once the heap floor has handed the garbage back.
	Bindings          int     `json:"bindings"`
	RSSMiB            float64 `json:"rss_mib"`
	RSSAfterLoadMiB   float64 `json:"rss_after_load_mib"`
	RSSQuietMiB       float64 `json:"rss_quiet_mib"`
	Quiet             string  `json:"quiet"`
	KamailioRSSMiB    float64 `json:"kamailio_rss_mib"`
	RestartToServing  string  `json:"restart_to_serving"`
	PhoneCPUPerCall   float64 `json:"phone_cpu_percent_per_call"`
	PhoneCallMeasured string  `json:"phone_call_measured"`
}

// Outcome is one load test on both servers.
type Outcome struct {
	Test     string  `json:"test"`
	Ours     Maximum `json:"ours"`
	Kamailio Maximum `json:"kamailio"`
	Ratio    float64 `json:"ratio"`
	// Latency of each at half Kamailio's maximum rate, in slices taken
	// in turns: each server's slices pooled, every slice, and in how
	// many pairs of slices ours had the lower p99.
	OursAtHalf         *Step  `json:"ours_at_half_kamailio_max,omitempty"`
	KamailioAtHalf     *Step  `json:"kamailio_at_half_kamailio_max,omitempty"`
	OursHalfSlices     []Step `json:"ours_half_slices,omitempty"`
	KamailioHalfSlices []Step `json:"kamailio_half_slices,omitempty"`
	OursLowerSlices    int    `json:"ours_lower_slices"`
	// P99Ratio is ours' pooled p99 at half over Kamailio's; from P99Low
	// to P99High is its 90% interval under resampling the pairs of
	// slices (p99Interval): how far the minute's noise moves it.
	P99Ratio float64 `json:"p99_ratio_at_half"`
	P99Low   float64 `json:"p99_ratio_low"`
	P99High  float64 `json:"p99_ratio_high"`
	// The prober's times at half, by slice, to the microsecond (which is
	// all a p99 here keeps): what -pool pools over several runs.
	OursHalfProbes     [][]int32 `json:"ours_half_probes_us,omitempty"`
	KamailioHalfProbes [][]int32 `json:"kamailio_half_probes_us,omitempty"`
}

func main() {
	smoke := flag.Bool("smoke", false, "a few seconds of load, to check the harness")
	out := flag.String("out", "bench-results.json", "where to write the JSON results")
	only := flag.String("only", "", "run only the tests whose name contains this (load tests, bindings, phone)")
	rate := flag.Int("rate", 0, "instead of searching for the maximum, run the load tests once at this rate, and the slices at half of it")
	keep := flag.Bool("keep", false, "keep the working directory, with every server's and sipp's log")
	pool := flag.Bool("pool", false, "measure nothing: pool the latency at half over the result files named after the flags")
	flag.Parse()
	if *pool {
		rs, err := readReports(flag.Args())
		if err != nil {
			log.Fatal(err)
		}
		ps := poolRuns(rs)
		if len(ps) == 0 {
			// Results from before the tenth round keep no probe times.
			log.Fatalf("-pool: no probe times at half in %q", flag.Args())
		}
		printPooled(os.Stdout, ps)
		return
	}
	p := fullPlan
	if *smoke {
		p = smokePlan
	}
	p.fixedRate = *rate
	p.keep = *keep
	// The latency prober runs in this process: keep its own collections
	// rare, so that they do not show up in either server's figures. The
	// servers do not inherit it.
	debug.SetGCPercent(800)
	stopOnSignal()
	r, err := run(p, *only, log.New(os.Stderr, "bench: ", log.Ltime))
	if err != nil {
		log.Fatal(err)
	}
	printReport(os.Stdout, r)
	b, _ := json.MarshalIndent(r, "", "  ")
	if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
		log.Fatal(err)
	}
}

// run builds the binaries, then measures.
func run(p plan, only string, logger *log.Logger) (*Report, error) {
	dir, err := os.MkdirTemp("", "sipline-bench-")
	if err != nil {
		return nil, err
	}
	if p.keep {
		logger.Printf("working directory: %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	if err := build(root, dir, "./cmd/registrar", "./cmd/phone"); err != nil {
		return nil, err
	}
	h := &harness{plan: p, dir: dir, root: root, bin: dir, log: logger}
	restore := tuneSocketBuffers(logger)
	setRestore(restore)
	defer func() { setRestore(nil); restore() }()
	return h.all(only)
}

// build builds the packages of the repository at root into dir. The go
// command is tracked like the servers, so an interrupted run stops it too.
func build(root, dir string, pkgs ...string) error {
	cmd := exec.Command("go", append([]string{"build", "-o", dir + "/"}, pkgs...)...)
	cmd.Dir = root
	p, err := startProc("build", dir, cmd)
	if err != nil {
		return err
	}
	<-p.done
	if p.err != nil {
		return fmt.Errorf("build %v: %w\n%s", pkgs, p.err, p.tail())
	}
	return nil
}

// repoRoot is the module root: bench/ lives just below it.
func repoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("no go.mod above %s", wd)
}

// socketBuffer is the UDP receive buffer both servers get.
const socketBuffer = 4 << 20

// tuneSocketBuffers gives every new socket, ours and Kamailio's and
// sipp's, the same receive buffer, and returns what undoes it.
func tuneSocketBuffers(logger *log.Logger) func() {
	const path = "/proc/sys/net/core/rmem_default"
	old, err := os.ReadFile(path)
	if err != nil {
		return func() {}
	}
	if err := os.WriteFile(path, []byte(fmt.Sprint(socketBuffer)), 0o644); err != nil {
		logger.Printf("cannot set %s (%v): both servers keep the default buffer", path, err)
		return func() {}
	}
	return func() { _ = os.WriteFile(path, old, 0o644) }
}

func printReport(w *os.File, r *Report) {
	fmt.Fprintf(w, "\nbenchmark %s on %s; %s; %s\n", r.Date, r.Host, r.Kamailio, r.Sipp)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "test\tours max/s\tkamailio max/s\tratio\tours p50/p99 at max\tkamailio p50/p99 at max\tours p99 at ½ kam\tkamailio p99 at ½ kam\tp99 ratio (90% interval)\tslices ours lower\tCPU ms/1000 at ½ kam: ours\tkamailio")
	for _, o := range r.Loads {
		half := func(s *Step) string {
			if s == nil {
				return "-"
			}
			return s.P99.String()
		}
		cpu := func(s *Step) string {
			if s == nil {
				return "-"
			}
			return fmt.Sprintf("%.0f", s.CPUPerKms)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.2f\t%v / %v\t%v / %v\t%s\t%s\t%.2f (%.2f–%.2f)\t%d of %d\t%s\t%s\n", o.Test, o.Ours.Rate, o.Kamailio.Rate, o.Ratio,
			o.Ours.At.P50, o.Ours.At.P99, o.Kamailio.At.P50, o.Kamailio.At.P99, half(o.OursAtHalf), half(o.KamailioAtHalf),
			o.P99Ratio, o.P99Low, o.P99High, o.OursLowerSlices, len(o.OursHalfSlices), cpu(o.OursAtHalf), cpu(o.KamailioAtHalf))
	}
	tw.Flush()
	fmt.Fprintf(w, "%d bindings: ours %.1f MiB RSS after a restart, %.1f MiB %s after the load (%.1f MiB right after it; bolt store), Kamailio %.1f MiB PSS; restart to serving %s\n",
		r.Bindings, r.RSSMiB, r.RSSQuietMiB, r.Quiet, r.RSSAfterLoadMiB, r.KamailioRSSMiB, r.RestartToServing)
	fmt.Fprintf(w, "phone CPU per active call: %.2f%% of one core (%s)\n", r.PhoneCPUPerCall, r.PhoneCallMeasured)
}
