package integration_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipline/sipline/media"
	"github.com/sipline/sipline/media/mediatest"
)

const (
	toneLead = time.Second
	toneLen  = 3 * time.Second
)

// phoneProc is one running phone binary.
type phoneProc struct {
	name  string
	cmd   *exec.Cmd
	out   lockedBuffer
	stdin io.WriteCloser
	done  chan error
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startPhone runs the phone as user with a config written for registrar r.
func startPhone(t *testing.T, r *registrar, user, transport string, args ...string) *phoneProc {
	t.Helper()
	return startPhoneWith(t, phoneOpts{bin: phoneBin, registrar: r.addr()}, user, transport, args...)
}

// phoneOpts change how startPhoneWith runs the phone.
type phoneOpts struct {
	bin       string // the phone binary
	registrar string // "host:port"
	extra     string // more config
}

func startPhoneWith(t *testing.T, o phoneOpts, user, transport string, args ...string) *phoneProc {
	t.Helper()
	bin := o.bin
	dir := t.TempDir()
	cfg := fmt.Sprintf("user: %[1]s\npassword: %[1]s-secret\ndomain: 127.0.0.1\nregistrar: %[2]s\ntransport: %[3]s\nlisten: 127.0.0.1:0\nkeepalive: 2\nlog: {level: debug}\n%[4]s",
		user, o.registrar, transport, o.extra)
	path := filepath.Join(dir, user+".yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &phoneProc{name: user, done: make(chan error, 1)}
	p.cmd = exec.Command(bin, append([]string{"-config", path}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	stdin, err := p.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.stdin = stdin
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait waits for the phone to exit; r, if not nil, is the registrar whose
// log tail a failure shows.
func (p *phoneProc) wait(t *testing.T, d time.Duration, r *registrar) {
	t.Helper()
	regTail := func() string {
		if r == nil {
			return ""
		}
		return r.logTail()
	}
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Fatalf("phone %s: %v\n%s\n%s", p.name, err, p.out.String(), regTail())
		}
	case <-time.After(d):
		_ = p.cmd.Process.Kill()
		t.Fatalf("phone %s still running after %s:\n%s\n%s", p.name, d, p.out.String(), regTail())
	}
}

// toneFile writes lead silence then a tone, 16-bit mono 8 kHz.
func toneFile(t *testing.T, freq float64) string {
	t.Helper()
	return toneFileOf(t, freq, toneLead, toneLen)
}

func toneFileOf(t *testing.T, freq float64, lead, length time.Duration) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), fmt.Sprintf("tone-%.0f-%v.wav", freq, length))
	w, err := media.CreateWAV(path, 8000)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFrame(mediatest.Tone(freq, 8000, lead, length, 0.5)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func readWAV(t *testing.T, path string) ([]int16, int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pcm, rate, err := media.ReadWAV(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return pcm, rate
}

// checkTone asserts that the recording holds the tone want, for toneLen
// ±5%, and not the tone other; it returns the one-way delay: the tone's
// onset in the recording less its onset in what was sent. Recordings of
// any rate are read, since peers record at their own.
func checkTone(t *testing.T, who, path string, want, other float64) time.Duration {
	t.Helper()
	pcm, rate := readWAV(t, path)
	start, end, ok := mediatest.Span(pcm, want, rate, 0.02)
	if !ok {
		t.Errorf("%s: no %.0f Hz tone in %s (%v of audio)", who, want, path, time.Duration(len(pcm))*time.Second/time.Duration(rate))
		return 0
	}
	if d := end - start; d < toneLen*95/100 || d > toneLen*105/100 {
		t.Errorf("%s: the %.0f Hz tone lasts %v, want %v ±5%%", who, want, d, toneLen)
	}
	if _, _, heard := mediatest.Span(pcm, other, rate, 0.02); heard {
		t.Errorf("%s: the %.0f Hz tone is there too", who, other)
	}
	return start - toneLead
}

// windowPower is the power of freq in the recording at path between from
// and to.
func windowPower(t *testing.T, path string, freq float64, from, to time.Duration) float64 {
	t.Helper()
	pcm, rate := readWAV(t, path)
	a, b := int(from.Seconds()*float64(rate)), int(to.Seconds()*float64(rate))
	if b > len(pcm) {
		t.Fatalf("%s is %v long; want at least %v", path, time.Duration(len(pcm))*time.Second/time.Duration(rate), to)
	}
	return mediatest.Power(pcm[a:b], freq, rate)
}

func TestPhonesCallWithAudio(t *testing.T) {
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			r := startRegistrar(t, regOpts{})
			dir := t.TempDir()
			aliceHeard, bobHeard := filepath.Join(dir, "alice-heard.wav"), filepath.Join(dir, "bob-heard.wav")
			bob := startPhone(t, r, "bob", transport, "-auto-answer", "-play", toneFile(t, 440), "-record", bobHeard, "-exit-after-call")
			waitFor(t, 10*time.Second, "bob to register", func() bool { return strings.Contains(r.registrations(), "sip:bob@") })
			alice := startPhone(t, r, "alice", transport, "-call", "bob", "-play", toneFile(t, 1000), "-record", aliceHeard,
				"-hangup-after", "6s", "-exit-after-call", "-dtmf", "42#", "-dtmf-at", "4200ms")
			alice.wait(t, 20*time.Second, r)
			bob.wait(t, 10*time.Second, r)
			for _, p := range []*phoneProc{alice, bob} {
				if !strings.Contains(p.out.String(), "[ended]") || !strings.Contains(p.out.String(), "codec PCMU") {
					t.Errorf("%s printed no call summary:\n%s", p.name, p.out.String())
				}
			}
			if got := strings.Count(bob.out.String(), "[dtmf]"); got != 3 || !strings.Contains(bob.out.String(), "[dtmf] call 1 #") {
				t.Errorf("bob got %d DTMF events, want 4, 2, #:\n%s", got, bob.out.String())
			}
			ab := checkTone(t, "bob", bobHeard, 1000, 440)
			ba := checkTone(t, "alice", aliceHeard, 440, 1000)
			t.Logf("one-way delay over %s: alice→bob %v, bob→alice %v", transport, ab, ba)
		})
	}
}

