package integration_test

// Interop with real third-party SIP software from Debian: linphonec,
// baresip and Kamailio. Every call carries a tone each way: the caller
// (alice) sends 1000 Hz, the callee (bob) 440 Hz, and each side's
// recording is checked for the right tone, its duration, and the absence
// of its own. The results go to a matrix on stdout and to
// interop-report.json at the repository's root.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/sipline/sipline/media/mediatest"
)

// callLength is how long each call lasts once answered.
const callLength = 7 * time.Second

// interopRow is one line of the report.
type interopRow struct {
	Case      string `json:"case"`
	Caller    string `json:"caller"`
	Callee    string `json:"callee"`
	Registrar string `json:"registrar"`
	Transport string `json:"transport"`
	Codec     string `json:"codec"`
	Result    string `json:"result"`
	// One-way delays: the tone's onset in what the receiver recorded, less
	// its onset in what the sender sent. Both start at media start.
	DelayCallerToCalleeMs *float64 `json:"delay_caller_to_callee_ms,omitempty"`
	DelayCalleeToCallerMs *float64 `json:"delay_callee_to_caller_ms,omitempty"`
	// What our phone measured, when it is in the call.
	LossPercent *float64 `json:"phone_loss_percent,omitempty"`
	JitterMs    *float64 `json:"phone_jitter_ms,omitempty"`
}

var interopReport struct {
	sync.Mutex
	rows []interopRow
}

// writeInteropReport prints the matrix and writes interop-report.json, if
// any interop case ran.
func writeInteropReport() {
	interopReport.Lock()
	defer interopReport.Unlock()
	rows := interopReport.rows
	if len(rows) == 0 {
		return
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Case < rows[j].Case })
	ms := func(v *float64) string {
		if v == nil {
			return "-"
		}
		return strconv.FormatFloat(*v, 'f', 0, 64)
	}
	pct := func(v *float64, unit string) string {
		if v == nil {
			return "-"
		}
		return strconv.FormatFloat(*v, 'f', 1, 64) + unit
	}
	fmt.Println("\ninterop matrix (delays in ms; loss and jitter as our phone saw them):")
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "case\tcaller\tcallee\tregistrar\ttransport\tcodec\tresult\tdelay →\tdelay ←\tloss\tjitter")
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Case, r.Caller, r.Callee, r.Registrar, r.Transport, r.Codec,
			r.Result, ms(r.DelayCallerToCalleeMs), ms(r.DelayCalleeToCallerMs), pct(r.LossPercent, "%"), pct(r.JitterMs, " ms"))
	}
	w.Flush()
	path := os.Getenv("INTEROP_REPORT")
	if path == "" {
		path = filepath.Join("..", "interop-report.json")
	}
	b, _ := json.MarshalIndent(rows, "", "  ")
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "interop report:", err)
		return
	}
	abs, _ := filepath.Abs(path)
	fmt.Println("interop report written to", abs)
}

// interopCase is one call between two parties.
type interopCase struct {
	caller, callee string // "phone", "baresip" or "linphonec"
	transport      string // "udp" or "tcp"
	codec          string // the peer's only codec
	kamailio       bool   // register to Kamailio instead of our registrar
	hangup         string // who hangs up: "caller" or "callee"
	hold           string // who holds at 2 s and resumes at 4 s, if anyone
	dtmf           string // who sends DTMF after the tones, if anyone
}

func (c interopCase) name() string {
	n := fmt.Sprintf("%s-calls-%s/%s/%s", c.caller, c.callee, c.transport, c.codec)
	if c.kamailio {
		n += "/via-kamailio"
	}
	if c.hold != "" {
		n += "/hold-by-" + c.hold
	}
	if c.dtmf != "" {
		n += "/dtmf-from-" + c.dtmf
	}
	return n + "/hangup-by-" + c.hangup
}

