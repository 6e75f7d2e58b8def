package integration_test

// Third-party peers for the interop tests: linphonec, baresip and Kamailio
// from Debian, each started by PID in a directory of its own, and a tshark
// capture that prints the SIP ladder when a case fails.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	kamcfg "github.com/sipline/sipline/internal/kamailio"
	"github.com/sipline/sipline/internal/procgroup"
	"github.com/sipline/sipline/media"
)

// proc is a peer process whose output goes to a log file.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
}

func startProc(t *testing.T, name, dir string, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{name: name, cmd: cmd, logPath: filepath.Join(dir, name+".out"), done: make(chan struct{})}
	logf, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := procgroup.Start(cmd); err != nil {
		t.Fatalf("%s: %v (make test installs it)", name, err)
	}
	go func() { _ = cmd.Wait(); logf.Close(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("--- %s log (tail):\n%s", name, p.tail(40))
		}
	})
	return p
}

// stop ends the process and its children: SIGTERM, then SIGKILL after
// 5 s.
func (p *proc) stop() { procgroup.Stop(p.cmd, p.done, 5*time.Second) }

func (p *proc) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

func (p *proc) tail(n int) string { return tail(p.logPath, n) }

// waitLog waits until the log holds s, or the process ends.
func (p *proc) waitLog(t *testing.T, d time.Duration, s string) {
	t.Helper()
	waitFor(t, d, p.name+" to log "+strconv.Quote(s), func() bool {
		select {
		case <-p.done:
			t.Fatalf("%s exited:\n%s", p.name, p.tail(30))
		default:
		}
		return strings.Contains(p.log(), s)
	})
}

// peerOpts say how a third-party phone registers and what it sends.
type peerOpts struct {
	user      string
	sipPort   int
	registrar string // host:port
	transport string // "udp" or "tcp"
	codec     string // the only codec it offers and accepts: "PCMU" or "PCMA"
	tone      float64
	long      bool // send the tone from the start, for 14 s
}

// peer is a third-party softphone that a test drives.
type peer interface {
	Name() string
	SIPPort() int
	Dial(t *testing.T, user string)
	Hangup(t *testing.T)
	Hold(t *testing.T)
	Resume(t *testing.T)
	SendDTMF(t *testing.T, digits string)
	// Heard is the recording of the last call.
	Heard(t *testing.T) string
	// WaitIdle waits until the peer has no call left.
	WaitIdle(t *testing.T, d time.Duration)
	// ReceivedDTMF lists the digits the peer logged as received.
	ReceivedDTMF() string
	Proc() *proc
}

