package mediatest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var jackServers atomic.Int32

// StartJACK runs jackd with its dummy backend, a real-time-clocked sound
// card without hardware, as a server of its own, stopped at the end of the
// test. It returns the server's name: put it in JACK_DEFAULT_SERVER.
func StartJACK(t testing.TB) string {
	t.Helper()
	// The name is the same from one run of a test binary to the next:
	// JACK's registry holds 8 servers and reclaims an entry only when a
	// server of the same name starts after its owner died, so names unique
	// per process (as these were) filled it with the entries of jackds that
	// were killed, and then no jackd could start on the machine.
	server := fmt.Sprintf("sipline-%s-%d", strings.TrimSuffix(filepath.Base(os.Args[0]), ".test"), jackServers.Add(1))
	cmd := exec.Command("jackd", "-n", server, "--no-realtime", "-d", "dummy", "-r", "48000", "-p", "480", "-C", "2", "-P", "2")
	cmd.Env = append(os.Environ(), "JACK_NO_START_SERVER=1", "JACK_NO_AUDIO_RESERVATION=1")
	logf, err := os.CreateTemp(t.TempDir(), "jackd-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("jackd (Debian package jackd2; make test installs it): %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	// SIGTERM lets jackd take its server out of JACK's registry; a killed
	// one stays there, and JACK allows only a few servers.
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
	})
	deadline := time.Now().Add(10 * time.Second)
	for exec.Command("jack_lsp", "-s", server).Run() != nil {
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("jackd did not come up:\n%s", b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return server
}

// LoopJACK connects every client output port to every client input port
// on server (the system ports aside), so what is played is captured.
func LoopJACK(t testing.TB, server string) {
	t.Helper()
	out, err := exec.Command("jack_lsp", "-s", server).Output()
	if err != nil {
		t.Fatal(err)
	}
	var ins, outs []string
	for _, p := range strings.Fields(string(out)) {
		switch {
		case strings.HasPrefix(p, "system:"):
		case strings.Contains(p, ":out"):
			outs = append(outs, p)
		case strings.Contains(p, ":in"):
			ins = append(ins, p)
		}
	}
	if len(ins) == 0 || len(outs) == 0 {
		t.Fatalf("no client ports to loop in:\n%s", out)
	}
	for _, o := range outs {
		for _, i := range ins {
			if b, err := exec.Command("jack_connect", "-s", server, o, i).CombinedOutput(); err != nil {
				t.Fatalf("jack_connect %s %s: %v %s", o, i, err, b)
			}
		}
	}
}
