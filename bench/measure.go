package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// sipAnswers sends one OPTIONS over UDP and reports whether any response
// came back within d.
func sipAnswers(addr string, d time.Duration) bool {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return false
	}
	defer conn.Close()
	local := conn.LocalAddr().String()
	msg := fmt.Sprintf("OPTIONS sip:%[1]s SIP/2.0\r\nVia: SIP/2.0/UDP %[2]s;branch=z9hG4bK-probe%[3]d;rport\r\n"+
		"Max-Forwards: 70\r\nFrom: <sip:probe@%[2]s>;tag=p%[3]d\r\nTo: <sip:%[1]s>\r\nCall-ID: probe-%[3]d\r\n"+
		"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n", addr, local, time.Now().UnixNano())
	if _, err := conn.Write([]byte(msg)); err != nil {
		time.Sleep(d)
		return false
	}
	_ = conn.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 2048)
	n, err := conn.Read(buf)
	return err == nil && bytes.HasPrefix(buf[:n], []byte("SIP/2.0 "))
}

func httpGet(url string) (string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	res, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return string(b), err
}

// bindings registers many users to each server, reads their memory, then
// restarts ours and times how soon it answers SIP again.
func (h *harness) bindings(r *Report) error {
	n := h.plan.bindings
	r.Bindings = n
	users, err := h.usersFile(n)
	if err != nil {
		return err
	}
	rate := min(5000, n)
	fill := func(s *server) error {
		// A REGISTER may wait out a stall of the machine here: sipp
		// retransmits it for 10 s, not the load tests' 2 s. This step
		// measures memory, not loss; one run at 08:08 UTC ended with 2 of
		// 100,000 lost at 2 s.
		st, _, err := h.sipp(s, "register_open.xml", rate, n, 0, "-inf", users, "-recv_timeout", "10000")
		if err != nil {
			return err
		}
		if st.OK < n {
			return fmt.Errorf("%s: only %d of %d registrations went through", s.who, st.OK, n)
		}
		return nil
	}

	dir := h.scratch("bindings-ours")
	ours, err := h.start("ours", false, "bolt", dir, 0)
	if err != nil {
		return err
	}
	if err := fill(ours); err != nil {
		ours.stop()
		return err
	}
	if got := ours.gauge("sip_bindings_active"); got != float64(n) {
		ours.stop()
		return fmt.Errorf("ours holds %.0f bindings, want %d", got, n)
	}
	r.RSSAfterLoadMiB = rssMiB(ours.cmd.Process.Pid)
	// Ours' heap floor hands the load's garbage back once the registrar
	// has been quiet for 15 s (internal/gcfloor); the answers kept for
	// retransmissions are gone after 8 s.
	time.Sleep(h.plan.quiet)
	r.RSSQuietMiB, r.Quiet = rssMiB(ours.cmd.Process.Pid), h.plan.quiet.String()
	ours.stop()

	// The restart: from exec to the first SIP answer, with every binding
	// loaded back from disk.
	start := time.Now()
	if err := ours.restart(); err != nil {
		return err
	}
	again := ours
	r.RestartToServing = time.Since(start).Round(time.Millisecond).String()
	if err := again.waitAdmin(); err != nil {
		again.stop()
		return err
	}
	got := again.gauge("sip_bindings_active")
	r.RSSMiB = rssMiB(again.cmd.Process.Pid)
	again.stop()
	if got != float64(n) {
		return fmt.Errorf("after the restart ours holds %.0f bindings, want %d", got, n)
	}
	h.log.Printf("%d bindings: ours %.1f MiB after the load, %.1f MiB %s later, %.1f MiB after a restart; restart to serving %s", n, r.RSSAfterLoadMiB, r.RSSQuietMiB, r.Quiet, r.RSSMiB, r.RestartToServing)

	kam, err := h.start("kamailio", false, "", h.scratch("bindings-kamailio"), 0)
	if err != nil {
		return err
	}
	defer kam.stop()
	if err := fill(kam); err != nil {
		return err
	}
	r.KamailioRSSMiB = treePSSMiB(kam.cmd.Process.Pid)
	return nil
}

// restart starts a stopped server again: the same command, config and
// addresses.
func (s *server) restart() error {
	var err error
	if s.proc, err = startProc(s.who+"-restart", s.dir, exec.Command(s.cmd.Path, s.cmd.Args[1:]...)); err != nil {
		return err
	}
	return s.waitReady()
}

// gauge reads one metric of ours from /metrics.
func (s *server) gauge(name string) float64 {
	body, err := httpGet("http://" + s.admin + "/metrics")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return -1
}

