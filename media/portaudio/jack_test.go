//go:build portaudio

package portaudio

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sipline/sipline/media/mediatest"
)

// TestJackLoopback runs the sound-card path headless: jackd's dummy
// backend is the card, and a JACK connection from our output to our input
// brings what we play back to what we capture.
func TestJackLoopback(t *testing.T) {
	server := mediatest.StartJACK(t)
	t.Setenv("JACK_DEFAULT_SERVER", server)
	t.Setenv("JACK_NO_START_SERVER", "1")

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
			mediatest.LoopJACK(t, server)
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

func TestAMissingDeviceListsTheOthers(t *testing.T) {
	_, err := Open("no such card")
	if !errors.Is(err, ErrNoDevice) || !strings.Contains(err.Error(), "devices:") {
		t.Fatalf("err = %v", err)
	}
}
