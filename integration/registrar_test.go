package integration_test

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRegisterWithDigest(t *testing.T) {
	r := startRegistrar(t, regOpts{})
	tests := []struct {
		name      string
		user      string
		transport string
		expires   string
		final     int
		check     func(t *testing.T, msgs string)
	}{
		{name: "401 then 200 over UDP", user: "alice", transport: "u1", expires: "3600", final: 200,
			check: func(t *testing.T, msgs string) {
				if !strings.Contains(msgs, ";expires=3600") {
					t.Errorf("the 200 OK does not list the contact with its expiry")
				}
			}},
		{name: "401 then 200 over TCP", user: "bob", transport: "t1", expires: "600", final: 200},
		{name: "a wrong password gets 401 again", user: "mallory", transport: "u1", expires: "3600", final: 401},
		{name: "too short an expiry gets 423 with Min-Expires", user: "carol", transport: "u1", expires: "30", final: 423,
			check: func(t *testing.T, msgs string) {
				if !strings.Contains(msgs, "Min-Expires: 60") {
					t.Errorf("the 423 lacks Min-Expires: 60")
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := register(t, r, tt.user, tt.transport, tt.final, tt.expires, 0, "")
			u.mustPass(r, 20*time.Second)
			if tt.check != nil {
				tt.check(t, u.messages())
			}
		})
	}
	if regs := r.registrations(); !strings.Contains(regs, "sip:alice@127.0.0.1") || strings.Contains(regs, "carol") || strings.Contains(regs, "mallory") {
		t.Fatalf("registrations after the exchanges:\n%s", regs)
	}
}

func TestUnregisterWithStar(t *testing.T) {
	r := startRegistrar(t, regOpts{})
	alice := register(t, r, "alice", "u1", 200, "3600", 0, "")
	alice.mustPass(r, 20*time.Second)
	registered(t, r, alice, "UDP")
	sf := scenario(t, t.TempDir(), "register.xml", map[string]string{"CONTACT": "*", "EXPIRES": "0", "FINAL": "200", "HOLD": "0"})
	sipp(t, r, "alice", "u1", sf, 20*time.Second).mustPass(r, 20*time.Second)
	if regs := r.registrations(); strings.Contains(regs, "alice") {
		t.Fatalf("alice still registered after Contact: *:\n%s", regs)
	}
}

func TestCallThroughProxy(t *testing.T) {
	tests := []struct{ caller, callee string }{
		{"u1", "u1"}, {"t1", "t1"}, {"u1", "t1"}, {"t1", "u1"},
	}
	for _, tt := range tests {
		t.Run(transportName(tt.caller)+" to "+transportName(tt.callee), func(t *testing.T) {
			r := startRegistrar(t, regOpts{})
			bob := register(t, r, "bob", tt.callee, 200, "3600", 15*time.Second, "uas.xml")
			registered(t, r, bob, transportName(tt.callee))
			sf := scenario(t, t.TempDir(), "uac.xml", nil)
			alice := sipp(t, r, "alice", tt.caller, sf, 20*time.Second, "-key", "callee", "bob")
			alice.mustPass(r, 25*time.Second)
			msgs := bob.messages()
			for _, want := range []string{"INVITE sip:bob@", "Record-Route: <sip:ft-", "ACK sip:", "BYE sip:"} {
				if !strings.Contains(msgs, want) {
					t.Errorf("bob never saw %q\n%s", want, bob.logs(r))
				}
			}
			if strings.Contains(msgs, "Proxy-Authorization") {
				t.Errorf("the proxy passed alice's credentials on to bob")
			}
			// From UDP to UDP, the socket reader proxies the INVITE with
			// a transaction of its own (registrar/invite.go), and the ACK
			// and the BYE are relayed without one (registrar/relay.go),
			// and so is bob's 200 to the BYE, which alice's scenario
			// waits for.
			udp := tt.caller == "u1" && tt.callee == "u1"
			head := messageHead(msgs, "INVITE sip:")
			// Its branches end in ".t", the connection's random prefix in
			// base32 and a dot (registrar/invite.go); sipgo's proxy path ends
			// them in ten letters, which may start with a "t" too.
			if got := regexp.MustCompile(`;branch=z9hG4bK-sl[0-9a-f]{12}\.t[A-Z2-7]{10}\.`).MatchString(head); got != udp {
				t.Errorf("INVITE proxied by the socket reader: %v, want %v\n%s", got, udp, head)
			}
			for _, m := range []string{"ACK sip:", "BYE sip:"} {
				head := messageHead(msgs, m)
				if got, want := strings.Contains(head, ";branch=z9hG4bK-sl."), udp; got != want {
					t.Errorf("%s relayed statelessly: %v, want %v\n%s", m, got, want, head)
				}
			}
		})
	}
}

// A re-INVITE refused with 488 inside a call: the caller's ACK for the
// 488 is for the proxy's INVITE transaction, which ACKed the 488 to bob
// itself (RFC 3261 §17.1.1.3), while the ACK for the call's 200 is
// relayed statelessly. bob gets each once.
func TestRefusedReinviteACKEndsAtTheProxy(t *testing.T) {
	r := startRegistrar(t, regOpts{})
	bob := register(t, r, "bob", "u1", 200, "3600", 15*time.Second, "uas_reinvite.xml")
	registered(t, r, bob, "UDP")
	sf := scenario(t, t.TempDir(), "uac_reinvite.xml", nil)
	sipp(t, r, "alice", "u1", sf, 20*time.Second, "-key", "callee", "bob").mustPass(r, 25*time.Second)
	var relayed, ours int
	seen := map[string]bool{}
	for rest := bob.messages(); ; {
		i := strings.Index(rest, "ACK sip:")
		if i < 0 {
			break
		}
		head := messageHead(rest[i:], "ACK sip:")
		rest = rest[i+len(head):]
		if seen[head] {
			continue // an ACK again, for bob's 200 resent on a slow machine
		}
		seen[head] = true
		switch {
		case strings.Contains(head, ";branch=z9hG4bK-sl."):
			relayed++
		case strings.Contains(head, ";branch=z9hG4bK-sl"):
			ours++
		default:
			t.Errorf("bob got an ACK not from the proxy:\n%s", head)
		}
	}
	if relayed != 1 || ours != 1 {
		t.Errorf("bob got %d ACKs relayed and %d from the proxy's transaction, want 1 and 1\n%s", relayed, ours, bob.logs(r))
	}
}

// messageHead is the head of the first message in a sipp message log
// that starts with start.
func messageHead(log, start string) string {
	i := strings.Index(log, start)
	if i < 0 {
		return ""
	}
	head, _, _ := strings.Cut(log[i:], "\r\n\r\n")
	return head
}

func TestCancelWhileRinging(t *testing.T) {
	r := startRegistrar(t, regOpts{})
	bob := register(t, r, "bob", "u1", 200, "3600", 15*time.Second, "uas_cancel.xml")
	registered(t, r, bob, "UDP")
	sf := scenario(t, t.TempDir(), "uac_cancel.xml", nil)
	sipp(t, r, "alice", "u1", sf, 20*time.Second, "-key", "callee", "bob").mustPass(r, 25*time.Second)
	waitFor(t, 10*time.Second, "bob to see the CANCEL and the ACK for 487", func() bool {
		m := bob.messages()
		return strings.Contains(m, "CANCEL sip:bob@") && strings.Count(m, "ACK sip:") >= 1
	})
}

func TestCallFailures(t *testing.T) {
	r := startRegistrar(t, regOpts{})
	tests := []struct {
		name   string
		callee string
		final  string
	}{
		{name: "an unknown user gets 404", callee: "nobody", final: "404"},
		{name: "a user without a binding gets 480", callee: "carol", final: "480"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sf := scenario(t, t.TempDir(), "uac_fail.xml", map[string]string{"FINAL": tt.final})
			sipp(t, r, "alice", "u1", sf, 20*time.Second, "-key", "callee", tt.callee).mustPass(r, 25*time.Second)
		})
	}
}

