package main

import (
	"log"
	"os"
	"testing"
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
			if m.Steps[0].Probes > 0 && m.Steps[0].P99 == 0 {
				t.Errorf("%s: %s: no response times read", o.Test, who)
			}
		}
	}
	if r.RSSMiB <= 0 || r.KamailioRSSMiB <= 0 || r.RestartToServing == "" {
		t.Errorf("memory or restart not measured: %+v", r)
	}
	if r.PhoneCPUPerCall <= 0 {
		t.Errorf("phone CPU not measured")
	}
}