// party is one side of a call: our phone or a peer.
type party struct {
	kind  string
	user  string
	port  int // SIP
	tone  float64
	phone *phoneProc
	heard string // our phone's recording
	peer  peer
}

func (p *party) established() bool {
	if p.phone != nil {
		return strings.Contains(p.phone.out.String(), "[answered]")
	}
	switch p.kind {
	case "baresip":
		return strings.Contains(p.peer.Proc().log(), "Call established")
	default:
		return strings.Contains(p.peer.Proc().log(), "Media streams established")
	}
}

func (p *party) recording(t *testing.T) string {
	if p.phone != nil {
		return p.heard
	}
	return p.peer.Heard(t)
}

func TestInterop(t *testing.T) {
	var cases []interopCase
	for _, peer := range []string{"baresip", "linphonec"} {
		for _, transport := range []string{"udp", "tcp"} {
			for _, codec := range []string{"PCMU", "PCMA"} {
				out := interopCase{caller: "phone", callee: peer, transport: transport, codec: codec, hangup: "caller"}
				in := interopCase{caller: peer, callee: "phone", transport: transport, codec: codec, hangup: "caller"}
				if transport == "udp" && codec == "PCMU" {
					out.dtmf, in.dtmf = "caller", "caller"
				}
				cases = append(cases, out, in)
			}
		}
		// Hangup from the other side, and hold both ways.
		cases = append(cases,
			interopCase{caller: "phone", callee: peer, transport: "udp", codec: "PCMU", hangup: "callee"},
			interopCase{caller: "phone", callee: peer, transport: "udp", codec: "PCMU", hangup: "caller", hold: "caller"},
			interopCase{caller: "phone", callee: peer, transport: "udp", codec: "PCMU", hangup: "caller", hold: "callee"})
	}
	cases = append(cases,
		interopCase{caller: "linphonec", callee: "baresip", transport: "udp", codec: "PCMU", hangup: "caller"},
		interopCase{caller: "baresip", callee: "linphonec", transport: "udp", codec: "PCMU", hangup: "callee"},
		interopCase{caller: "phone", callee: "baresip", transport: "udp", codec: "PCMU", hangup: "caller", kamailio: true})
	for _, c := range cases {
		t.Run(c.name(), func(t *testing.T) { runInterop(t, c) })
	}
}

// registeredOver reports whether user has a binding over transport.
func registeredOver(r *registrar, user, transport string) bool {
	regs := r.registrations()
	i := strings.Index(regs, `"sip:`+user+`@`)
	if i < 0 {
		return false
	}
	entry := regs[i:]
	if j := strings.Index(entry, `"aor"`); j >= 0 {
		entry = entry[:j]
	}
	return strings.Contains(entry, `"transport": "`+strings.ToUpper(transport)+`"`)
}

var summaryRE = regexp.MustCompile(`codec (\S+), .*lost \d+ \(([\d.]+)%\), jitter ([\d.]+) ms`)

