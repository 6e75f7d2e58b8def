package main

import (
	"encoding/json"
	"log"
	"net/http"
	"os"
	"testing"
	"time"
)

// TestCallProberUnbinds runs the call prober twice against our
// registrar, from one port, as two slices of load do, and checks that
// its callee leaves no binding behind: left bound, the callees of
// earlier slices took a share of every probe call (stopCallee). The
// second prober's calls fail when they reuse the first one's Call-IDs
// and branches (prober.id).
func TestCallProberUnbinds(t *testing.T) {
	h := oursHarness(t)
	srv, err := h.start("ours", true, "memory", h.scratch("ours"), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.stop()
	port := 0
	for slice := 1; slice <= 2; slice++ {
		// From the port of the slice before, as atHalf's slices are.
		pr := startProber(srv.addr, port, true, true, 2, 20*time.Millisecond)
		// Its callee is registered before its first call.
		until(10*time.Second, func() bool { return exchanges(pr) > 0 })
		during := bindings(t, srv.admin, "sip:"+probeCallee+"@127.0.0.1")
		rtts, failed, err := pr.finish()
		port = pr.port
		if err != nil || len(rtts) == 0 || failed > 0 {
			t.Fatalf("slice %d: %d calls, %d failed, %v", slice, len(rtts), failed, err)
		}
		if during != 1 {
			t.Errorf("during slice %d, %s had %d bindings, want its callee's", slice, probeCallee, during)
		}
		if n := bindings(t, srv.admin, "sip:"+probeCallee+"@127.0.0.1"); n != 0 {
			t.Errorf("after slice %d, %s has %d bindings, want none", slice, probeCallee, n)
		}
	}
}

// oursHarness builds our registrar and returns a harness with the smoke
// plan that starts it.
func oursHarness(t *testing.T) *harness {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := build(root, dir, "./cmd/registrar"); err != nil {
		t.Fatal(err)
	}
	return &harness{plan: smokePlan, dir: dir, root: root, bin: dir, log: log.New(os.Stderr, "bench test: ", log.Ltime)}
}

// bindings counts aor's live bindings, from our registrar's admin
// listener.
func bindings(t *testing.T, admin, aor string) int {
	res, err := http.Get("http://" + admin + "/registrations")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var regs []struct {
		AOR      string `json:"aor"`
		Contacts []any  `json:"contacts"`
	}
	if err := json.NewDecoder(res.Body).Decode(&regs); err != nil {
		t.Fatal(err)
	}
	for _, r := range regs {
		if r.AOR == aor {
			return len(r.Contacts)
		}
	}
	return 0
}

// exchanges is how many exchanges p has measured so far.
func exchanges(p *prober) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.rtts)
}
