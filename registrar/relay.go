package registrar

import (
	"encoding/hex"
	"hash/maphash"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// relayPrefix starts the branch of a request relayed statelessly. It
// extends branchPrefix, so a response the reader does not relay itself
// is still forwarded by forwardStateless; a stateful branch has hex
// after branchPrefix, never a dot.
const relayPrefix = branchPrefix + "."

// relayInDialog forwards a request inside a dialog we record-routed
// statelessly (RFC 3261 §16.11), from UDP to UDP, and reports whether it
// did; when it did not, sipgo's transaction layer and the proxy handle
// the request as before.
//
// These requests need no transaction here: nobody is challenged or
// forked, and over UDP both ends retransmit them and their answers.
// Through sipgo, ACK, BYE and the BYE's 200 were three of the seven
// messages it parsed per call, and the BYE two of its four transactions
// (docs/BENCHMARKS.md).
//
// It relays what route would forward without a check: a request other
// than INVITE and CANCEL, with a To tag, whose first Route entries name
// us and one of them carries our signed flow token, so that the request
// follows a route set we made. INVITE and CANCEL need their
// transactions, and so does the ACK for a failure answered to a
// re-INVITE (respond remembers those). Anything it does not read as
// sipgo would, or that the proxy would refuse (Max-Forwards 0,
// Proxy-Require, one of our branches in a Via), is left to sipgo.
func (c *statelessConn) relayInDialog(rd *reader, b []byte, addr net.Addr) bool {
	src := addrPort(addr)
	if !src.IsValid() {
		return false
	}
	data := string(b)
	head, body, found := strings.Cut(data, "\r\n\r\n")
	if !found {
		return false
	}
	start, head, _ := strings.Cut(head, "\r\n")
	method, rest, _ := strings.Cut(start, " ")
	ruri, version, _ := strings.Cut(rest, " ")
	switch sip.RequestMethod(method) {
	case sip.INVITE, sip.CANCEL, sip.REGISTER:
		return false
	}
	if method == "" || version != "SIP/2.0" {
		return false
	}

	rl := &rd.relaying
	rl.reset()
	var via topVia
	var seen struct{ via, from, to, callID, cseq, hops bool }
	for lines := head; lines != ""; {
		var line string
		line, lines, _ = strings.Cut(lines, "\r\n")
		if line == "" || line[0] == ' ' || line[0] == '\t' || strings.ContainsAny(line, "\r\n") {
			return false
		}
		name, value, found := strings.Cut(line, ":")
		if !found {
			return false
		}
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		dup := false
		switch {
		case isName(name, "Via", "v"):
			if strings.Contains(value, branchPrefix) {
				return false // ours: loop detection is the proxy's
			}
			if !seen.via {
				var ok bool
				if via, ok = parseTopVia(value); !ok || !strings.HasPrefix(via.branch, sip.RFC3261BranchMagicCookie) {
					return false
				}
			}
			seen.via = true
		case isName(name, "To", "t"):
			dup, seen.to = seen.to, true
			if toTagOf(value) == "" {
				return false
			}
		case isName(name, "From", "f"):
			dup, seen.from = seen.from, true
		case isName(name, "Call-ID", "i"):
			dup, seen.callID = seen.callID, true
		case isName(name, "CSeq", ""):
			dup, seen.cseq = seen.cseq, true
		case isName(name, "Max-Forwards", ""):
			n, err := strconv.ParseUint(value, 10, 32)
			if err != nil || n == 0 || seen.hops {
				return false
			}
			seen.hops, rl.hops = true, n
		case isName(name, "Proxy-Require", ""):
			return false
		case isName(name, "Content-Length", "l"):
			if n, err := strconv.Atoi(value); err != nil || n != len(body) {
				return false
			}
		case isName(name, "Route", ""):
			if !rl.addRoutes(c.r, value) {
				return false
			}
		}
		if dup || value == "" {
			return false
		}
	}
	if !seen.via || !seen.from || !seen.to || !seen.callID || !seen.cseq || !rl.hasFlow {
		return false
	}
	if method == string(sip.ACK) && c.r.refused.has(addr.String(), via.branch, c.r.now()) {
		return false // for a failure to a re-INVITE: its transaction's
	}

	// Where to: as route decides for a request in a dialog.
	var h hop
	switch {
	case rl.next != "":
		var u sip.Uri
		if sip.ParseUri(rl.next, &u) != nil || c.r.isSelf(&u) {
			return false
		}
		var err error
		if h, err = uriHop(&u, "UDP"); err != nil {
			return false
		}
	case !rl.flowFrom(src):
		h = hop{transport: rl.flow.transport, addr: rl.flow.addr}
	default:
		var u sip.Uri
		if sip.ParseUri(ruri, &u) != nil || c.r.isSelf(&u) {
			return false
		}
		var err error
		if h, err = uriHop(&u, "UDP"); err != nil {
			return false
		}
	}
	dst, err := netip.ParseAddrPort(h.addr)
	if h.transport != "UDP" || err != nil {
		return false
	}
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	if !c.reaches(dst) {
		return false
	}

	out := append(rd.out[:0], start...)
	ep := c.r.endpoint("UDP")
	out = append(out, "\r\nVia: SIP/2.0/UDP "...)
	out = append(out, ep.Host...)
	out = strconv.AppendInt(append(out, ':'), int64(ep.Port), 10)
	out = append(out, ";branch="+relayPrefix...)
	out = c.appendRelayBranch(out, via, method)
	out = append(out, "\r\n"...)
	topVia, routes := true, true
	for lines := head; lines != ""; {
		var line string
		line, lines, _ = strings.Cut(lines, "\r\n")
		name, value, _ := strings.Cut(line, ":")
		switch name = strings.TrimSpace(name); {
		case topVia && isName(name, "Via", "v"):
			topVia = false
			out = append(out, line[:len(line)-len(value)]...)
			out = appendTopVia(out, value, via.host, addr)
		case isName(name, "Max-Forwards", ""):
			out = strconv.AppendUint(append(out, "Max-Forwards: "...), rl.hops-1, 10)
		case isName(name, "Route", ""):
			// The entries left, all on the first Route line.
			if !routes || len(rl.kept) == 0 {
				continue
			}
			routes = false
			out = append(out, "Route: "...)
			for i, e := range rl.kept {
				if i > 0 {
					out = append(out, ", "...)
				}
				out = append(out, e...)
			}
		default:
			out = append(out, line...)
		}
		out = append(out, "\r\n"...)
	}
	if !seen.hops {
		out = append(out, "Max-Forwards: 70\r\n"...)
	}
	out = append(append(out, "\r\n"...), body...)
	rd.out = out
	if _, err := c.WriteTo(out, net.UDPAddrFromAddrPort(dst)); err != nil {
		c.r.log.Debug("relay in dialog", "method", method, "to", dst.String(), "error", err)
	}
	c.r.metrics.requests.WithLabelValues(methodLabel(sip.RequestMethod(method))).Inc()
	return true
}

// relaying is what relayInDialog keeps of a request's Route entries and
// Max-Forwards, reused from one request to the next.
type relaying struct {
	hops    uint64
	popping bool // still at the entries that name us
	hasFlow bool
	flow    flowKey  // from the last entry popped with a flow token
	next    string   // the URI of the first entry not ours
	kept    []string // the entries not ours, as they came
	uri     sip.Uri
}

// flowFrom reports whether the flow of the last token popped is the one
// the request came on, from src over UDP.
func (rl *relaying) flowFrom(src netip.AddrPort) bool {
	ap, err := netip.ParseAddrPort(rl.flow.addr)
	return err == nil && rl.flow.transport == "UDP" && netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()) == src
}

