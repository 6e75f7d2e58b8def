package main

import (
	"log"
	"net"
	"os"
	"slices"
	"testing"
	"time"
)

// TestSmoke runs the whole harness with a few seconds of load: it checks
// that both servers start, every scenario completes, and each figure is
// read. It asserts no timing.
func TestSmoke(t *testing.T) {
	r, err := run(smokePlan, "", log.New(os.Stderr, "bench smoke: ", log.Ltime))
	if err != nil {
		t.Fatal(err)
	}
	printReport(os.Stdout, r)
	if len(r.Loads) != len(loadTests) {
		t.Fatalf("%d load tests ran, want %d", len(r.Loads), len(loadTests))
	}
	for _, o := range r.Loads {
		for who, m := range map[string]Maximum{"ours": o.Ours, "kamailio": o.Kamailio} {
			if len(m.Steps) == 0 || m.Steps[0].OK == 0 {
				t.Errorf("%s: %s completed nothing: %+v", o.Test, who, m.Steps)
			}
			if st := m.Steps[0]; st.Probes == st.ProbesFailed || st.P99 == 0 {
				t.Errorf("%s: %s: the prober timed nothing: %d probes, %d failed", o.Test, who, st.Probes, st.ProbesFailed)
			}
		}
		for who, half := range map[string]*Step{"ours": o.OursAtHalf, "kamailio": o.KamailioAtHalf} {
			if half == nil || half.OK == 0 || half.Probes == half.ProbesFailed || half.P99 == 0 || half.CPUPerKms == 0 || half.SleepsPerK == 0 {
				t.Errorf("%s: %s: nothing measured at half Kamailio's maximum: %+v", o.Test, who, half)
			}
		}
		if o.P99Ratio <= 0 || o.P99Low > o.P99High {
			t.Errorf("%s: p99 ratio at half %.2f, interval %.2f–%.2f", o.Test, o.P99Ratio, o.P99Low, o.P99High)
		}
		if len(o.OursHalfSlices) != smokePlan.halfSlices || len(o.KamailioHalfSlices) != smokePlan.halfSlices {
			t.Errorf("%s: %d and %d slices at half, want %d each", o.Test, len(o.OursHalfSlices), len(o.KamailioHalfSlices), smokePlan.halfSlices)
		}
	}
	// The probe times kept in the results pool back to the run's own
	// figures (go run ./bench -pool).
	ps := poolRuns([]*Report{r})
	if len(ps) != len(r.Loads) {
		t.Errorf("pooled %d tests of %d", len(ps), len(r.Loads))
	}
	for i, p := range ps {
		if o := r.Loads[i]; p.Test != o.Test || p.Pairs != smokePlan.halfSlices || p.Ratio != o.P99Ratio || p.OursP99 != o.OursAtHalf.P99 {
			t.Errorf("pooled %+v, from the run %s: ratio %.2f, ours p99 %v", p, o.Test, o.P99Ratio, o.OursAtHalf.P99)
		}
	}
	if r.RSSMiB <= 0 || r.RSSQuietMiB <= 0 || r.KamailioRSSMiB <= 0 || r.RestartToServing == "" {
		t.Errorf("memory or restart not measured: %+v", r)
	}
	if r.PhoneCPUPerCall <= 0 {
		t.Errorf("phone CPU not measured")
	}
}

// TestSearch runs the search for a maximum against a made-up server
// that sustains up to a given rate, and fails one step by chance.
func TestSearch(t *testing.T) {
	s := &search{who: "made-up", plan: fullPlan}
	flaked := false
	rates := drive(t, s, func(rate int) bool {
		if rate == 10000 && !flaked {
			flaked = true
			return false
		}
		return rate <= 13000
	})
	// Doubling, 10,000 failed once and then held, 20,000 failed twice,
	// then three halvings of the gap, each failed one tried twice.
	want := []int{2500, 5000, 10000, 10000, 20000, 20000, 15000, 15000, 12500, 13750, 13750}
	if !slices.Equal(rates, want) {
		t.Fatalf("rates %v, want %v", rates, want)
	}
	if s.m.Rate != 12500 || len(s.m.Steps) != len(want) {
		t.Fatalf("maximum %v over %d steps, want 12500", s.m.Rate, len(s.m.Steps))
	}
}