// peerTone writes what a peer sends: 16 s at 48 kHz, with toneLen of freq
// after toneLead of silence, or (long) 14 s of it at once. baresip hangs
// up when its file ends, and linphonec loops it, so the file outlasts
// every call.
func peerTone(t *testing.T, dir string, o peerOpts) string {
	t.Helper()
	const rate = 48000
	path := filepath.Join(dir, fmt.Sprintf("tone-%.0f-48k.wav", o.tone))
	w, err := media.CreateWAV(path, rate)
	if err != nil {
		t.Fatal(err)
	}
	lead, length := toneLead, toneLen
	if o.long {
		lead, length = 0, 14*time.Second
	}
	if err := w.WriteFrame(media.Tone(o.tone, rate, lead, length, 0.5)); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFrame(make([]int16, rate*16-int(length+lead)*rate/int(time.Second))); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// baresip is baresip 1.0, driven over its ctrl_tcp socket.
type baresip struct {
	p             *proc
	sndDir        string
	sipPort, ctrl int
}

const baresipModules = "/usr/lib/baresip/modules"

func startBaresip(t *testing.T, o peerOpts) *baresip {
	t.Helper()
	dir := t.TempDir()
	b := &baresip{sndDir: filepath.Join(dir, "snd"), sipPort: o.sipPort, ctrl: freePort(t)}
	if err := os.Mkdir(b.sndDir, 0o755); err != nil {
		t.Fatal(err)
	}
	rtp := freePort(t)
	config := fmt.Sprintf(`poll_method epoll
sip_listen 127.0.0.1:%d
audio_player aubridge,nil
audio_alert aubridge,nil
audio_source aufile,%s
ausrc_srate 48000
ausrc_channels 1
rtp_ports %d-%d
module_path %s
module g711.so
module aufile.so
module aubridge.so
module sndfile.so
module_app account.so
module_app menu.so
module_app ctrl_tcp.so
ctrl_tcp_listen 127.0.0.1:%d
snd_path %s
statmode_default off
`, b.sipPort, peerTone(t, dir, o), rtp, rtp+9, baresipModules, b.ctrl, b.sndDir)
	account := fmt.Sprintf("<sip:%[1]s@127.0.0.1;transport=%[2]s>;auth_pass=%[1]s-secret;answermode=auto;audio_codecs=%[3]s;outbound=\"sip:%[4]s;transport=%[2]s\"\n",
		o.user, o.transport, o.codec, o.registrar)
	for name, text := range map[string]string{"config": config, "accounts": account, "contacts": ""} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b.p = startProc(t, "baresip", dir, exec.Command("baresip", "-4", "-f", dir, "-n", "127.0.0.1"))
	b.p.waitLog(t, 10*time.Second, "baresip is ready")
	return b
}

func (b *baresip) Name() string { return "baresip" }
func (b *baresip) SIPPort() int { return b.sipPort }
func (b *baresip) Proc() *proc  { return b.p }

// command sends one netstring-framed JSON command and returns its data.
func (b *baresip) command(t *testing.T, command, params string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(b.ctrl), 2*time.Second)
	if err != nil {
		t.Fatalf("baresip ctrl_tcp: %v", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	msg, _ := json.Marshal(map[string]string{"command": command, "params": params, "token": "t"})
	if _, err := fmt.Fprintf(conn, "%d:%s,", len(msg), msg); err != nil {
		t.Fatalf("baresip %s: %v", command, err)
	}
	r := bufio.NewReader(conn)
	for {
		n, err := r.ReadString(':')
		if err != nil {
			t.Fatalf("baresip %s: no response: %v", command, err)
		}
		size, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(n, ":")))
		if err != nil {
			t.Fatalf("baresip %s: bad netstring length %q", command, n)
		}
		body := make([]byte, size+1)
		if _, err := io.ReadFull(r, body); err != nil {
			t.Fatalf("baresip %s: %v", command, err)
		}
		var res struct {
			Response bool   `json:"response"`
			OK       bool   `json:"ok"`
			Data     string `json:"data"`
		}
		if err := json.Unmarshal(body[:size], &res); err != nil {
			t.Fatalf("baresip %s: %v in %q", command, err, body)
		}
		if !res.Response {
			continue // an event, not our answer
		}
		if !res.OK {
			t.Fatalf("baresip %s %s: %s", command, params, res.Data)
		}
		return res.Data
	}
}

func (b *baresip) Dial(t *testing.T, user string) { b.command(t, "dial", "sip:"+user+"@127.0.0.1") }
func (b *baresip) Hangup(t *testing.T)            { b.command(t, "hangup", "") }
func (b *baresip) Hold(t *testing.T)              { b.command(t, "hold", "") }
func (b *baresip) Resume(t *testing.T)            { b.command(t, "resume", "") }

func (b *baresip) SendDTMF(t *testing.T, digits string) {
	for _, d := range digits {
		b.command(t, "sndcode", string(d))
		time.Sleep(250 * time.Millisecond)
	}
}

// Heard is sndfile's recording of the decoded audio of the last call.
func (b *baresip) Heard(t *testing.T) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(b.sndDir, "*-dec.wav"))
	if len(files) == 0 {
		t.Fatalf("baresip recorded nothing in %s", b.sndDir)
	}
	sort.Strings(files)
	return files[len(files)-1]
}