func (rl *relaying) reset() {
	*rl = relaying{kept: rl.kept[:0], popping: true}
}

// addRoutes reads one Route line: entries "<uri>" with parameters,
// separated by commas. It pops the leading ones that name us, as route
// does. False when it cannot read the line the way sipgo would.
func (rl *relaying) addRoutes(r *Registrar, value string) bool {
	if strings.ContainsAny(value, `"`) {
		return false
	}
	for value != "" {
		var entry string
		end := strings.IndexByte(value, '>')
		if end < 0 {
			return false
		}
		if i := strings.IndexByte(value[end:], ','); i >= 0 {
			entry, value = value[:end+i], strings.TrimLeft(value[end+i+1:], " \t")
		} else {
			entry, value = value, ""
		}
		entry = strings.TrimSpace(entry)
		if !strings.HasPrefix(entry, "<") {
			return false
		}
		uri := entry[1:strings.IndexByte(entry, '>')]
		if rl.popping {
			rl.uri = sip.Uri{}
			if sip.ParseUri(uri, &rl.uri) != nil {
				return false
			}
			if r.isSelf(&rl.uri) {
				if fk, ok := r.parseFlowToken(rl.uri.User); ok {
					rl.flow, rl.hasFlow = fk, true
				}
				continue
			}
			rl.popping, rl.next = false, uri
		}
		rl.kept = append(rl.kept, entry)
	}
	return true
}