func TestHoldSilencesAndResumeBringsBack(t *testing.T) {
	r := startRegistrar(t, regOpts{})
	dir := t.TempDir()
	aliceHeard, bobHeard := filepath.Join(dir, "alice-heard.wav"), filepath.Join(dir, "bob-heard.wav")
	bob := startPhone(t, r, "bob", "udp", "-auto-answer", "-play", toneFileOf(t, 440, 0, 10*time.Second), "-record", bobHeard, "-exit-after-call")
	waitFor(t, 10*time.Second, "bob to register", func() bool { return strings.Contains(r.registrations(), "sip:bob@") })
	alice := startPhone(t, r, "alice", "udp", "-call", "bob", "-play", toneFileOf(t, 1000, 0, 10*time.Second), "-record", aliceHeard,
		"-hangup-after", "8s", "-exit-after-call")
	waitFor(t, 10*time.Second, "the call to be answered", func() bool { return strings.Contains(alice.out.String(), "[answered]") })
	// Held from 2 s to 5 s; each window is a second clear of the
	// re-INVITEs, whose effect lags the command on a busy machine.
	time.Sleep(2 * time.Second)
	fmt.Fprintln(alice.stdin, "hold")
	time.Sleep(3 * time.Second)
	fmt.Fprintln(alice.stdin, "resume")
	alice.wait(t, 20*time.Second, r)
	bob.wait(t, 10*time.Second, r)
	if strings.Count(alice.out.String(), "[updated]") != 2 || strings.Count(bob.out.String(), "[updated]") != 2 {
		t.Fatalf("hold and resume did not both go through:\n%s\n%s", alice.out.String(), bob.out.String())
	}
	for _, rec := range []struct {
		who, path string
		freq      float64
	}{{"bob", bobHeard, 1000}, {"alice", aliceHeard, 440}} {
		window := func(from, to time.Duration) float64 { return windowPower(t, rec.path, rec.freq, from, to) }
		before, held, after := window(500*time.Millisecond, 1500*time.Millisecond), window(3*time.Second, 4*time.Second), window(6300*time.Millisecond, 7300*time.Millisecond)
		t.Logf("%s hears %.0f Hz at power %.3f before hold, %.4f held, %.3f after resume", rec.who, rec.freq, before, held, after)
		if before < 0.02 || after < 0.02 || held > 0.001 {
			t.Errorf("%s: hold did not silence the call, or resume did not bring it back", rec.who)
		}
	}
}