func runInterop(t *testing.T, c interopCase) {
	row := interopRow{Case: c.name(), Caller: c.caller, Callee: c.callee, Registrar: "sipline", Transport: c.transport, Codec: c.codec}
	if c.kamailio {
		row.Registrar = "kamailio"
	}
	t.Cleanup(func() {
		row.Result = "pass"
		if t.Failed() {
			row.Result = "FAIL"
		}
		interopReport.Lock()
		interopReport.rows = append(interopReport.rows, row)
		interopReport.Unlock()
	})

	caller := &party{kind: c.caller, user: "alice", port: freePort(t), tone: 1000}
	callee := &party{kind: c.callee, user: "bob", port: freePort(t), tone: 440}
	var regAddr string
	var r *registrar
	if c.kamailio {
		k := startKamailio(t, map[string]string{"alice": "alice-secret", "bob": "bob-secret"})
		regAddr = k.addr()
	} else {
		r = startRegistrar(t, regOpts{})
		regAddr = r.addr()
	}
	regPort, _ := strconv.Atoi(regAddr[strings.LastIndex(regAddr, ":")+1:])
	startCapture(t, regPort, caller.port, callee.port)

	long := c.hold != ""
	start := func(p *party, args ...string) {
		t.Helper()
		if p.kind == "phone" {
			p.heard = filepath.Join(t.TempDir(), p.user+"-heard.wav")
			tone := toneFile(t, p.tone)
			if long {
				tone = toneFileOf(t, p.tone, 0, 10*time.Second)
			}
			args = append([]string{"-listen", "127.0.0.1:" + strconv.Itoa(p.port), "-play", tone, "-record", p.heard, "-exit-after-call"}, args...)
			p.phone = startPhoneWith(t, phoneOpts{bin: phoneBin, registrar: regAddr}, p.user, c.transport, args...)
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("--- our phone (%s) output (tail):\n%s", p.user, tailString(p.phone.out.String(), 40))
				}
			})
			waitFor(t, 10*time.Second, p.user+" (phone) to register", func() bool { return strings.Contains(p.phone.out.String(), "[registered]") })
			return
		}
		o := peerOpts{user: p.user, sipPort: p.port, registrar: regAddr, transport: c.transport, codec: c.codec, tone: p.tone, long: long}
		if p.kind == "baresip" {
			p.peer = startBaresip(t, o)
		} else {
			p.peer = startLinphonec(t, o)
		}
		waitFor(t, 10*time.Second, p.user+" ("+p.kind+") to register", func() bool {
			if r == nil {
				return strings.Contains(p.peer.Proc().log(), "200 OK")
			}
			return registeredOver(r, p.user, c.transport)
		})
	}

	start(callee, "-auto-answer")
	var args []string
	if c.caller == "phone" {
		args = append(args, "-call", callee.user)
		if c.hangup == "caller" {
			args = append(args, "-hangup-after", callLength.String())
		}
		if c.dtmf == "caller" {
			args = append(args, "-dtmf", "159#", "-dtmf-at", "4500ms")
		}
	}
	start(caller, args...)
	if caller.peer != nil {
		caller.peer.Dial(t, callee.user)
	}
	waitFor(t, 10*time.Second, "the call to be established", func() bool { return caller.established() && callee.established() })
	answered := time.Now()
	at := func(d time.Duration) { time.Sleep(time.Until(answered.Add(d))) }

	parties := map[string]*party{"caller": caller, "callee": callee}
	if h := parties[c.hold]; h != nil {
		at(2 * time.Second)
		if h.phone != nil {
			fmt.Fprintln(h.phone.stdin, "hold")
		} else {
			h.peer.Hold(t)
		}
		at(4 * time.Second)
		if h.phone != nil {
			fmt.Fprintln(h.phone.stdin, "resume")
		} else {
			h.peer.Resume(t)
		}
	}
	if d := parties[c.dtmf]; d != nil && d.peer != nil {
		at(4500 * time.Millisecond)
		d.peer.SendDTMF(t, "73*")
	}
	if h := parties[c.hangup]; h.phone == nil || c.hangup == "callee" {
		at(callLength)
		if h.phone != nil {
			fmt.Fprintln(h.phone.stdin, "hangup")
		} else {
			h.peer.Hangup(t)
		}
	}

	// Both sides end the call: our phone exits, a peer has no call left.
	for _, p := range []*party{caller, callee} {
		if p.phone != nil {
			p.phone.wait(t, callLength+15*time.Second, nil)
		} else {
			p.peer.WaitIdle(t, 15*time.Second)
		}
	}

	// Signalling results.
	for _, p := range []*party{caller, callee} {
		if p.phone == nil {
			continue
		}
		out := p.phone.out.String()
		m := summaryRE.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("our phone printed no call summary:\n%s", out)
		}
		if m[1] != c.codec {
			t.Errorf("our phone used %s, want %s forced on the peer", m[1], c.codec)
		}
		loss, _ := strconv.ParseFloat(m[2], 64)
		jitter, _ := strconv.ParseFloat(m[3], 64)
		row.LossPercent, row.JitterMs = &loss, &jitter
		if c.hold != "" && strings.Count(out, "[updated]") != 2 {
			t.Errorf("our phone saw %d media updates, want hold then resume:\n%s", strings.Count(out, "[updated]"), out)
		}
	}
	if d := parties[c.dtmf]; d != nil {
		other := callee
		if d == callee {
			other = caller
		}
		want, got := "159#", ""
		if d.peer != nil {
			want = "73*"
		}
		if other.phone != nil {
			for _, line := range strings.Split(other.phone.out.String(), "\n") {
				if f := strings.Fields(line); len(f) == 4 && f[0] == "[dtmf]" {
					got += f[3]
				}
			}
		} else {
			got = other.peer.ReceivedDTMF()
		}
		if got != want {
			t.Errorf("%s received DTMF %q, want %q", other.kind, got, want)
		}
	}

	// Audio, each way.
	if long {
		checkHold(t, parties[c.hold], caller, callee)
		return
	}
	toCallee := checkTone(t, callee.kind+" (callee)", callee.recording(t), caller.tone, callee.tone)
	toCaller := checkTone(t, caller.kind+" (caller)", caller.recording(t), callee.tone, caller.tone)
	a, b := float64(toCallee.Milliseconds()), float64(toCaller.Milliseconds())
	row.DelayCallerToCalleeMs, row.DelayCalleeToCallerMs = &a, &b
	t.Logf("one-way delay: %s→%s %v, %s→%s %v", c.caller, c.callee, toCallee, c.callee, c.caller, toCaller)
}

