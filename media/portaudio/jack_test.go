//go:build portaudio

package portaudio

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sipline/sipline/media/mediatest"
)

// TestJackLoopback runs the sound-card path headless: jackd's dummy
// backend is the card, and a JACK connection from our output to our input
// brings what we play back to what we capture.
func TestJackLoopback(t *testing.T) {
	server := fmt.Sprintf("sipline-%d", os.Getpid())
	jackd := exec.Command("jackd", "-n", server, "--no-realtime", "-d", "dummy", "-r", "48000", "-p", "480", "-C", "2", "-P", "2")
	jackd.Env = append(os.Environ(), "JACK_NO_START_SERVER=1", "JACK_NO_AUDIO_RESERVATION=1")
	var jlog strings.Builder
	jackd.Stdout, jackd.Stderr = &jlog, &jlog
	if err := jackd.Start(); err != nil {
		t.Fatalf("jackd (Debian package jackd2; make test installs it): %v", err)
	}
	defer func() { _ = jackd.Process.Kill(); _ = jackd.Wait() }()
	t.Setenv("JACK_DEFAULT_SERVER", server)
	t.Setenv("JACK_NO_START_SERVER", "1")
	deadline := time.Now().Add(10 * time.Second)
	for exec.Command("jack_lsp", "-s", server).Run() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("jackd did not come up:\n%s", jlog.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	devs, err := Devices()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("devices: %+v", devs)
	dev, err := Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	src, sink := dev, dev

	tone := mediatest.Tone(1000, 8000, 0, 3*time.Second, 0.5)
	var captured []int16
	frame := make([]int16, 160)
	connected := false
	for i := 0; i+160 <= len(tone); i += 160 {
		if err := sink.WriteFrame(tone[i : i+160]); err != nil {
			t.Fatal(err)
		}
		if err := src.ReadFrame(frame); err != nil {
			t.Fatal(err)
		}
		captured = append(captured, frame...)
		if !connected && i >= 8000/2 {
			connected = true
			connect(t, server)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The second half, well after the connection: the tone, and loud.
	tail := captured[len(captured)/2:]
	if p := mediatest.Power(tail, 1000, 8000); p < 0.05 {
		t.Fatalf("the 1000 Hz tone did not come back through JACK (power %.4f)", p)
	}
	if p := mediatest.Power(tail, 440, 8000); p > 0.01 {
		t.Fatalf("something else came back (440 Hz power %.4f)", p)
	}
}

// connect links our JACK output ports to our input ports.
func connect(t *testing.T, server string) {
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
		t.Fatalf("no PortAudio ports in:\n%s", out)
	}
	for _, o := range outs {
		for _, i := range ins {
			if b, err := exec.Command("jack_connect", "-s", server, o, i).CombinedOutput(); err != nil {
				t.Fatalf("jack_connect %s %s: %v %s", o, i, err, b)
			}
		}
	}
}

func TestAMissingDeviceListsTheOthers(t *testing.T) {
	_, err := Open("no such card")
	if !errors.Is(err, ErrNoDevice) || !strings.Contains(err.Error(), "devices:") {
		t.Fatalf("err = %v", err)
	}
}