func (b *baresip) WaitIdle(t *testing.T, d time.Duration) {
	t.Helper()
	waitFor(t, d, "baresip to have no call", func() bool {
		return !strings.Contains(b.command(t, "listcalls", ""), "sip:")
	})
}

func (b *baresip) ReceivedDTMF() string {
	var digits strings.Builder
	for _, line := range strings.Split(b.p.log(), "\n") {
		// received event: '1' (end=1)
		if strings.HasPrefix(line, "received event: '") && strings.HasSuffix(line, "(end=1)") {
			digits.WriteByte(line[len("received event: '")])
		}
	}
	return digits.String()
}

// linphonec is the Linphone console, driven through its stdin.
type linphonec struct {
	p       *proc
	heard   string
	sipPort int
	stdin   io.WriteCloser
}

func startLinphonec(t *testing.T, o peerOpts) *linphonec {
	t.Helper()
	dir := t.TempDir()
	l := &linphonec{heard: filepath.Join(dir, "heard.wav"), sipPort: o.sipPort}
	// Without this folder it opens no SIP socket at all.
	if err := os.MkdirAll(filepath.Join(dir, ".local/share/linphone"), 0o755); err != nil {
		t.Fatal(err)
	}
	udp, tcp := l.sipPort, 0
	if o.transport == "tcp" {
		udp, tcp = 0, l.sipPort
	}
	rc := fmt.Sprintf(`[sip]
sip_port=%d
sip_tcp_port=%d
sip_tls_port=0
bind_address=127.0.0.1
default_proxy=0
[rtp]
audio_rtp_port=%d
bind_address=127.0.0.1
[sound]
echocancellation=0
[proxy_0]
reg_proxy=<sip:%s;transport=%s>
reg_identity=<sip:%s@127.0.0.1>
reg_expires=3600
reg_sendregister=1
[auth_info_0]
username=%[6]s
passwd=%[6]s-secret
realm=127.0.0.1
`, udp, tcp, freePort(t), o.registrar, o.transport, o.user)
	// Offer and accept only the codec under test.
	for i, c := range []struct {
		mime     string
		rate, ch int
	}{{"PCMU", 8000, 1}, {"PCMA", 8000, 1}, {"opus", 48000, 2}, {"speex", 16000, 1}, {"speex", 8000, 1}, {"speex", 32000, 1}, {"G729", 8000, 1}, {"GSM", 8000, 1}, {"G722", 8000, 1}} {
		enabled := 0
		if c.mime == o.codec {
			enabled = 1
		}
		rc += fmt.Sprintf("[audio_codec_%d]\nmime=%s\nrate=%d\nchannels=%d\nenabled=%d\n", i, c.mime, c.rate, c.ch, enabled)
	}
	rcPath := filepath.Join(dir, "linphonerc")
	if err := os.WriteFile(rcPath, []byte(rc), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("linphonec", "-c", rcPath, "-d", "6", "-l", filepath.Join(dir, "linphone.log"))
	cmd.Env = append(os.Environ(), "HOME="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	l.stdin = stdin
	l.p = startProc(t, "linphonec", dir, cmd)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- linphone.log (SIP and errors, tail):\n%s", tail(filepath.Join(dir, "linphone.log"), 30))
		}
	})
	l.send(t, "soundcard use files")
	l.send(t, "play "+peerTone(t, dir, o))
	l.send(t, "record "+l.heard)
	l.send(t, "autoanswer enable")
	l.p.waitLog(t, 10*time.Second, "Auto answer enabled")
	return l
}

func (l *linphonec) send(t *testing.T, line string) {
	t.Helper()
	if _, err := fmt.Fprintln(l.stdin, line); err != nil {
		t.Fatalf("linphonec %q: %v\n%s", line, err, l.p.tail(20))
	}
}