// rssMiB is a process's resident memory.
func rssMiB(pid int) float64 {
	return statusField(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:") / 1024
}

// treePSSMiB is the proportional memory of a process and its children:
// Kamailio's workers share its memory, so their RSS would count it many
// times.
func treePSSMiB(pid int) float64 {
	var total float64
	for _, p := range tree(pid) {
		total += statusField(fmt.Sprintf("/proc/%d/smaps_rollup", p), "Pss:")
	}
	return total / 1024
}

// tree is pid and its children.
func tree(pid int) []int {
	out := []int{pid}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

// statusField is the number after key in a /proc file of "key: value"
// lines (kB for sizes), or 0.
func statusField(path, key string) float64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseFloat(f[0], 64)
				return n
			}
		}
	}
	return 0
}

// usage is what a process and its children have spent so far (Kamailio
// works in child processes): CPU time, in clock ticks (100/s), and how
// many times their threads went to sleep.
type usage struct{ ticks, sleeps int }

func treeUsage(pid int) usage {
	var u usage
	for _, p := range tree(pid) {
		t, _ := cpuTicks(p)
		u.ticks += t
		u.sleeps += sleeps(p)
	}
	return u
}

func (u usage) sub(v usage) usage { return usage{u.ticks - v.ticks, u.sleeps - v.sleeps} }

// sleeps is how many times pid's threads have gone to sleep so far: their
// voluntary context switches, from /proc/pid/task/*/status. Threads
// that have ended no longer count; a Go program ends few.
func sleeps(pid int) int {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	total := 0
	for _, t := range tasks {
		total += int(statusField(fmt.Sprintf("/proc/%d/task/%s/status", pid, t.Name()), "voluntary_ctxt_switches:"))
	}
	return total
}

// socketDrops is how many datagrams the kernel has dropped so far on the
// UDP sockets bound to port on 127.0.0.1, for a full receive buffer: the
// last column of /proc/net/udp. A server that stops reading for long
// enough loses requests there, and its UAs see timeouts.
func socketDrops(port int) int {
	b, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return 0
	}
	local := fmt.Sprintf("0100007F:%04X", port)
	total := 0
	for _, line := range strings.Split(string(b), "\n")[1:] {
		// sl local_address rem_address st ... drops
		f := strings.Fields(line)
		if len(f) > 2 && f[1] == local {
			n, _ := strconv.Atoi(f[len(f)-1])
			total += n
		}
	}
	return total
}

// cpuTicks is a process's user and system time, in clock ticks (100/s).
func cpuTicks(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	// After the command: state(0) ppid(1) ... utime(11) stime(12).
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	u, _ := strconv.Atoi(f[11])
	s, _ := strconv.Atoi(f[12])
	return u + s, nil
}

// phoneCPU puts two of our phones in a call that sends and records tones,
// and reads how much CPU each uses in steady state.
func (h *harness) phoneCPU(r *Report) error {
	reg, err := h.start("ours", true, "memory", h.scratch("phone-registrar"), 0)
	if err != nil {
		return err
	}
	defer reg.stop()
	dir := h.scratch("phones")
	phone := func(user string, args ...string) (*proc, error) {
		cfg := filepath.Join(dir, user+".yaml")
		text := fmt.Sprintf("user: %[1]s\npassword: %[1]s-secret\ndomain: 127.0.0.1\nregistrar: %[2]s\ntransport: udp\nlisten: 127.0.0.1:0\nlog: {level: warn}\n", user, reg.addr)
		if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
			return nil, err
		}
		args = append([]string{"-config", cfg, "-loop", "-record", filepath.Join(dir, user+"-heard.wav")}, args...)
		return startProc(user, dir, exec.Command(filepath.Join(h.bin, "phone"), args...))
	}
	bob, err := phone("bob", "-auto-answer", "-play", "tone:440")
	if err != nil {
		return err
	}
	defer bob.stop()
	if err := waitLog(bob, "[registered]", 10*time.Second); err != nil {
		return err
	}
	length := h.plan.phoneCall
	alice, err := phone("alice", "-call", "bob", "-play", "tone:1000", "-hangup-after", (length + 3*time.Second).String(), "-exit-after-call")
	if err != nil {
		return err
	}
	defer alice.stop()
	if err := waitLog(alice, "[answered]", 10*time.Second); err != nil {
		return err
	}
	time.Sleep(time.Second) // past set-up
	pids := []int{alice.cmd.Process.Pid, bob.cmd.Process.Pid}
	before := make([]int, len(pids))
	for i, pid := range pids {
		if before[i], err = cpuTicks(pid); err != nil {
			return err
		}
	}
	time.Sleep(length)
	var total float64
	for i, pid := range pids {
		after, err := cpuTicks(pid)
		if err != nil {
			return err
		}
		total += float64(after-before[i]) / 100 / length.Seconds() * 100
	}
	r.PhoneCPUPerCall = total / float64(len(pids))
	r.PhoneCallMeasured = fmt.Sprintf("mean of both phones of one PCMU call, over %v", length)
	return nil
}

func waitLog(p *proc, s string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		b, _ := os.ReadFile(p.logPath)
		if bytes.Contains(b, []byte(s)) {
			return nil
		}
		if time.Now().After(deadline) || !p.alive() {
			return fmt.Errorf("no %q within %v:\n%s", s, d, p.tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
