package main

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"log"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sipline/sipline/internal/procgroup"
)

type harness struct {
	plan plan
	dir  string // scratch
	root string // the repository
	bin  string // our binaries
	log  *log.Logger
	seq  int
}

// scratch returns a new directory under h.dir.
func (h *harness) scratch(name string) string {
	h.seq++
	d := filepath.Join(h.dir, fmt.Sprintf("%02d-%s", h.seq, name))
	if err := os.MkdirAll(d, 0o755); err != nil {
		h.log.Fatal(err)
	}
	return d
}

// loadTest is one row of the comparison.
type loadTest struct {
	name     string
	scenario string // in bench/sipp
	auth     bool
	call     bool // a call load: needs a registered callee
}

var loadTests = []loadTest{
	{"REGISTER with MD5 digest", "register_auth.xml", true, false},
	{"REGISTER without auth", "register_open.xml", false, false},
	{"calls with proxy auth", "call_auth.xml", true, true},
	{"calls without auth", "call_open.xml", false, true},
}

func (h *harness) all(only string) (*Report, error) {
	r := &Report{Date: time.Now().UTC().Format(time.RFC3339), Kamailio: version("kamailio", "-v"), Sipp: version("sipp", "-v")}
	r.Host, _ = os.Hostname()
	users, err := h.usersFile(h.plan.users)
	if err != nil {
		return nil, err
	}
	for _, lt := range loadTests {
		if only != "" && !strings.Contains(lt.name, only) {
			continue
		}
		o := Outcome{Test: lt.name}
		kam, ours, err := h.maxima(lt, users)
		if err != nil {
			return nil, err
		}
		if err := h.evenUp(lt, users, &kam, &ours); err != nil {
			return nil, err
		}
		o.Kamailio, o.Ours = kam, ours
		if kam.Rate > 0 {
			o.Ratio = ours.Rate / kam.Rate
		}
		half := int(kam.Rate / 2)
		if h.plan.fixedRate > 0 {
			// Asked for: the slices run even when a server failed its one
			// step, as either does now and then on this machine.
			half = h.plan.fixedRate / 2
		}
		if half > 0 {
			if err := h.atHalf(lt, users, half, &o); err != nil {
				return nil, err
			}
		}
		h.log.Printf("%s: ours %.0f/s, Kamailio %.0f/s, ratio %.2f", lt.name, ours.Rate, kam.Rate, o.Ratio)
		r.Loads = append(r.Loads, o)
	}
	if only == "" || strings.Contains("bindings", only) {
		if err := h.bindings(r); err != nil {
			return nil, err
		}
	}
	if only == "" || strings.Contains("phone", only) {
		if err := h.phoneCPU(r); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func version(cmd, flag string) string {
	out, _ := exec.Command(cmd, flag).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(line)
}

// usersFile writes n users for sipp's -inf: the name, then the
// credentials as an [authentication] keyword.
func (h *harness) usersFile(n int) (string, error) {
	path := filepath.Join(h.dir, fmt.Sprintf("users-%d.csv", n))
	var b strings.Builder
	b.WriteString("SEQUENTIAL\n")
	for i := range n {
		fmt.Fprintf(&b, "u%[1]d;[authentication username=u%[1]d password=u%[1]d-secret]\n", i)
	}
	return path, os.WriteFile(path, []byte(b.String()), 0o600)
}

// Maximum is the highest rate a server sustained: under 1% failures, and
// at least 90% of the rate asked for.
type Maximum struct {
	Rate  float64 `json:"rate"`
	At    Step    `json:"at"`
	Steps []Step  `json:"steps"`
}

// Step is one sipp run at one rate.
type Step struct {
	Target int     `json:"target"`
	Rate   float64 `json:"rate"` // successes per second of the nominal length
	// Nominal is how long the step should last at Target; LastOK when
	// the last call succeeded, from sipp's start; Wall how long sipp ran,
	// waiting out the calls that failed included.
	Nominal time.Duration `json:"nominal"`
	LastOK  time.Duration `json:"last_ok"`
	Wall    time.Duration `json:"wall"`
	OK      int           `json:"ok"`
	Failed  int           `json:"failed"`
	// Latency: from our prober (Probes exchanges or calls, of which
	// ProbesFailed failed), and sipp's own for calls (in its ticks of
	// about 4 ms, from the first INVITE to the 200).
	P50          time.Duration `json:"p50"`
	P99          time.Duration `json:"p99"`
	Probes       int           `json:"probes,omitempty"`
	ProbesFailed int           `json:"probes_failed,omitempty"`
	SippP50      time.Duration `json:"sipp_p50,omitempty"`
	SippP99      time.Duration `json:"sipp_p99,omitempty"`
	// Dropped is how many datagrams the kernel dropped at the server's
	// socket, its receive buffer full (socketDrops).
	Dropped int `json:"dropped_at_socket,omitempty"`
	// SippDropped is the same at sipp's socket, read every 100 ms while
	// sipp ran (so at least that many): sipp fell behind and lost
	// answers, which it counts as timeouts when its retransmissions'
	// answers are lost too.
	SippDropped int `json:"dropped_at_sipp_socket,omitempty"`
	// CPUPerKms is the server's CPU time (all its processes) per 1000
	// successful calls, sipp's and the prober's, in ms: what it costs,
	// whoever else limits the rate.
	CPUPerKms float64 `json:"cpu_ms_per_1000"`
	// SleepsPerK is how many times the server's threads went to sleep
	// (voluntary context switches) per 1000 of the same. Each sleep is a
	// wakeup to wait for, for a core when other processes hold them
	// (docs/BENCHMARKS.md, eleventh round).
	SleepsPerK float64 `json:"sleeps_per_1000"`
}

// setUsage sets CPUPerKms and SleepsPerK from what the server spent over
// the step: 10 ms a tick, over thousands of calls served, sipp's and the
// prober's.
func (s *Step) setUsage(u usage) {
	if served := s.OK + s.Probes - s.ProbesFailed; served > 0 {
		s.CPUPerKms = float64(u.ticks) * 10 / float64(served) * 1000
		s.SleepsPerK = float64(u.sleeps) / float64(served) * 1000
	}
}

// sippP99s reads ", sipp's p99 …" for steps under call load, else "".
func sippP99s(steps ...*Step) string {
	var s []string
	for _, st := range steps {
		if st.SippP99 > 0 {
			s = append(s, st.SippP99.String())
		}
	}
	if len(s) == 0 {
		return ""
	}
	return ", sipp's p99 " + strings.Join(s, ", ")
}

// medianP99 is the step with the median p99 (the higher of the middle
// two for an even count).
func medianP99(steps []Step) *Step {
	s := slices.Clone(steps)
	slices.SortFunc(s, func(a, b Step) int { return cmp.Compare(a.P99, b.P99) })
	return &s[len(s)/2]
}

// sustained: under 1% failed, and the server kept up with the rate: the
// last success came at most 20% (or 1 s) after the step's nominal end.
func (s Step) sustained() bool {
	total := s.OK + s.Failed
	late := s.LastOK - s.Nominal
	return total > 0 && float64(s.Failed) < 0.01*float64(total) && (late <= s.Nominal/5 || late <= time.Second)
}

// maxima finds each server's highest sustained rate: it doubles the
// rate until a step fails, then halves the gap between the last good and
// the failed rate, a few times. Every step runs on a fresh server, and
// the two searches take turns, a step of Kamailio's and then one of
// ours: on this shared machine the load from other tenants drifts from
// one minute to the next, and each server should meet the same drift.
func (h *harness) maxima(lt loadTest, users string) (kam, ours Maximum, err error) {
	searches := []*search{{who: "kamailio", plan: h.plan}, {who: "ours", plan: h.plan}}
	for ties := 0; ; ties++ {
		if err := h.turns(lt, users, searches); err != nil {
			return kam, ours, err
		}
		if ties == 2 || !splitTie(searches[0], searches[1]) {
			break
		}
		h.log.Printf("  both sustained %d/s and failed %d/s: both once more between", searches[0].good, searches[0].bad)
	}
	return searches[0].m, searches[1].m, nil
}

// turns runs the searches' steps by turns until every search is done.
func (h *harness) turns(lt loadTest, users string, searches []*search) error {
	for more := true; more; {
		more = false
		for _, sr := range searches {
			rate, ok := sr.next()
			if !ok {
				continue
			}
			more = true
			st, err := h.once(lt, sr.who, users, rate, h.plan.step)
			if err != nil {
				return err
			}
			h.logStep(sr.who, lt, rate, st)
			if !sr.record(*st) && sr.retrying {
				h.log.Printf("  %s at %d/s failed: once more", sr.who, rate)
			}
		}
	}
	return nil
}

// splitTie reopens two searches that ended at the same rate, both having
// failed the same rate above it, for one more step between the two. The
// ratio of their maxima would read 1.00 whatever the failed rate showed:
// in the run of 18:55, REGISTER with auth, ours failed 12,500/s with 1.6%
// and 1.8% of its REGISTERs failed, Kamailio with 13% and 11%, and both
// ended at 11,250/s.
func splitTie(a, b *search) bool {
	if a.good != b.good || a.bad != b.bad || a.bad == 0 || a.bad-a.good < a.good/20 {
		return false
	}
	for _, s := range []*search{a, b} {
		s.done, s.rate = false, (s.good+s.bad)/2
	}
	return true
}

func (h *harness) logStep(who string, lt loadTest, rate int, st *Step) {
	h.log.Printf("  %s %s at %d/s: %.0f/s, %d ok, %d failed%s, p50 %v, p99 %v (%d probes, %d failed)%s, per 1000 %.0f ms CPU and %.0f sleeps",
		who, lt.name, rate, st.Rate, st.OK, st.Failed, dropped(st), st.P50, st.P99, st.Probes, st.ProbesFailed, sippP99s(st), st.CPUPerKms, st.SleepsPerK)
}

// dropped reads " (n dropped at its socket, m at sipp's)" for a step
// where either socket overflowed, else "".
func dropped(st *Step) string {
	if st.Dropped == 0 && st.SippDropped == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d dropped at its socket, %d at sipp's)", st.Dropped, st.SippDropped)
}

// probesFailed says how many of the prober's exchanges or calls failed,
// each counted as probeTimeout, when any did.
func probesFailed(st *Step) string {
	if st.ProbesFailed == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d of the prober's %d failed)", st.ProbesFailed, st.Probes)
}

// evenUp gives the server whose search ended lower two more steps at
// the other's maximum rate, and that rate if one of them is sustained.
// A noisy minute on this machine can fail one rate twice in a row, and
// that search ends there, while the other runs on into a quieter minute
// (docs/BENCHMARKS.md); two failed steps at the higher rate are the
// same proof of failing as in the search.
func (h *harness) evenUp(lt loadTest, users string, kam, ours *Maximum) error {
	lo, who, hi := ours, "ours", kam
	if kam.Rate < ours.Rate {
		lo, who, hi = kam, "kamailio", ours
	}
	if h.plan.fixedRate > 0 || lo.Rate >= hi.Rate {
		return nil
	}
	h.log.Printf("  %s ended lower, at %.0f/s: two more steps at %d/s", who, lo.Rate, hi.At.Target)
	return lo.evenUp(hi.At.Target, func(rate int) (*Step, error) {
		st, err := h.once(lt, who, users, rate, h.plan.step)
		if err == nil {
			h.logStep(who, lt, rate, st)
		}
		return st, err
	})
}

// evenUp runs up to two steps at rate, and takes the first sustained.
func (m *Maximum) evenUp(rate int, step func(rate int) (*Step, error)) error {
	for range 2 {
		st, err := step(rate)
		if err != nil {
			return err
		}
		m.Steps = append(m.Steps, *st)
		if st.sustained() {
			if st.Rate > m.Rate {
				m.Rate, m.At = st.Rate, *st
			}
			return nil
		}
	}
	return nil
}

// search is one server's search for its maximum rate, one step at a
// time: next says what to run, record what came of it.
type search struct {
	who  string
	plan plan
	m    Maximum

	good, bad int // the highest rate sustained and the lowest failed, 0 for none yet
	rate      int // the rate to run next; 0 before the first
	retrying  bool
	refined   int
	done      bool
}

// next is the rate of the next step, or false when the search is over.
func (s *search) next() (int, bool) {
	if s.done {
		return 0, false
	}
	if s.rate == 0 {
		s.rate = s.plan.startRate
	}
	if s.plan.fixedRate > 0 {
		s.rate = s.plan.fixedRate
	}
	return s.rate, true
}

// record takes the outcome of the step at the rate next gave, and
// reports whether it was sustained. A rate fails when two steps at it
// fail (retrying between them): on this shared machine a noisy moment
// fails one step at a rate either server sustains a minute later, and
// the search would stop there.
func (s *search) record(st Step) bool {
	s.m.Steps = append(s.m.Steps, st)
	ok := st.sustained()
	if ok && st.Rate > s.m.Rate {
		s.m.Rate, s.m.At = st.Rate, st
	}
	switch {
	case s.plan.fixedRate > 0:
		s.done = true
		return ok
	case !ok && !s.retrying && s.plan.retryFailed:
		s.retrying = true
		return false
	}
	s.retrying = false
	if ok {
		s.good = s.rate
	} else {
		s.bad = s.rate
	}
	switch {
	case s.bad == 0 && s.rate*2 <= s.plan.maxRate:
		s.rate *= 2
	case s.bad == 0 || s.refined >= s.plan.refine || s.bad-s.good < s.good/20:
		s.done = true
	default:
		s.refined++
		s.rate = (s.good + s.bad) / 2
	}
	return ok
}

// probeEvery is how often the prober registers during a REGISTER step: a
// 5 s step gives 2,500 exchanges, so the p99 is not a handful of them.
// callProbeEvery is how often it places a call during a call step: 100
// calls/s, under a tenth of the load at half Kamailio's maximum, and 1,000
// calls in a 10 s round.
const probeEvery, callProbeEvery = 2 * time.Millisecond, 10 * time.Millisecond

// once runs one load step of the given length against a fresh server.
func (h *harness) once(lt loadTest, who, users string, rate int, length time.Duration) (*Step, error) {
	l, err := h.ready(lt, who, users)
	if err != nil {
		return nil, err
	}
	defer l.stop()
	s, _, err := h.step(l, lt, rate, length)
	return s, err
}

// loaded is a server ready for the steps of one load test: for calls,
// with the callee registered; extra is the test's sipp arguments.
//
// sippPort and probePort are the ports that its load and its prober send
// from, kept from one step to the next (atHalf's slices) as phones keep
// theirs between registrations. Each slice on a new port, every user
// gained a binding a slice, and by the last of twenty slices both servers
// were answering REGISTERs for AORs of many bindings: ours drops the
// oldest past its cap of ten, and Kamailio kept them all.
type loaded struct {
	srv                 *server
	callee              *proc
	extra               []string
	sippPort, probePort int
}

func (h *harness) ready(lt loadTest, who, users string) (*loaded, error) {
	srv, err := h.start(who, lt.auth, "memory", h.scratch(who), h.plan.users)
	if err != nil {
		return nil, err
	}
	l := &loaded{srv: srv, extra: []string{"-inf", users}}
	if lt.call {
		if l.callee, err = h.callee(srv); err != nil {
			srv.stop()
			return nil, err
		}
		l.extra = []string{"-s", "alice", "-au", "alice", "-ap", "alice-secret", "-key", "callee", "bob"}
	}
	return l, nil
}

func (l *loaded) stop() {
	if l.callee != nil {
		l.callee.stop()
	}
	l.srv.stop()
}

// step runs sipp at rate for length against l, with the prober beside
// it, and returns the step and the prober's times, sorted.
func (h *harness) step(l *loaded, lt loadTest, rate int, length time.Duration) (*Step, []time.Duration, error) {
	srv, who := l.srv, l.srv.who
	calls := int(float64(rate) * length.Seconds())
	used := treeUsage(srv.cmd.Process.Pid)
	every := probeEvery
	if lt.call {
		every = callProbeEvery
	}
	drops := socketDrops(srv.port)
	pr := startProber(srv.addr, l.probePort, lt.auth, lt.call, h.plan.users, every)
	s, port, err := h.sipp(srv, lt.scenario, rate, calls, l.sippPort, l.extra...)
	rtts, failed, perr := pr.finish()
	l.sippPort, l.probePort = port, pr.port
	if err == nil {
		s.Dropped = socketDrops(srv.port) - drops
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s at %d/s: %w\n%s", who, lt.name, rate, err, srv.tail())
	}
	if perr != nil {
		return nil, nil, fmt.Errorf("%s: latency prober: %w", who, perr)
	}
	slices.Sort(rtts)
	if lt.call {
		s.SippP50, s.SippP99 = s.P50, s.P99
	}
	s.P50, s.P99, s.Probes, s.ProbesFailed = percentile(rtts, 0.50), percentile(rtts, 0.99), len(rtts), failed
	if !srv.alive() {
		return nil, nil, fmt.Errorf("%s died under %s at %d/s:\n%s", who, lt.name, rate, srv.tail())
	}
	s.setUsage(treeUsage(srv.cmd.Process.Pid).sub(used))
	return s, rtts, nil
}

// atHalf measures both servers' latency at rate, half Kamailio's
// maximum. Each server is started once, and the two take turns in short
// slices of load: Kamailio, ours, ours, Kamailio, Kamailio, ours… On
// this machine other tenants move a 10 s round's p99 between 1.4 and
// 35 ms from one minute to the next (docs/BENCHMARKS.md); slices of a
// few seconds in that order put both servers through the same moments.
// Each server's figure pools the prober's times from all its slices; a
// slice pairs with the other server's next to it.
func (h *harness) atHalf(lt loadTest, users string, rate int, o *Outcome) error {
	var sides [2]struct {
		l      *loaded
		used   usage
		each   [][]time.Duration // the prober's times, by slice
		steps  []Step
		pooled Step
	}
	for i, who := range []string{"kamailio", "ours"} {
		l, err := h.ready(lt, who, users)
		if err != nil {
			return err
		}
		defer l.stop()
		sides[i].l, sides[i].used = l, treeUsage(l.srv.cmd.Process.Pid)
	}
	for n := range 2 * max(1, h.plan.halfSlices) {
		i := n % 2 // Kamailio first in even pairs, ours first in odd
		if n/2%2 == 1 {
			i = 1 - i
		}
		sd := &sides[i]
		s, rtts, err := h.step(sd.l, lt, rate, h.plan.halfSlice)
		if err != nil {
			return err
		}
		h.log.Printf("  %s slice %d at %d/s: p99 %v%s, %d ok, %d failed%s%s", sd.l.srv.who, len(sd.steps)+1, rate, s.P99, sippP99s(s), s.OK, s.Failed, dropped(s), probesFailed(s))
		sd.steps, sd.each = append(sd.steps, *s), append(sd.each, rtts)
		p := &sd.pooled
		p.OK, p.Failed, p.Nominal, p.Probes, p.ProbesFailed = p.OK+s.OK, p.Failed+s.Failed, p.Nominal+s.Nominal, p.Probes+s.Probes, p.ProbesFailed+s.ProbesFailed
		p.Dropped, p.SippDropped = p.Dropped+s.Dropped, p.SippDropped+s.SippDropped
	}
	for i := range sides {
		sd := &sides[i]
		p := &sd.pooled
		all := slices.Concat(sd.each...)
		slices.Sort(all)
		p.Target, p.Rate, p.P50, p.P99 = rate, float64(p.OK)/p.Nominal.Seconds(), percentile(all, 0.50), percentile(all, 0.99)
		// The whole time, slices of the other server included: what a
		// server does after its load (timers, collections) is its cost.
		p.setUsage(treeUsage(sd.l.srv.cmd.Process.Pid).sub(sd.used))
	}
	k, u := &sides[0], &sides[1]
	o.KamailioAtHalf, o.OursAtHalf, o.KamailioHalfSlices, o.OursHalfSlices = &k.pooled, &u.pooled, k.steps, u.steps
	o.OursLowerSlices = lowerPairs(u.each, k.each)
	o.OursHalfProbes, o.KamailioHalfProbes = toMicros(u.each), toMicros(k.each)
	o.P99Ratio = p99Ratio(u.each, k.each, nil)
	o.P99Low, o.P99High = p99Interval(u.each, k.each, 1000)
	h.log.Printf("  at %d/s, %d slices of %v each: p99 ours %v, Kamailio %v, ratio %.2f (90%% interval %.2f–%.2f; slices' median %v, %v; ours lower in %d of %d)",
		rate, len(u.steps), h.plan.halfSlice, u.pooled.P99, k.pooled.P99, o.P99Ratio, o.P99Low, o.P99High,
		medianP99(u.steps).P99, medianP99(k.steps).P99, o.OursLowerSlices, len(u.steps))
	return nil
}

// sipp runs one bounded load from port, or from a free port when it is 0,
// and reads its counts and response times. It returns the port it used.
func (h *harness) sipp(srv *server, scenario string, rate, calls, port int, extra ...string) (*Step, int, error) {
	var (
		dir       string
		p         *proc
		sippDrops int
		wall      time.Duration
	)
	for attempt := 1; ; attempt++ {
		dir = h.scratch("sipp") // one for each attempt, for its files
		if port == 0 || attempt > 1 {
			var err error
			if port, err = freePort(); err != nil {
				return nil, 0, err
			}
		}
		args := append([]string{"-sf", filepath.Join(h.root, "bench", "sipp", scenario),
			"-t", "u1", "-i", "127.0.0.1", "-p", strconv.Itoa(port), "-r", strconv.Itoa(rate), "-m", strconv.Itoa(calls),
			"-l", strconv.Itoa(max(rate, 100)), "-recv_timeout", "2000", "-timeout", fmt.Sprint(calls/max(rate, 1)*3+10) + "s",
			"-max_recv_loops", "10000", "-max_sched_loops", "10000",
			"-nostdin", "-trace_stat", "-fd", "3600", "-trace_rtt", "-rtt_freq", "1000"}, extra...)
		args = append(args, srv.addr)
		start := time.Now()
		var err error
		if p, err = startProc("sipp", dir, exec.Command("sipp", args...)); err != nil {
			return nil, 0, err
		}
		// sipp's socket goes with it: its drops are read while it runs.
		sippDrops = 0
		tick := time.NewTicker(100 * time.Millisecond)
		for running := true; running; {
			select {
			case <-tick.C:
				sippDrops = max(sippDrops, socketDrops(port))
			case <-p.done:
				running = false
			}
		}
		tick.Stop()
		wall = time.Since(start)
		// As with the servers (start), a free port can be taken between
		// freePort, or the step before, and sipp's bind, by another
		// socket of the run: sipp then ends at once, having sent
		// nothing. Take another.
		if out, _ := os.ReadFile(p.logPath); attempt < 3 && bytes.Contains(out, []byte("Unable to bind main socket")) {
			h.log.Printf("  sipp: port %d taken meanwhile, trying another", port)
			continue
		}
		break
	}
	var ee *exec.ExitError
	if err := p.err; err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
		return nil, 0, fmt.Errorf("sipp: %w: %s", err, p.tail())
	}
	s := &Step{Target: rate, SippDropped: sippDrops}
	var err error
	if s.OK, s.Failed, err = sippCounts(dir); err != nil {
		return nil, 0, err
	}
	s.Nominal, s.Wall = time.Duration(float64(calls)/float64(rate)*float64(time.Second)), wall.Round(time.Millisecond)
	s.Rate = float64(s.OK) / s.Nominal.Seconds()
	times, last, err := sippRTT(dir)
	if err != nil {
		return nil, 0, err
	}
	s.LastOK = last
	s.P50, s.P99 = percentile(times, 0.50), percentile(times, 0.99)
	return s, port, nil
}

// sippCounts reads the last line of sipp's statistics file.
func sippCounts(dir string) (ok, failed int, err error) {
	files, _ := filepath.Glob(filepath.Join(dir, "*_.csv"))
	if len(files) == 0 {
		return 0, 0, fmt.Errorf("sipp wrote no statistics in %s", dir)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		return 0, 0, err
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 2 {
		return 0, 0, fmt.Errorf("sipp statistics %s hold no data", files[0])
	}
	head, last := strings.Split(lines[0], ";"), strings.Split(lines[len(lines)-1], ";")
	field := func(name string) int {
		for i, h := range head {
			if h == name && i < len(last) {
				n, _ := strconv.Atoi(last[i])
				return n
			}
		}
		return 0
	}
	return field("SuccessfulCall(C)"), field("FailedCall(C)"), nil
}

// sippRTT reads every response time sipp traced, sorted, and when the
// last of those calls ended, counted from sipp's start.
func sippRTT(dir string) ([]time.Duration, time.Duration, error) {
	files, _ := filepath.Glob(filepath.Join(dir, "*_rtt.csv"))
	var out []time.Duration
	var last time.Duration
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, 0, err
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			// date_ms;response_time_ms;rtd_no
			parts := strings.Split(sc.Text(), ";")
			if len(parts) < 2 {
				continue
			}
			at, err1 := strconv.ParseFloat(parts[0], 64)
			ms, err2 := strconv.ParseFloat(parts[1], 64)
			if err1 != nil || err2 != nil {
				continue
			}
			out = append(out, time.Duration(ms*float64(time.Millisecond)))
			last = max(last, time.Duration(at*float64(time.Millisecond)))
		}
		fh.Close()
	}
	slices.Sort(out)
	return out, last, nil
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(i, 0)].Round(time.Microsecond)
}

