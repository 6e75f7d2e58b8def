package main

import (
	"errors"
	"fmt"
	"iter"
	"net"
	"strings"
	"time"
)

// sipp's clock under call load moves in ticks of about 4 ms (every
// response time it writes is a multiple of that), so its p99 of calls
// says only whether more than 1% of them took an extra tick, whoever
// caused it: the server, sipp's caller or sipp's callee. The call prober
// times what the server adds, as the REGISTER prober does: one call at a
// time, from a caller socket to a callee socket of its own, both in this
// process, and each call's time runs from the first INVITE to the 200,
// as sipp's does. It answers at once, and so the time is the server's:
// the 407 (with auth), and the INVITE, 180 and 200 through it.
//
// The caller is u0 and the callee u1, users that both servers know and
// the call load does not use (it calls from alice to bob).
const probeCaller, probeCallee = "u0", "u1"

// startCallee registers the callee from its own socket and answers the
// calls that come to it until the socket is closed.
func (p *prober) startCallee() (net.Conn, error) {
	conn, err := net.Dial("udp", p.addr)
	if err != nil {
		return nil, err
	}
	if err := p.register(conn, probeCallee, -1); err != nil {
		conn.Close()
		return nil, fmt.Errorf("the call prober's callee did not register: %w", err)
	}
	go answerCalls(conn)
	return conn, nil
}

// stopCallee removes the callee's binding, from conn, as a UA does when
// it stops, and closes the callee. Each slice of load has a prober and a
// callee of its own: left bound, the callees of earlier slices piled up
// on probeCallee, and both servers forked every probe call to all of
// them, to ports nobody reads. Ours took its slower path for calls with
// more than one binding, and Kamailio (12 branches at most, tm's
// max_branches) no longer reached the live callee from the thirteenth
// slice.
//
// The prober does not retransmit, so the REGISTER is tried three times:
// at the end of an overloaded step, a server may still be dropping.
func (p *prober) stopCallee(conn, callee net.Conn) {
	var err error
	for try := range 3 {
		if err = p.bind(conn, probeCallee, -2-try, callee.LocalAddr().String(), 0); err == nil {
			break
		}
	}
	if err != nil {
		p.mu.Lock()
		p.err = errors.Join(p.err, fmt.Errorf("the call prober's callee did not unregister: %w", err))
		p.mu.Unlock()
	}
	callee.Close()
}

// answerCalls answers each INVITE with 180 and 200, and each BYE with
// 200, until conn is closed.
func answerCalls(conn net.Conn) {
	contact := fmt.Sprintf("Contact: <sip:%s@%s>\r\n", probeCallee, conn.LocalAddr())
	_ = conn.SetReadDeadline(time.Time{}) // register's, gone
	buf := make([]byte, 8192)
	for {
		n, err := conn.Read(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		req := string(buf[:n])
		switch {
		case strings.HasPrefix(req, "INVITE "):
			_, _ = conn.Write([]byte(reply(req, "180 Ringing", contact)))
			_, _ = conn.Write([]byte(reply(req, "200 OK", contact)))
		case strings.HasPrefix(req, "BYE "):
			_, _ = conn.Write([]byte(reply(req, "200 OK", "")))
		}
	}
}

// reply is a response to req: its Vias, From, To (with the callee's
// tag), Call-ID, CSeq and Record-Route, as RFC 3261 §8.2.6 has them
// copied, then extra.
func reply(req, status, extra string) string {
	var b strings.Builder
	b.WriteString("SIP/2.0 " + status + "\r\n")
	for name, line := range headerLines(req) {
		switch name {
		case "via", "v", "from", "f", "call-id", "i", "cseq", "record-route":
			b.WriteString(line + "\r\n")
		case "to", "t":
			b.WriteString(line)
			if !strings.Contains(line, ";tag=") {
				b.WriteString(";tag=probe-callee")
			}
			b.WriteString("\r\n")
		}
	}
	b.WriteString(extra + "Content-Length: 0\r\n\r\n")
	return b.String()
}

// headerLines yields the header lines of a SIP message, each with its
// field name in lower case. Folded lines are not joined: neither server
// folds, nor does this prober.
func headerLines(msg string) iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		head, _, _ := strings.Cut(msg, "\r\n\r\n")
		_, head, _ = strings.Cut(head, "\r\n") // the start line
		for line := range strings.SplitSeq(head, "\r\n") {
			name, _, _ := strings.Cut(line, ":")
			if !yield(strings.ToLower(strings.TrimSpace(name)), line) {
				return
			}
		}
	}
}

