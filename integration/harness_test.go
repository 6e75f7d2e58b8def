package integration_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// registrarBin and phoneBin are the binaries under test, built once by TestMain.
var registrarBin, phoneBin string

func TestMain(m *testing.M) {
	if _, err := exec.LookPath("sipp"); err != nil {
		fmt.Fprintln(os.Stderr, "integration: sipp not found; `make test` installs it (Debian package sip-tester)")
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "sipline-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	registrarBin, phoneBin = filepath.Join(dir, "registrar"), filepath.Join(dir, "phone")
	build := exec.Command("go", "build", "-o", dir+"/", "../cmd/registrar", "../cmd/phone")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "integration: build:", err)
		os.Exit(1)
	}
	code := m.Run()
	writeInteropReport()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freePort returns a loopback port that is free for both UDP and TCP, with
// the port two above it free for UDP too: sipp's -rtp_echo takes -mp for
// audio and -mp+2 for video. It picks below the kernel's ephemeral range,
// so that a socket opened elsewhere without a port (sipp's, a test
// client's, another package's) cannot take it between this check and its
// use; with ports the kernel chose, that happened ("Unable to bind audio
// RTP socket ... Address already in use"). No port is handed out twice.
func freePort(t *testing.T) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 200 {
		port := 20000 + rand.IntN(12000) // ephemeral ports start at 32768 (ip_local_port_range)
		if portsGiven[port] || portsGiven[port+2] || portsGiven[port-2] {
			continue
		}
		if free(port, true) && free(port+2, false) {
			portsGiven[port] = true
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// free reports whether port is free on 127.0.0.1 for UDP, and for TCP too
// if tcp.
func free(port int, tcp bool) bool {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	u, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	defer u.Close()
	if tcp {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return false
		}
		l.Close()
	}
	return true
}

// registrar is one running registrar process.
type registrar struct {
	t       *testing.T
	dir     string
	config  string
	port    int
	admin   string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	netns   string // run inside this network namespace when set
}

const usersYAML = `
users:
  alice: {password: alice-secret}
  bob: {password: bob-secret}
  carol: {password: carol-secret}
`

// regOpts are what a test changes in the registrar's config.
type regOpts struct {
	netns   string // run inside this network namespace
	tls     string // listen.tls address
	tlsCert string
	tlsKey  string
}

// startRegistrar starts the registrar on fresh loopback ports with its
// data in a temporary directory.
func startRegistrar(t *testing.T, o regOpts) *registrar {
	t.Helper()
	r := &registrar{t: t, dir: t.TempDir(), port: freePort(t), netns: o.netns}
	r.admin = "127.0.0.1:" + strconv.Itoa(freePort(t))
	r.config = filepath.Join(r.dir, "registrar.yaml")
	cfg := fmt.Sprintf(`
listen:
  udp: 127.0.0.1:%[1]d
  tcp: 127.0.0.1:%[1]d
  tls: %[5]q
tls:
  cert: %[6]q
  key: %[7]q
domain: 127.0.0.1
store: bolt
data_dir: %[2]s
auth:
  algorithms: [MD5, SHA-256]
log:
  level: debug
admin:
  listen: %[3]s
%[4]s`, r.port, filepath.Join(r.dir, "data"), r.admin, usersYAML, o.tls, o.tlsCert, o.tlsKey)
	if err := os.WriteFile(r.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *registrar) start() {
	r.t.Helper()
	r.logPath = filepath.Join(r.dir, fmt.Sprintf("registrar-%d.log", time.Now().UnixNano()))
	logf, err := os.Create(r.logPath)
	if err != nil {
		r.t.Fatal(err)
	}
	r.cmd = exec.Command(registrarBin, "-config", r.config)
	if r.netns != "" {
		r.cmd = exec.Command("ip", "netns", "exec", r.netns, registrarBin, "-config", r.config)
	}
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.done = make(chan struct{})
	go func() { _ = r.cmd.Wait(); logf.Close(); close(r.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if r.netns != "" {
			// Its admin port is in the namespace: read the log instead.
			if b, _ := os.ReadFile(r.logPath); bytes.Contains(b, []byte("registrar ready")) {
				return
			}
		} else if res, err := http.Get("http://" + r.admin + "/healthz"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		select {
		case <-r.done:
			r.t.Fatalf("registrar exited at start-up:\n%s", r.logTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
	r.t.Fatalf("registrar not healthy within 10 s:\n%s", r.logTail())
}

// stop ends the process with SIGTERM, and SIGKILL if it lingers.
func (r *registrar) stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	select {
	case <-r.done:
		return
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
		r.t.Errorf("registrar did not stop on SIGTERM within 5 s")
	}
	if r.t.Failed() {
		r.t.Logf("registrar log tail:\n%s", r.logTail())
	}
}

// kill9 kills the process without warning, as a crash would.
func (r *registrar) kill9() {
	r.t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		r.t.Fatal(err)
	}
	<-r.done
}

func (r *registrar) alive() bool {
	select {
	case <-r.done:
		return false
	default:
		return r.cmd.Process.Signal(syscall.Signal(0)) == nil
	}
}

func (r *registrar) logTail() string { return tail(r.logPath, 40) }

// netns creates a network namespace with only loopback up, removed at the
// end of the test. Whatever is sent inside it to any address but loopback
// fails on the spot: nothing leaves the machine.
func netns(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("sipline-it-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add (needs root and iproute2): %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set lo up: %v: %s", err, out)
	}
	return name
}

func (r *registrar) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

// registrations returns the /registrations JSON.
func (r *registrar) registrations() string {
	res, err := http.Get("http://" + r.admin + "/registrations")
	if err != nil {
		return err.Error()
	}
	defer res.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(res.Body)
	return b.String()
}

// waitFor polls until cond holds, for at most d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ua is one sipp user agent.
type ua struct {
	t        *testing.T
	name     string
	dir      string
	port     int
	cmd      *exec.Cmd
	done     chan error
	out      bytes.Buffer
	scenario string
}

var placeholder = regexp.MustCompile(`@[A-Z]+@`)

// scenario copies a scenario file to dir with its @PLACEHOLDERS@ filled.
func scenario(t *testing.T, dir, name string, vars map[string]string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("sipp", name))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for k, v := range vars {
		s = strings.ReplaceAll(s, "@"+k+"@", v)
	}
	if m := placeholder.FindString(s); m != "" {
		t.Fatalf("scenario %s: placeholder %s left unfilled", name, m)
	}
	out := filepath.Join(dir, name)
	if err := os.WriteFile(out, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

// sipp starts a sipp UA named user, on transport "u1" or "t1", running the
// scenario sf (already filled) against the registrar, for one call. Every
// run is bounded by timeout.
func sipp(t *testing.T, r *registrar, user, transport, sf string, timeout time.Duration, extra ...string) *ua {
	t.Helper()
	u := &ua{t: t, name: user, dir: t.TempDir(), port: freePort(t), done: make(chan error, 1), scenario: sf}
	args := []string{"-sf", sf, "-s", user, "-au", user, "-ap", user + "-secret",
		"-t", transport, "-i", "127.0.0.1", "-p", strconv.Itoa(u.port), "-m", "1",
		"-timeout", strconv.Itoa(int(timeout.Seconds())) + "s", "-timeout_error",
		"-recv_timeout", "10000", "-nostdin", "-trace_err", "-trace_msg", r.addr()}
	args = append(args[:len(args)-1], append(extra, args[len(args)-1])...)
	u.cmd = exec.Command("sipp", args...)
	u.cmd.Dir = u.dir
	u.cmd.Stdout, u.cmd.Stderr = &u.out, &u.out
	if err := u.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { u.done <- u.cmd.Wait() }()
	t.Cleanup(func() {
		if u.cmd.ProcessState == nil {
			_ = u.cmd.Process.Kill()
		}
	})
	return u
}

// wait returns sipp's result, bounded by d.
func (u *ua) wait(d time.Duration) error {
	select {
	case err := <-u.done:
		u.done <- err
		return err
	case <-time.After(d):
		_ = u.cmd.Process.Kill()
		return fmt.Errorf("sipp %s still running after %s", u.name, d)
	}
}

// mustPass fails the test with sipp's and the registrar's logs unless the
// UA's scenario succeeded.
func (u *ua) mustPass(r *registrar, d time.Duration) {
	u.t.Helper()
	if err := u.wait(d); err != nil {
		u.t.Fatalf("sipp %s (%s): %v\n%s", u.name, filepath.Base(u.scenario), err, u.logs(r))
	}
}

// messages returns sipp's message trace.
func (u *ua) messages() string {
	files, _ := filepath.Glob(filepath.Join(u.dir, "*_messages.log"))
	var b strings.Builder
	for _, f := range files {
		data, _ := os.ReadFile(f)
		b.Write(data)
	}
	return b.String()
}

func (u *ua) logs(r *registrar) string {
	var b strings.Builder
	fmt.Fprintf(&b, "--- sipp %s output:\n%s\n", u.name, tailString(u.out.String(), 20))
	files, _ := filepath.Glob(filepath.Join(u.dir, "*_errors.log"))
	for _, f := range files {
		fmt.Fprintf(&b, "--- %s:\n%s\n", filepath.Base(f), tail(f, 20))
	}
	fmt.Fprintf(&b, "--- sipp %s messages (tail):\n%s\n", u.name, tailString(u.messages(), 60))
	if r != nil {
		fmt.Fprintf(&b, "--- registrar log (tail):\n%s\n", r.logTail())
	}
	return b.String()
}

func tailString(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// contact is the Contact a sipp UA registers.
const contact = "<sip:[service]@[local_ip]:[local_port];transport=[transport]>"

// register runs one REGISTER exchange and returns the UA; it holds the UA
// up for hold afterwards (with the ooc scenario answering calls).
func register(t *testing.T, r *registrar, user, transport string, final int, expires string, hold time.Duration, ooc string) *ua {
	t.Helper()
	dir := t.TempDir()
	sf := scenario(t, dir, "register.xml", map[string]string{
		"CONTACT": contact, "EXPIRES": expires, "FINAL": strconv.Itoa(final), "HOLD": strconv.Itoa(int(hold.Milliseconds())),
	})
	var extra []string
	if ooc != "" {
		// -rtp_echo sends back the RTP a call brings, on -mp.
		extra = []string{"-oocsf", scenario(t, dir, ooc, nil), "-rtp_echo", "-mp", strconv.Itoa(freePort(t))}
	}
	return sipp(t, r, user, transport, sf, hold+20*time.Second, extra...)
}

// registered waits until u's user has a binding over transport.
func registered(t *testing.T, r *registrar, u *ua, transport string) {
	t.Helper()
	user := u.name
	waitFor(t, 10*time.Second, user+" registered over "+transport, func() bool {
		select {
		case err := <-u.done:
			u.done <- err
			if err != nil {
				t.Fatalf("sipp %s failed: %v\n%s", user, err, u.logs(r))
			}
		default:
		}
		return registeredOver(r, user, transport)
	})
}

func transportName(t string) string {
	if t == "t1" {
		return "TCP"
	}
	return "UDP"
}
