package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestInterruptStopsServers interrupts a smoke run while it builds, and
// while its servers are up, and checks that none of the processes it
// started outlives it, and that the socket buffer setting is put back.
func TestInterruptStopsServers(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the harness")
	}
	bin := filepath.Join(t.TempDir(), "bench")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		name  string
		ready func(dir string) bool
	}{
		// The go command names the run's directory, and works in the
		// repository.
		{"building", func(dir string) bool {
			for _, p := range processesIn(dir) {
				if !p.inDir && strings.HasPrefix(p.cmdline, "go build") {
					return true
				}
			}
			return false
		}},
		// A server of the run and its callee or sipp work in it.
		{"servers up", func(dir string) bool {
			n := 0
			for _, p := range processesIn(dir) {
				if p.inDir {
					n++
				}
			}
			return n >= 2
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { interruptWhen(t, bin, tc.ready) })
	}
}

// interruptWhen starts a smoke run of bin, sends it SIGINT once ready
// holds for its working directory, and checks what it left.
func interruptWhen(t *testing.T, bin string, ready func(dir string) bool) {
	rmem, _ := os.ReadFile("/proc/sys/net/core/rmem_default")
	cmd := exec.Command(bin, "-smoke", "-keep", "-only", "calls with proxy auth", "-out", filepath.Join(t.TempDir(), "out.json"))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	lines := bufio.NewScanner(stderr)
	dir := ""
	for dir == "" && lines.Scan() {
		if _, d, ok := strings.Cut(lines.Text(), "working directory: "); ok {
			dir = strings.TrimSpace(d)
		}
	}
	if dir == "" {
		t.Fatal("the run named no working directory")
	}
	defer os.RemoveAll(dir)
	go func() {
		for lines.Scan() {
		}
	}()
	if !until(60*time.Second, func() bool { return ready(dir) }) {
		t.Fatalf("the run never reached the point to interrupt, in %s", dir)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the run did not end on SIGINT")
	}
	// Processes are reaped by their parent, the run; what is left was
	// never stopped.
	if left := processesIn(dir); len(left) > 0 {
		t.Errorf("still running after the run ended: %v", left)
	}
	if now, _ := os.ReadFile("/proc/sys/net/core/rmem_default"); string(now) != string(rmem) {
		t.Errorf("net.core.rmem_default is %q, was %q", now, rmem)
	}
}

// process is a running process found in /proc.
type process struct {
	pid, cmdline string
	inDir        bool // it works in the directory looked for
}

func (p process) String() string { return p.pid + ": " + p.cmdline }

// processesIn lists the running processes that name dir or work in it: the
// builds, servers, callees and sipps a run started there.
func processesIn(dir string) []process {
	var found []process
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		cwd, _ := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		inDir := cwd == dir || strings.HasPrefix(cwd, dir+"/")
		if err != nil || !strings.Contains(string(b), dir+"/") && !inDir {
			continue
		}
		if st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil && strings.Contains(string(st), ") Z ") {
			continue // a zombie: exited, not yet reaped
		}
		found = append(found, process{e.Name(), strings.ReplaceAll(string(b), "\x00", " "), inDir})
	}
	return found
}