// A phone on TCP notices its registrar's crash, registers again once it is
// back, and can be called.
func TestPhoneReregistersAfterRegistrarCrash(t *testing.T) {
	r := startRegistrar(t, regOpts{})
	bob := startPhone(t, r, "bob", "tcp", "-auto-answer")
	waitFor(t, 10*time.Second, "bob to register", func() bool { return strings.Contains(r.registrations(), "sip:bob@") })
	r.kill9()
	r.start()
	waitFor(t, 15*time.Second, "bob to register again", func() bool {
		return strings.Count(bob.out.String(), "[registered]") >= 2
	})
	if !strings.Contains(bob.out.String(), "[reconnecting]") {
		t.Errorf("bob did not say why he registered again:\n%s", bob.out.String())
	}
	alice := startPhone(t, r, "alice", "udp", "-call", "bob", "-hangup-after", "1s", "-exit-after-call")
	alice.wait(t, 20*time.Second, r)
	if !strings.Contains(alice.out.String(), "[answered]") {
		t.Fatalf("the call after the crash was not answered:\n%s\n%s", alice.out.String(), bob.out.String())
	}
}

// Early media: the callee answers 183 with SDP and sends RTP before it
// answers (sipp echoes ours back); the phone plays it before the 200.
func TestPhonePlaysEarlyMedia(t *testing.T) {
	r := startRegistrar(t, regOpts{})
	bob := register(t, r, "bob", "u1", 200, "3600", 15*time.Second, "uas_early.xml")
	registered(t, r, bob, "UDP")
	alice := startPhone(t, r, "alice", "udp", "-call", "bob", "-play", toneFile(t, 1000), "-hangup-after", "1s", "-exit-after-call")
	alice.wait(t, 20*time.Second, r)
	out := alice.out.String()
	early, answered := strings.Index(out, "[early-media]"), strings.Index(out, "[answered]")
	if early < 0 || answered < early {
		t.Fatalf("no early media before the answer:\n%s\n%s", out, bob.logs(r))
	}
	// About 1.5 s of early media and 1 s of call, echoed back by sipp.
	var sent, got int
	if i := strings.Index(out, "packets sent "); i >= 0 {
		fmt.Sscanf(out[i:], "packets sent %d received %d", &sent, &got)
	}
	if sent < 100 || got < 80 {
		t.Fatalf("packets sent %d, received %d: the early media did not flow\n%s", sent, got, out)
	}
}

// A phone registers over TLS and is called over its TLS connection.
func TestPhoneOverTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	tlsPort := freePort(t)
	r := startRegistrar(t, regOpts{tls: fmt.Sprintf("127.0.0.1:%d", tlsPort), tlsCert: cert, tlsKey: key})
	bob := startPhoneWith(t, phoneOpts{bin: phoneBin, registrar: fmt.Sprintf("127.0.0.1:%d", tlsPort), extra: "tls_ca: " + cert + "\n"},
		"bob", "tls", "-auto-answer", "-exit-after-call")
	waitFor(t, 10*time.Second, "bob to register over TLS", func() bool {
		regs := r.registrations()
		return strings.Contains(regs, "sip:bob@") && strings.Contains(regs, `"transport": "TLS"`)
	})
	alice := startPhone(t, r, "alice", "udp", "-call", "bob", "-play", toneFile(t, 1000), "-hangup-after", "2s", "-exit-after-call")
	alice.wait(t, 20*time.Second, r)
	bob.wait(t, 10*time.Second, r)
	if !strings.Contains(alice.out.String(), "[answered]") || !strings.Contains(bob.out.String(), "[ended]") {
		t.Fatalf("the call over TLS failed:\n%s\n%s", alice.out.String(), bob.out.String())
	}
}

// DTMF sent as SIP INFO by the caller (sipp) reaches our phone.
func TestPhoneReceivesINFODTMF(t *testing.T) {
	r := startRegistrar(t, regOpts{})
	bob := startPhone(t, r, "bob", "udp", "-auto-answer", "-exit-after-call")
	waitFor(t, 10*time.Second, "bob to register", func() bool { return strings.Contains(r.registrations(), "sip:bob@") })
	sf := scenario(t, t.TempDir(), "uac_info.xml", nil)
	sipp(t, r, "alice", "u1", sf, 20*time.Second, "-key", "callee", "bob").mustPass(r, 25*time.Second)
	bob.wait(t, 10*time.Second, r)
	if !strings.Contains(bob.out.String(), "[dtmf] call 1 5") {
		t.Fatalf("bob did not get the INFO digit:\n%s", bob.out.String())
	}
}