func (l *linphonec) Name() string                   { return "linphonec" }
func (l *linphonec) SIPPort() int                   { return l.sipPort }
func (l *linphonec) Proc() *proc                    { return l.p }
func (l *linphonec) Dial(t *testing.T, user string) { l.send(t, "call sip:"+user+"@127.0.0.1") }
func (l *linphonec) Hangup(t *testing.T)            { l.send(t, "terminate") }
func (l *linphonec) Hold(t *testing.T)              { l.send(t, "pause") }
func (l *linphonec) Resume(t *testing.T)            { l.send(t, "resume") }
func (l *linphonec) Heard(t *testing.T) string      { return l.heard }
func (l *linphonec) ReceivedDTMF() string {
	var digits strings.Builder
	for _, line := range strings.Split(l.p.log(), "\n") {
		// Receiving tone 5 from sip:alice@127.0.0.1
		if i := strings.Index(line, "Receiving tone "); i >= 0 && len(line) > i+15 {
			digits.WriteByte(line[i+15])
		}
	}
	return digits.String()
}

// SendDTMF types each digit at the prompt, which sends it in a call.
func (l *linphonec) SendDTMF(t *testing.T, digits string) {
	for _, d := range digits {
		l.send(t, string(d))
		time.Sleep(250 * time.Millisecond)
	}
}

func (l *linphonec) WaitIdle(t *testing.T, d time.Duration) {
	t.Helper()
	waitFor(t, d, "linphonec to have no call", func() bool {
		before := len(l.p.log())
		l.send(t, "calls")
		time.Sleep(200 * time.Millisecond)
		return strings.Contains(l.p.log()[before:], "No active call")
	})
}

// kamailio is Kamailio 5.6 as a registrar and stateful proxy, with users
// and passwords in an in-memory htable.
type kamailio struct {
	p    *proc
	port int
}

func startKamailio(t *testing.T, users map[string]string) *kamailio {
	t.Helper()
	dir := t.TempDir()
	k := &kamailio{port: freePort(t)}
	cfg := kamcfg.Config{Port: k.port, Workers: 1, Auth: true, Users: users}
	path := filepath.Join(dir, "kamailio.cfg")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	k.p = startProc(t, "kamailio", dir, exec.Command("kamailio", "-f", path, "-DD", "-E", "-m", "64", "-M", "8",
		"-Y", filepath.Join(dir, "run")))
	waitFor(t, 10*time.Second, "kamailio to listen", func() bool {
		select {
		case <-k.p.done:
			t.Fatalf("kamailio exited:\n%s", k.p.tail(30))
		default:
		}
		c, err := net.Dial("tcp", k.addr())
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return k
}

func (k *kamailio) addr() string { return "127.0.0.1:" + strconv.Itoa(k.port) }

// capture runs tshark on the test's own ports, and prints the SIP ladder
// when the test fails.
type capture struct {
	p     *proc
	path  string
	ports []int
}

func startCapture(t *testing.T, ports ...int) *capture {
	t.Helper()
	dir := t.TempDir()
	c := &capture{path: filepath.Join(dir, "sip.pcap"), ports: ports}
	var filter []string
	for _, p := range ports {
		filter = append(filter, "port "+strconv.Itoa(p))
	}
	c.p = startProc(t, "tshark", dir, exec.Command("tshark", "-i", "lo", "-q", "-w", c.path, "-f", strings.Join(filter, " or ")))
	c.p.waitLog(t, 30*time.Second, "Capturing on")
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		c.p.stop() // flushes the file
		args := []string{"-r", c.path, "-Y", "sip"}
		for _, p := range ports {
			args = append(args, "-d", fmt.Sprintf("udp.port==%d,sip", p), "-d", fmt.Sprintf("tcp.port==%d,sip", p))
		}
		out, err := exec.Command("tshark", args...).CombinedOutput()
		t.Logf("--- SIP ladder (tshark on ports %v; %v):\n%s", ports, err, out)
	})
	return c
}