func TestClosedTCPFlowGets480AtOnce(t *testing.T) {
	r := startRegistrar(t, regOpts{})
	// bob registers over TCP and exits, which closes his connection.
	register(t, r, "bob", "t1", 200, "3600", 0, "").mustPass(r, 20*time.Second)
	waitFor(t, 5*time.Second, "bob's binding to go with his connection", func() bool {
		return !strings.Contains(r.registrations(), "sip:bob@")
	})
	start := time.Now()
	sf := scenario(t, t.TempDir(), "uac_fail.xml", map[string]string{"FINAL": "480"})
	sipp(t, r, "alice", "u1", sf, 20*time.Second, "-key", "callee", "bob").mustPass(r, 25*time.Second)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("480 took %s", d)
	}
}

func TestBindingSurvivesKill9(t *testing.T) {
	r := startRegistrar(t, regOpts{})
	bob := register(t, r, "bob", "u1", 200, "3600", 20*time.Second, "uas.xml")
	registered(t, r, bob, "UDP")
	r.kill9()
	r.start()
	if regs := r.registrations(); !strings.Contains(regs, "sip:bob@127.0.0.1") {
		t.Fatalf("bob's binding is gone after kill -9:\n%s", regs)
	}
	sf := scenario(t, t.TempDir(), "uac.xml", nil)
	sipp(t, r, "alice", "u1", sf, 20*time.Second, "-key", "callee", "bob").mustPass(r, 25*time.Second)
	if !strings.Contains(bob.messages(), "BYE sip:") {
		t.Fatalf("the call after the restart did not reach bob:\n%s", bob.logs(r))
	}
}