// checkHold checks our phone's side of a hold at 2 s and a resume at 4 s.
// Our phone sends nothing while held or holding, which its packet count
// shows. Its recording runs in real time: it has the peer's tone before
// and after, and silence in between when our phone held, since the peer
// then answered recvonly. A peer that holds may send music on hold (a=
// sendonly allows it): linphonec keeps sending its file. Peers' recordings
// skip what they did not receive, so they are only checked for our tone.
func checkHold(t *testing.T, holder *party, parties ...*party) {
	t.Helper()
	for i, p := range parties {
		other := parties[1-i]
		if p.phone == nil {
			pcm, rate := readWAV(t, p.recording(t))
			if _, _, ok := mediatest.Span(pcm, other.tone, rate, 0.02); !ok {
				t.Errorf("%s heard no %.0f Hz", p.kind, other.tone)
			}
			continue
		}
		before := windowPower(t, p.heard, other.tone, 500*time.Millisecond, 1500*time.Millisecond)
		held := windowPower(t, p.heard, other.tone, 2600*time.Millisecond, 3600*time.Millisecond)
		after := windowPower(t, p.heard, other.tone, 5000*time.Millisecond, 6000*time.Millisecond)
		t.Logf("our phone hears %.0f Hz at power %.3f before hold, %.4f held, %.3f after resume", other.tone, before, held, after)
		if before < 0.02 || after < 0.02 {
			t.Errorf("our phone did not hear the %s before the hold and after the resume", other.kind)
		}
		if p == holder && held > 0.002 {
			t.Errorf("our phone held the call, but the %s went on sending", other.kind)
		}
		m := sentRE.FindStringSubmatch(p.phone.out.String())
		if m == nil {
			t.Fatalf("no packet count in our phone's summary")
		}
		// 20 ms packets for the call, less the 2 s on hold.
		sent, _ := strconv.Atoi(m[1])
		if max := int((callLength - 1500*time.Millisecond) / (20 * time.Millisecond)); sent > max {
			t.Errorf("our phone sent %d packets in a %v call with 2 s on hold; want at most %d", sent, callLength, max)
		}
	}
}

var sentRE = regexp.MustCompile(`packets sent (\d+)`)