// valueOf is a header line's value, trimmed.
func valueOf(line string) string {
	_, value, _ := strings.Cut(line, ":")
	return strings.TrimSpace(value)
}

// placeCall makes call i: INVITE, with credentials after a 407 when
// asked, to the 200, which it times; then ACK and BYE, which it waits
// for so that one call does not overlap the next.
func (p *prober) placeCall(conn net.Conn, i int) (time.Duration, error) {
	local := conn.LocalAddr().String()
	target := fmt.Sprintf("sip:%s@%s", probeCallee, p.addr)
	n := fmt.Sprintf("%d.%d", p.id, i)
	callID := fmt.Sprintf("probe-call-%s@%s", n, local)
	from := fmt.Sprintf("From: <sip:%s@127.0.0.1>;tag=pc%s\r\n", probeCaller, n)
	to := fmt.Sprintf("To: <sip:%s@127.0.0.1>", probeCallee)
	// Each transaction has its branch, numbered from 1; the ACK for a
	// 407 takes its INVITE's (RFC 3261 §17.1.1.3).
	request := func(method, uri string, branch, cseq int, toTag, extra string) string {
		return fmt.Sprintf("%s %s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-pc%s-%d;rport\r\nMax-Forwards: 70\r\n%s%s%s\r\n"+
			"Call-ID: %s\r\nCSeq: %d %s\r\nContact: <sip:%s@%s>\r\n%sContent-Length: 0\r\n\r\n",
			method, uri, local, n, branch, from, to, toTag, callID, cseq, method, probeCaller, local, extra)
	}
	start := time.Now()
	res, err := exchange(conn, request("INVITE", target, 1, 1, "", ""))
	if err != nil {
		return 0, err
	}
	cseq := 1
	if status(res) == "407" && p.auth {
		if _, err := conn.Write([]byte(request("ACK", target, 1, 1, toTagOf(res), ""))); err != nil {
			return 0, err
		}
		authz, err := credentials("Proxy-Authorization", res, probeCaller, "INVITE", target, i)
		if err != nil {
			return 0, err
		}
		cseq = 2
		if res, err = exchange(conn, request("INVITE", target, 2, cseq, "", authz)); err != nil {
			return 0, err
		}
	}
	rtt := time.Since(start)
	if code := status(res); code != "200" {
		return 0, fmt.Errorf("call %d: INVITE answered %s", i, code)
	}
	// The ACK and BYE go to the callee's Contact, by the proxy's
	// Record-Route (RFC 3261 §12.1.2).
	var routes []string
	contact := ""
	for name, line := range headerLines(res) {
		switch name {
		case "record-route":
			routes = append(routes, valueOf(line))
		case "contact", "m":
			contact = strings.Trim(valueOf(line), "<>")
		}
	}
	if contact == "" {
		return 0, fmt.Errorf("call %d: 200 without a Contact", i)
	}
	route := ""
	if len(routes) > 0 {
		route = "Route: " + strings.Join(routes, ", ") + "\r\n"
	}
	tag := toTagOf(res)
	if _, err := conn.Write([]byte(request("ACK", contact, 3, cseq, tag, route))); err != nil {
		return 0, err
	}
	if res, err = exchange(conn, request("BYE", contact, 4, cseq+1, tag, route)); err != nil {
		return 0, fmt.Errorf("BYE: %w", err)
	}
	if code := status(res); code != "200" {
		return 0, fmt.Errorf("call %d: BYE answered %s", i, code)
	}
	return rtt, nil
}

// toTagOf is the To tag of a response, as ";tag=…", or "".
func toTagOf(res string) string {
	for name, line := range headerLines(res) {
		if name != "to" && name != "t" {
			continue
		}
		_, tag, ok := strings.Cut(valueOf(line), ";tag=")
		if !ok {
			return ""
		}
		tag, _, _ = strings.Cut(tag, ";")
		return ";tag=" + strings.TrimSpace(tag)
	}
	return ""
}
