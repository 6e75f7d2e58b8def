//go:build portaudio

package integration_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipline/sipline/media/mediatest"
)

// The phone's sound-card path, headless: alice's phone uses the sound card
// (jackd's dummy backend), whose output a JACK connection feeds back to its
// input. Bob calls her with a tone and must hear it come back.
func TestPhoneSoundCardEchoesThroughJACK(t *testing.T) {
	server := mediatest.StartJACK(t)
	t.Setenv("JACK_DEFAULT_SERVER", server)
	t.Setenv("JACK_NO_START_SERVER", "1")
	bin := filepath.Join(t.TempDir(), "phone")
	if out, err := exec.Command("go", "build", "-tags", "portaudio", "-o", bin, "../cmd/phone").CombinedOutput(); err != nil {
		t.Fatalf("build the phone with PortAudio: %v\n%s", err, out)
	}
	r := startRegistrar(t, regOpts{})
	alice := startPhoneWith(t, phoneOpts{bin: bin, registrar: r.addr()}, "alice", "udp", "-auto-answer")
	waitFor(t, 10*time.Second, "alice to register", func() bool { return strings.Contains(r.registrations(), "sip:alice@") })
	heard := filepath.Join(t.TempDir(), "bob-heard.wav")
	bob := startPhone(t, r, "bob", "udp", "-call", "alice", "-play", toneFileOf(t, 440, 0, 6*time.Second), "-record", heard,
		"-hangup-after", "5s", "-exit-after-call")
	waitFor(t, 10*time.Second, "alice to answer", func() bool { return strings.Contains(alice.out.String(), "[answered]") })
	time.Sleep(500 * time.Millisecond) // her sound card is open
	mediatest.LoopJACK(t, server)
	bob.wait(t, 20*time.Second, r)
	if strings.Contains(alice.out.String(), "no sound card") {
		t.Fatalf("alice found no sound card:\n%s", alice.out.String())
	}
	pcm, _ := readWAV(t, heard)
	tail := pcm[len(pcm)/2:]
	if p := mediatest.Power(tail, 440, 8000); p < 0.01 {
		t.Fatalf("bob's tone did not come back through alice's sound card (power %.4f)\n%s", p, alice.out.String())
	}
	start, _, _ := mediatest.Span(pcm, 440, 8000, 0.01)
	t.Logf("the echo through alice's sound card starts %v into bob's recording", start)
}