func TestOptionsPingAndCRLFKeepalive(t *testing.T) {
	r := startRegistrar(t, regOpts{})
	c, err := net.Dial("udp", r.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := exchange(t, c, "OPTIONS sip:"+r.addr()+" SIP/2.0\r\nVia: SIP/2.0/UDP "+c.LocalAddr().String()+";branch=z9hG4bK-opt1;rport\r\nFrom: <sip:probe@example.org>;tag=1\r\nTo: <sip:"+r.addr()+">\r\nCall-ID: opt-1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"); !strings.HasPrefix(got, "SIP/2.0 200") || !strings.Contains(got, "Allow:") {
		t.Fatalf("OPTIONS got:\n%s", got)
	}
	tc, err := net.Dial("tcp", r.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if _, err := tc.Write([]byte("\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = tc.SetReadDeadline(time.Now().Add(2 * time.Second))
	pong := make([]byte, 8)
	n, err := tc.Read(pong)
	if err != nil || string(pong[:n]) != "\r\n" {
		t.Fatalf("CRLFCRLF ping got %q, %v; want a CRLF pong", pong[:n], err)
	}
}

// exchange sends one datagram and returns the first reply.
func exchange(t *testing.T, c net.Conn, msg string) string {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 65536)
	n, err := c.Read(buf)
	if err != nil {
		return "no reply: " + err.Error()
	}
	return string(buf[:n])
}

func TestOversizedMessageIsRefused(t *testing.T) {
	r := startRegistrar(t, regOpts{})
	c, err := net.Dial("tcp", r.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	big := "MESSAGE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bK-big\r\nFrom: <sip:x@example.org>;tag=1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: big\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nContent-Length: 200000\r\n\r\n" + strings.Repeat("x", 200000)
	_, _ = c.Write([]byte(big))
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	reply, err := bufio.NewReader(c).ReadString('\n')
	if err == nil && strings.HasPrefix(reply, "SIP/2.0 2") {
		t.Fatalf("a 200 kB message was accepted: %q", reply)
	}
	if !r.alive() {
		t.Fatal("the registrar died")
	}
	register(t, r, "alice", "u1", 200, "3600", 0, "").mustPass(r, 20*time.Second)
}

// A 2xx to INVITE that matches no transaction, such as one the callee
// retransmits after the proxy let its transaction go (5 s after it
// ended), is forwarded to the next Via (RFC 3261 §16.7), with the
// proxy's own Via taken off.
func TestStrayResponsesAreForwarded(t *testing.T) {
	r := startRegistrar(t, regOpts{})
	caller, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close()
	callee, err := net.Dial("udp", r.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer callee.Close()
	port := caller.LocalAddr().(*net.UDPAddr).Port
	stray := func(i int, status string) {
		t.Helper()
		res := fmt.Sprintf("SIP/2.0 %s\r\n"+
			"Via: SIP/2.0/UDP %s;branch=z9hG4bK-sl0123456789ab.stray%d\r\n"+
			"Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK-caller%d;rport=%d;received=127.0.0.1\r\n"+
			"From: <sip:alice@127.0.0.1>;tag=a\r\nTo: <sip:bob@127.0.0.1>;tag=b\r\nCall-ID: stray-%d\r\nCSeq: 1 INVITE\r\n"+
			"Contact: <sip:bob@127.0.0.1:1>\r\nContent-Length: 0\r\n\r\n", status, r.addr(), i, port, i, port, i)
		if _, err := callee.Write([]byte(res)); err != nil {
			t.Fatal(err)
		}
	}
	// RFC 3261 §16.7: a final response that matches no transaction is
	// forwarded statelessly, whatever its status. A provisional one came
	// after its final response, and is dropped: the final response
	// after it is the first thing the caller gets.
	for i, status := range []string{"200 OK", "486 Busy Here"} {
		stray(2*i, "180 Ringing")
		stray(2*i+1, status)
		_ = caller.SetReadDeadline(time.Now().Add(3 * time.Second))
		buf := make([]byte, 4096)
		n, _, err := caller.ReadFrom(buf)
		if err != nil {
			t.Fatalf("%s: the caller got nothing: %v\n%s", status, err, r.logTail())
		}
		got := string(buf[:n])
		if !strings.HasPrefix(got, "SIP/2.0 "+status+"\r\n") || strings.Contains(got, "z9hG4bK-sl") ||
			!strings.Contains(got, fmt.Sprintf("branch=z9hG4bK-caller%d;", 2*i+1)) {
			t.Fatalf("%s: forwarded:\n%s", status, got)
		}
	}
}

// tortureDir finds sipgo's RFC 4475 torture messages in the module cache.
func tortureDir(t *testing.T) string {
	t.Helper()
	out, err := execOutput("go", "list", "-m", "-f", "{{.Dir}}", "github.com/emiago/sipgo")
	if err != nil {
		t.Fatalf("locate sipgo: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(out), "sip", "testdata", "torture")
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("torture corpus: %v", err)
	}
	return dir
}

// The torture messages name hosts such as example.com and 192.0.2.x in
// their Via and Request-URI, where the registrar would send its answers.
// So the registrar and the sender run in a network namespace of their own
// with only loopback: nothing they send can leave the machine.
func TestTortureMessagesDoNotCrash(t *testing.T) {
	ns := netns(t)
	r := startRegistrar(t, regOpts{netns: ns})
	sender := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run", "^TestTortureSender$", "-test.v", "-test.count=1")
	sender.Env = append(os.Environ(), "TORTURE_ADDR="+r.addr(), "TORTURE_DIR="+tortureDir(t))
	out, err := sender.CombinedOutput()
	if err != nil {
		t.Fatalf("torture sender: %v\n%s\n%s", err, out, r.logTail())
	}
	if !r.alive() {
		t.Fatalf("the registrar died:\n%s", r.logTail())
	}
	t.Logf("%s", bytes.TrimSpace(out))
}

// TestTortureSender runs inside TestTortureMessagesDoNotCrash's namespace;
// on its own it has nothing to do.
func TestTortureSender(t *testing.T) {
	addr, dir := os.Getenv("TORTURE_ADDR"), os.Getenv("TORTURE_DIR")
	if addr == "" {
		t.Skip("run by TestTortureMessagesDoNotCrash")
	}
	var files []string
	for _, sub := range []string{"valid", "invalid"} {
		fs, _ := filepath.Glob(filepath.Join(dir, sub, "*"))
		files = append(files, fs...)
	}
	if len(files) < 30 {
		t.Fatalf("only %d torture messages found in %s", len(files), dir)
	}
	answered := 0
	for _, f := range files {
		msg, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, network := range []string{"udp", "tcp"} {
			c, err := net.Dial(network, addr)
			if err != nil {
				t.Fatalf("%s after %s: %v", network, filepath.Base(f), err)
			}
			_, _ = c.Write(msg)
			_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			buf := make([]byte, 4096)
			if n, _ := c.Read(buf); n > 0 {
				answered++
			}
			c.Close()
		}
	}
	t.Logf("%d torture messages sent over UDP and TCP, %d answered on the sending socket", len(files), answered)
	// Still serving: OPTIONS over UDP and TCP get 200.
	for _, network := range []string{"udp", "tcp"} {
		c, err := net.Dial(network, addr)
		if err != nil {
			t.Fatal(err)
		}
		via := "SIP/2.0/" + strings.ToUpper(network) + " " + c.LocalAddr().String()
		got := exchange(t, c, "OPTIONS sip:"+addr+" SIP/2.0\r\nVia: "+via+";branch=z9hG4bK-after;rport\r\nFrom: <sip:probe@example.org>;tag=1\r\nTo: <sip:"+addr+">\r\nCall-ID: after-"+network+"\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
		c.Close()
		if !strings.HasPrefix(got, "SIP/2.0 200") {
			t.Fatalf("OPTIONS over %s after the torture: %q", network, got)
		}
	}
}

func TestForkingFirstAnswerWinsAndTheOtherBranchIsCancelled(t *testing.T) {
	r := startRegistrar(t, regOpts{})
	ringer := register(t, r, "bob", "u1", 200, "3600", 15*time.Second, "uas_cancel.xml")
	registered(t, r, ringer, "UDP")
	answerer := register(t, r, "bob", "t1", 200, "3600", 15*time.Second, "uas.xml")
	registered(t, r, answerer, "TCP")
	sf := scenario(t, t.TempDir(), "uac.xml", nil)
	sipp(t, r, "alice", "u1", sf, 20*time.Second, "-key", "callee", "bob").mustPass(r, 25*time.Second)
	waitFor(t, 10*time.Second, "the ringing branch to be cancelled", func() bool {
		return strings.Contains(ringer.messages(), "CANCEL sip:bob@")
	})
	if !strings.Contains(answerer.messages(), "BYE sip:") {
		t.Fatalf("the answering branch did not get the BYE:\n%s", answerer.logs(r))
	}
}

func TestOptionsOverTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	port := freePort(t)
	r := startRegistrar(t, regOpts{tls: fmt.Sprintf("127.0.0.1:%d", port), tlsCert: cert, tlsKey: key})
	c, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS handshake: %v\n%s", err, r.logTail())
	}
	defer c.Close()
	msg := "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TLS " + c.LocalAddr().String() + ";branch=z9hG4bK-tls1\r\nFrom: <sip:probe@example.org>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: tls-1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "SIP/2.0 200") {
		t.Fatalf("OPTIONS over TLS: %q, %v\n%s", line, err, r.logTail())
	}
}

// selfSigned writes a certificate and key for 127.0.0.1.
func selfSigned(t *testing.T, dir string) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

func TestMetricsAndRegistrations(t *testing.T) {
	r := startRegistrar(t, regOpts{})
	register(t, r, "alice", "u1", 200, "3600", 0, "").mustPass(r, 20*time.Second)
	register(t, r, "mallory", "u1", 401, "3600", 0, "").mustPass(r, 20*time.Second)
	wants := []string{
		`sip_requests_total{method="REGISTER"} 4`,
		`sip_responses_total{class="2xx",method="REGISTER"} 1`,
		`sip_responses_total{class="4xx",method="REGISTER"} 3`,
		`sip_auth_failures_total{reason="credentials"} 1`,
		`sip_bindings_active 1`,
		`sip_transactions_active 0`,
	}
	// An answer is counted once it is sent, so the counts can trail the
	// last answer sipp got: read them until they are all there, or 2 s.
	var missing []string
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		res, err := http.Get("http://" + r.admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		missing = slices.DeleteFunc(slices.Clone(wants), func(w string) bool { return strings.Contains(string(body), w) })
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, want := range missing {
		t.Errorf("/metrics lacks %s", want)
	}
	if regs := r.registrations(); !strings.Contains(regs, `"aor": "sip:alice@127.0.0.1"`) || !strings.Contains(regs, `"user_agent": "sipp"`) {
		t.Errorf("/registrations:\n%s", regs)
	}
}