// drive runs a search to its end against a made-up server that
// sustains the rates sustains says, and returns the rates it ran.
func drive(t *testing.T, s *search, sustains func(rate int) bool) []int {
	t.Helper()
	var rates []int
	for {
		rate, ok := s.next()
		if !ok {
			return rates
		}
		rates = append(rates, rate)
		st := Step{Target: rate, Rate: float64(rate), OK: rate, Nominal: time.Second, LastOK: time.Second}
		if !sustains(rate) {
			st.Rate, st.OK, st.Failed = float64(rate)/2, rate/2, rate/2
		}
		s.record(st)
		if len(rates) > 20 {
			t.Fatalf("no end: %v", rates)
		}
	}
}

// TestSplitTie: two searches that ended at the same rate, having failed
// the same rate above it, both run once more between the two, and no
// longer tie when one server sustains that rate and the other does not.
func TestSplitTie(t *testing.T) {
	kam, ours := &search{who: "kamailio", plan: fullPlan}, &search{who: "ours", plan: fullPlan}
	kamUpTo, oursUpTo := func(r int) bool { return r <= 11500 }, func(r int) bool { return r <= 12000 }
	drive(t, kam, kamUpTo)
	drive(t, ours, oursUpTo)
	if kam.m.Rate != 11250 || ours.m.Rate != 11250 {
		t.Fatalf("before: %v and %v, want both 11250", kam.m.Rate, ours.m.Rate)
	}
	if !splitTie(kam, ours) {
		t.Fatal("a tie at 11250, both failing 12500, not split")
	}
	kr, or := drive(t, kam, kamUpTo), drive(t, ours, oursUpTo)
	if !slices.Equal(kr, []int{11875, 11875}) || !slices.Equal(or, []int{11875}) {
		t.Errorf("once more: Kamailio ran %v, ours %v", kr, or)
	}
	if kam.m.Rate != 11250 || ours.m.Rate != 11875 {
		t.Errorf("after: %v and %v, want 11250 and 11875", kam.m.Rate, ours.m.Rate)
	}
	if splitTie(kam, ours) {
		t.Error("split again when they no longer tie")
	}
	// Searches that ended apart do not tie, nor do fixed-rate runs.
	a, b := &search{plan: fullPlan}, &search{plan: fullPlan}
	drive(t, a, func(r int) bool { return r <= 5000 })
	drive(t, b, func(r int) bool { return r <= 7000 })
	if splitTie(a, b) {
		t.Errorf("%v and %v split", a.m.Rate, b.m.Rate)
	}
	fixed := fullPlan
	fixed.fixedRate = 9000
	a, b = &search{plan: fixed}, &search{plan: fixed}
	drive(t, a, func(int) bool { return true })
	drive(t, b, func(int) bool { return true })
	if splitTie(a, b) {
		t.Error("fixed-rate steps split")
	}
}

// TestEvenUp: the server whose search ended lower gets the other's rate
// when one of two more steps at it is sustained, and keeps its own when
// both fail.
func TestEvenUp(t *testing.T) {
	step := func(ok bool) Step {
		st := Step{Target: 9000, Rate: 9000, OK: 45000, Nominal: 5 * time.Second, LastOK: 5 * time.Second}
		if !ok {
			st.Rate, st.OK, st.Failed = 8000, 40000, 5000
		}
		return st
	}
	for _, tc := range []struct {
		name     string
		outcomes []bool
		rate     float64
		steps    int
	}{
		{"first sustained", []bool{true}, 9000, 2},
		{"second sustained", []bool{false, true}, 9000, 3},
		{"both failed", []bool{false, false}, 7000, 3},
	} {
		m := Maximum{Rate: 7000, Steps: []Step{{Target: 7000}}}
		ran := 0
		err := m.evenUp(9000, func(rate int) (*Step, error) {
			if rate != 9000 || ran >= len(tc.outcomes) {
				t.Fatalf("%s: step %d at %d/s", tc.name, ran+1, rate)
			}
			st := step(tc.outcomes[ran])
			ran++
			return &st, nil
		})
		if err != nil || m.Rate != tc.rate || len(m.Steps) != tc.steps {
			t.Errorf("%s: rate %v over %d steps (%v), want %v over %d", tc.name, m.Rate, len(m.Steps), err, tc.rate, tc.steps)
		}
	}
}