// callee registers bob from a port, then starts a sipp on that same port
// that answers every call.
func (h *harness) callee(srv *server) (*proc, error) {
	dir := h.scratch("callee")
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	common := []string{"-s", "bob", "-t", "u1", "-i", "127.0.0.1", "-p", strconv.Itoa(port), "-nostdin", "-max_recv_loops", "10000"}
	reg, err := startProc("callee-register", dir, exec.Command("sipp", append(append([]string{"-sf", filepath.Join(h.root, "bench/sipp/callee.xml"),
		"-au", "bob", "-ap", "bob-secret", "-m", "1", "-timeout", "10s", "-timeout_error"}, common...), srv.addr)...))
	if err != nil {
		return nil, err
	}
	if <-reg.done; reg.err != nil {
		return nil, fmt.Errorf("the callee did not register: %w\n%s", reg.err, reg.tail())
	}
	return startProc("callee", dir, exec.Command("sipp", append([]string{"-sf", filepath.Join(h.root, "bench/sipp/answer.xml"),
		"-timeout", "600s"}, common...)...))
}

// proc is a process started and stopped by PID.
type proc struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error // how it exited, once done is closed
}

func startProc(name, dir string, cmd *exec.Cmd) (*proc, error) {
	p := &proc{cmd: cmd, logPath: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	f, err := os.Create(p.logPath)
	if err != nil {
		return nil, err
	}
	if cmd.Dir == "" {
		cmd.Dir = dir
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := start(p); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	go func() { p.err = cmd.Wait(); f.Close(); untrack(p); close(p.done) }()
	return p, nil
}

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop ends the process and its children: SIGTERM, then SIGKILL after
// 10 s.
func (p *proc) stop() { procgroup.Stop(p.cmd, p.done, 10*time.Second) }

func (p *proc) tail() string {
	b, _ := os.ReadFile(p.logPath)
	return tailOf(string(b), 20)
}

func tailOf(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freePort is a loopback port free for UDP and TCP.
func freePort() (int, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if err == nil {
			u.Close()
			return port, nil
		}
	}
	return 0, fmt.Errorf("no free port")
}
