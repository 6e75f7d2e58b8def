package main

import (
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sipline/sipline/registrar/digest"
)

// sipp times responses in whole milliseconds, too coarse for a registrar
// that answers in a fraction of one. While sipp makes the load, a prober
// registers one user at a time from its own socket and times each
// exchange, first REGISTER to 200, with the monotonic clock. Under call
// load it places one call at a time instead (callprobe.go).
type prober struct {
	addr string
	// port is the one it registers from: asked for, and when that was
	// taken meanwhile, another (run); read it after finish.
	port int
	// id numbers the prober in this process. It goes in its Call-IDs,
	// tags and branches, beside each exchange's number, so that a prober
	// sending from the port of the one before it does not repeat that
	// one's: the servers answered those from their caches of answers for
	// retransmissions, then refused them on the bindings' Call-ID and
	// CSeq.
	id    uint64
	auth  bool
	call  bool
	users int
	every time.Duration

	stop   chan struct{}
	done   sync.WaitGroup
	mu     sync.Mutex
	rtts   []time.Duration
	failed int
	err    error
}

// probeTimeout counts as the latency of a lost exchange.
const probeTimeout = time.Second

// probers counts the probers started in this process (prober.id).
var probers atomic.Uint64

// startProber starts probing addr from port, or from any port when it is
// 0.
func startProber(addr string, port int, auth, call bool, users int, every time.Duration) *prober {
	p := &prober{addr: addr, port: port, id: probers.Add(1), auth: auth, call: call, users: users, every: every, stop: make(chan struct{})}
	p.done.Add(1)
	go p.run()
	return p
}

// finish stops the prober and returns what it measured: each exchange's
// time, a failed one counted as probeTimeout, and how many failed.
func (p *prober) finish() ([]time.Duration, int, error) {
	close(p.stop)
	p.done.Wait()
	return p.rtts, p.failed, p.err
}

func (p *prober) run() {
	defer p.done.Done()
	conn, err := dialFrom(p.port, p.addr)
	if err != nil {
		p.err = err
		return
	}
	defer conn.Close()
	p.port = conn.LocalAddr().(*net.UDPAddr).Port
	probe := func(i int) (time.Duration, error) {
		start := time.Now()
		err := p.register(conn, fmt.Sprintf("u%d", p.users-1-i%p.users), i)
		return time.Since(start), err
	}
	if p.call {
		callee, err := p.startCallee()
		if err != nil {
			p.err = err
			return
		}
		defer p.stopCallee(conn, callee)
		probe = func(i int) (time.Duration, error) { return p.placeCall(conn, i) }
	}
	tick := time.NewTicker(p.every)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
		rtt, err := probe(i)
		p.mu.Lock()
		if err != nil {
			rtt = probeTimeout
			p.failed++
		}
		p.rtts = append(p.rtts, rtt)
		p.mu.Unlock()
	}
}

// dialFrom dials addr over UDP from port on 127.0.0.1, or from any port
// when port is 0 or taken.
func dialFrom(port int, addr string) (net.Conn, error) {
	if port != 0 {
		local := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
		remote, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			return nil, err
		}
		if conn, err := net.DialUDP("udp", local, remote); err == nil {
			return conn, nil
		}
	}
	return net.Dial("udp", addr)
}

var (
	statusRE = regexp.MustCompile(`^SIP/2\.0 (\d{3})`)
	nonceRE  = regexp.MustCompile(`nonce="([^"]+)"`)
	realmRE  = regexp.MustCompile(`realm="([^"]+)"`)
)

// register binds user to conn's address for an hour, in one REGISTER
// exchange.
func (p *prober) register(conn net.Conn, user string, i int) error {
	return p.bind(conn, user, i, conn.LocalAddr().String(), 3600)
}

// bind does one REGISTER exchange from conn that binds user to contact
// for expires seconds (0 removes the binding), answering a 401 when
// asked.
func (p *prober) bind(conn net.Conn, user string, i int, contact string, expires int) error {
	local := conn.LocalAddr().String()
	uri := "sip:" + p.addr
	n := fmt.Sprintf("%d.%d", p.id, i)
	req := func(cseq int, authz string) string {
		return fmt.Sprintf("REGISTER %[1]s SIP/2.0\r\nVia: SIP/2.0/UDP %[2]s;branch=z9hG4bK-pr%[3]s-%[4]d;rport\r\nMax-Forwards: 70\r\n"+
			"From: <sip:%[5]s@127.0.0.1>;tag=pr%[3]s\r\nTo: <sip:%[5]s@127.0.0.1>\r\nCall-ID: probe-%[3]s@%[2]s\r\nCSeq: %[4]d REGISTER\r\n"+
			"Contact: <sip:%[5]s@%[7]s>\r\nExpires: %[8]d\r\n%[6]sContent-Length: 0\r\n\r\n", uri, local, n, cseq, user, authz, contact, expires)
	}
	res, err := exchange(conn, req(1, ""))
	if err != nil {
		return err
	}
	if code := status(res); code == "401" && p.auth {
		authz, err := credentials("Authorization", res, user, "REGISTER", uri, i)
		if err != nil {
			return err
		}
		if res, err = exchange(conn, req(2, authz)); err != nil {
			return err
		}
	}
	if code := status(res); code != "200" {
		return fmt.Errorf("REGISTER %s: %s", user, code)
	}
	return nil
}

// credentials is the field (Authorization or Proxy-Authorization) that
// answers challenge, a 401 or 407, for user's request number i, with MD5
// and qop=auth, as sipp answers it. The users' passwords are their names
// and "-secret".
func credentials(field, challenge, user, method, uri string, i int) (string, error) {
	nonce, realm := nonceRE.FindStringSubmatch(challenge), realmRE.FindStringSubmatch(challenge)
	if nonce == nil || realm == nil {
		return "", fmt.Errorf("%s without nonce or realm", status(challenge))
	}
	ha1 := digest.HA1(digest.MD5, user, realm[1], user+"-secret")
	cnonce := fmt.Sprintf("c%d", i)
	resp := digest.Response(digest.MD5, ha1, nonce[1], "00000001", cnonce, "auth", method, uri)
	return fmt.Sprintf("%s: Digest username=%q, realm=%q, nonce=%q, uri=%q, response=%q, algorithm=MD5, qop=auth, nc=00000001, cnonce=%q\r\n",
		field, user, realm[1], nonce[1], uri, resp, cnonce), nil
}

func status(res string) string {
	m := statusRE.FindStringSubmatch(res)
	if m == nil {
		return ""
	}
	return m[1]
}

// exchange sends req and waits for a final response to it.
func exchange(conn net.Conn, req string) (string, error) {
	if _, err := conn.Write([]byte(req)); err != nil {
		return "", err
	}
	buf := make([]byte, 4096)
	deadline := time.Now().Add(probeTimeout)
	branch := req[strings.Index(req, "branch=") : strings.Index(req, "branch=")+strings.IndexByte(req[strings.Index(req, "branch="):], ';')]
	for {
		_ = conn.SetReadDeadline(deadline)
		n, err := conn.Read(buf)
		if err != nil {
			return "", err
		}
		res := string(buf[:n])
		if strings.Contains(res, branch) && !strings.HasPrefix(status(res), "1") {
			return res, nil
		}
	}
}