// TestSocketDrops fills a socket that nobody reads and finds the
// datagrams the kernel dropped there, and none at a socket beside it.
func TestSocketDrops(t *testing.T) {
	full, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	if err := full.SetReadBuffer(1); err != nil { // the kernel's minimum
		t.Fatal(err)
	}
	quiet, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer quiet.Close()
	fullPort, quietPort := full.LocalAddr().(*net.UDPAddr).Port, quiet.LocalAddr().(*net.UDPAddr).Port
	if n := socketDrops(fullPort); n != 0 {
		t.Fatalf("%d drops before any datagram", n)
	}
	out, err := net.DialUDP("udp4", nil, full.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	for range 200 {
		if _, err := out.Write(make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	if n := socketDrops(fullPort); n < 100 {
		t.Errorf("%d drops at the full socket, want most of 200", n)
	}
	if n := socketDrops(quietPort); n != 0 {
		t.Errorf("%d drops at the socket nobody sent to", n)
	}
}

// TestSlicesKeepPorts runs two slices of REGISTER load against our
// registrar, as atHalf does, and checks that each user keeps its two
// bindings, sipp's and the prober's: slices sent from new ports piled up
// a binding a user each (loaded). It also checks that the registrar
// answered every registration of each slice afresh: a prober sending
// from the port of the one before it, with the same Call-IDs and
// branches, got that one's answers again (prober.id).
func TestSlicesKeepPorts(t *testing.T) {
	h := oursHarness(t)
	h.plan.users = 50
	users, err := h.usersFile(h.plan.users)
	if err != nil {
		t.Fatal(err)
	}
	l, err := h.ready(loadTests[0], "ours", users)
	if err != nil {
		t.Fatal(err)
	}
	defer l.stop()
	for slice := 1; slice <= 2; slice++ {
		before := registered(l.srv)
		s, _, err := h.step(l, loadTests[0], 100, 500*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if s.OK != 50 || s.Probes < h.plan.users || s.ProbesFailed > 0 {
			t.Fatalf("slice %d: %d registrations, %d probes, %d failed", slice, s.OK, s.Probes, s.ProbesFailed)
		}
		// The registrar counts an answer once it is sent, so the count
		// can trail the last answer received.
		var n int
		until(2*time.Second, func() bool { n = registered(l.srv) - before; return n >= s.OK+s.Probes })
		if n != s.OK+s.Probes {
			t.Errorf("slice %d: %d REGISTERs answered 200, want sipp's %d and the prober's %d", slice, n, s.OK, s.Probes)
		}
		for _, u := range []string{"u0", "u49"} {
			if n := bindings(t, l.srv.admin, "sip:"+u+"@127.0.0.1"); n != 2 {
				t.Errorf("after slice %d, %s has %d bindings, want sipp's and the prober's", slice, u, n)
			}
		}
	}
}

// until polls cond every 10 ms for up to d, and reports whether it held.
func until(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// registered reads how many REGISTERs our registrar has answered with a
// 2xx, from its admin listener's metrics (0 before the first). A
// retransmission answered again from its cache is not counted.
func registered(s *server) int {
	return int(max(s.gauge(`sip_responses_total{class="2xx",method="REGISTER"}`), 0))
}