// appendRelayBranch appends the rest of a relayed request's branch: a
// hash of the branch it came with and its method, so that its
// retransmissions are sent with the same branch and other requests with
// another (RFC 3261 §16.11).
func (c *statelessConn) appendRelayBranch(dst []byte, via topVia, method string) []byte {
	var h maphash.Hash
	h.SetSeed(c.answers.seed)
	h.WriteString(via.branch)
	h.WriteString(method)
	var sum [8]byte
	n := h.Sum64()
	for i := range sum {
		sum[i] = byte(n >> (8 * i))
	}
	return hex.AppendEncode(dst, sum[:])
}

// toTagOf is the tag parameter of a To or From value, "" if none. ownACK
// and relayInDialog read To tags with it.
func toTagOf(value string) string {
	// The parameters follow the URI, which is in brackets if it has
	// parameters of its own.
	if i := strings.IndexByte(value, '>'); i >= 0 {
		value = value[i+1:]
	}
	_, params, more := strings.Cut(value, ";")
	for more {
		var p string
		p, params, more = strings.Cut(params, ";")
		if k, v, _ := strings.Cut(p, "="); strings.EqualFold(strings.TrimSpace(k), "tag") {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// relayResponse forwards a response to a request relayInDialog relayed:
// our Via goes, and the response goes where the next Via says, if that
// is over UDP to an address (RFC 3261 §16.11). It reports whether it
// did. Provisional ones are relayed too: relayInDialog relays no
// INVITE, and a provisional response to another request is rare and
// harmless if it comes after the final one.
func (c *statelessConn) relayResponse(rd *reader, b []byte) bool {
	out, rr, ok := appendRelayed(rd.out[:0], string(b), "")
	if !ok || rr.next == "" {
		return false
	}
	via, ok := parseTopVia(rr.top)
	if !ok || !strings.HasPrefix(via.branch, relayPrefix) || !c.r.isLocalHost(via.host) {
		return false
	}
	next, ok := udpViaAddr(rr.next)
	if !ok || !c.reaches(next) {
		return false
	}
	rd.out = out
	if _, err := c.WriteTo(out, net.UDPAddrFromAddrPort(next)); err != nil {
		c.r.log.Debug("relay response", "to", next.String(), "error", err)
	}
	return true
}

// udpViaAddr is where a response goes by the first value of a Via field
// (RFC 3261 §18.2.2, RFC 3581 §4): received and rport if there, else the
// sent-by address. False unless it is UDP to an IP address.
func udpViaAddr(value string) (netip.AddrPort, bool) {
	proto, _, _ := strings.Cut(value, " ")
	if !strings.EqualFold(strings.TrimSpace(proto), "SIP/2.0/UDP") {
		return netip.AddrPort{}, false
	}
	via, ok := parseTopVia(value)
	if !ok {
		return netip.AddrPort{}, false
	}
	host, port := via.host, via.port
	if i := strings.IndexByte(value, ','); i >= 0 {
		value = value[:i]
	}
	_, params, _ := strings.Cut(value, ";")
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		switch k, v, _ := strings.Cut(p, "="); {
		case strings.EqualFold(k, "received"):
			host = v
		case strings.EqualFold(k, "rport") && v != "":
			n, err := strconv.ParseUint(v, 10, 16)
			if err != nil {
				return netip.AddrPort{}, false
			}
			port = int(n)
		}
	}
	if port == 0 {
		port = 5060
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(port)), true
}

// reaches reports whether the socket can send to dst: an IPv4 socket
// cannot send to IPv6.
func (c *statelessConn) reaches(dst netip.AddrPort) bool {
	local, ok := c.LocalAddr().(*net.UDPAddr)
	return !ok || local.IP.To4() == nil || dst.Addr().Is4()
}

// branchSet holds request branches for refusedTTL to 2×refusedTTL, in
// two generations swapped as time passes.
type branchSet struct {
	mu        sync.Mutex
	cur, prev map[[2]string]struct{}
	since     time.Time
}

// refusedTTL covers the ACK's retransmissions: the failure is resent
// until Timer H, 64×T1 (RFC 3261 §17.2.1).
const refusedTTL = 32 * time.Second

func (s *branchSet) add(source, branch string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.age(now)
	if s.cur == nil {
		s.cur = map[[2]string]struct{}{}
	}
	s.cur[[2]string{source, branch}] = struct{}{}
}

func (s *branchSet) has(source, branch string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.age(now)
	if s.cur == nil && s.prev == nil {
		return false
	}
	key := [2]string{source, branch}
	_, in := s.cur[key]
	_, was := s.prev[key]
	return in || was
}

func (s *branchSet) age(now time.Time) {
	if d := now.Sub(s.since); d >= refusedTTL {
		s.prev, s.cur, s.since = s.cur, nil, now
		if d >= 2*refusedTTL {
			s.prev = nil
		}
	}
}
