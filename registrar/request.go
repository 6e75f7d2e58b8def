package registrar

import (
	"fmt"
	"iter"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// regRequest is a REGISTER as register reads it. Over TCP and TLS it is
// taken from sipgo's parse (requestOf); over UDP the stateless path reads
// it from the datagram itself (parseRequest), or from sipgo's parse of
// what parseRequest declines. The stateless path also reads INVITEs
// this way, to challenge them (statelessChallenge).
type regRequest struct {
	method  sip.RequestMethod // parseRequest only
	host    string            // the Request-URI's
	to      sip.Uri
	hasTo   bool
	toTag   bool // parseRequest only
	callID  string
	cseq    uint32
	hasCSeq bool
	// from is the From field's value as it came, for the stateless
	// path's logs.
	from      string
	transport string         // UDP, TCP or TLS
	source    string         // host:port the request came from
	contacts  []contactField // REGISTER only
	fields    fields

	// What the proxy checks of an INVITE before it challenges it,
	// parseRequest only: From's URI, whether there is a Route, whether
	// Max-Forwards is 0, and whether a Via carries a branch of ours.
	fromURI sip.Uri
	routed  bool
	noHops  bool
	looped  bool

	// Room for parseRequest, here so that it is not allocated for each
	// request: the Request-URI, and To's and From's parameters (their
	// memory kept).
	ruri       sip.Uri
	toParams   sip.HeaderParams
	fromParams sip.HeaderParams
}

// reset empties rq for parseRequest, keeping the memory it holds.
func (rq *regRequest) reset() {
	*rq = regRequest{
		contacts: rq.contacts[:0], fields: rq.fields[:0],
		toParams: rq.toParams[:0], fromParams: rq.fromParams[:0],
	}
}

// nextContact appends an empty contact to rq, reusing the parameters'
// memory of the one that was there before.
func (rq *regRequest) nextContact() *contactField {
	var params sip.HeaderParams
	if n := len(rq.contacts); n < cap(rq.contacts) {
		params = rq.contacts[:n+1][n].params[:0]
	}
	rq.contacts = append(rq.contacts, contactField{params: params})
	return &rq.contacts[len(rq.contacts)-1]
}

// contactField is one Contact value.
type contactField struct {
	uri    sip.Uri // Wildcard for *
	params sip.HeaderParams
}

// field is a header field that the registrar reads as text: name in its
// long form, as fieldNames spells it, and value trimmed.
type field struct{ name, value string }

// fields are a request's header fields of the names in fieldNames, in
// order.
type fields []field

// fieldNames are the header fields kept in fields, by their lower-case
// long and compact forms (RFC 3261 §7.3.3).
var fieldNames = map[string]string{
	"authorization":       "Authorization",
	"proxy-authorization": "Proxy-Authorization",
	"require":             "Require",
	"proxy-require":       "Proxy-Require",
	"supported":           "Supported",
	"k":                   "Supported",
	"user-agent":          "User-Agent",
	"expires":             "Expires",
}

// fieldName is name's spelling in fields, if it is one kept there.
func fieldName(name string) (string, bool) {
	if len(name) > len("proxy-authorization") {
		return "", false
	}
	var lower [len("proxy-authorization")]byte
	for i := range len(name) {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower[i] = c
	}
	long, ok := fieldNames[string(lower[:len(name)])]
	return long, ok
}

// all yields the values of the fields named name, in order.
func (fs fields) all(name string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for _, f := range fs {
			if f.name == name && !yield(f.value) {
				return
			}
		}
	}
}

// first is the value of the first field named name.
func (fs fields) first(name string) (string, bool) {
	for _, f := range fs {
		if f.name == name {
			return f.value, true
		}
	}
	return "", false
}

// fieldsOf collects req's fields of the names in fieldNames.
func fieldsOf(req *sip.Request) fields {
	var fs fields
	for _, h := range req.Headers() {
		if name, ok := fieldName(h.Name()); ok {
			fs = append(fs, field{name, strings.TrimSpace(h.Value())})
		}
	}
	return fs
}

// requestOf takes a REGISTER from sipgo's parse.
func requestOf(req *sip.Request) (regRequest, error) {
	rq := regRequest{
		host:      req.Recipient.Host,
		transport: strings.ToUpper(req.Transport()),
		source:    req.Source(),
		fields:    fieldsOf(req),
	}
	if to := req.To(); to != nil {
		rq.to, rq.hasTo = to.Address, true
	}
	if c := req.CallID(); c != nil {
		rq.callID = c.Value()
	}
	if c := req.CSeq(); c != nil {
		rq.cseq, rq.hasCSeq = c.SeqNo, true
	}
	for _, h := range req.GetHeaders("Contact") {
		ch, ok := h.(*sip.ContactHeader)
		if !ok {
			return rq, statusErr(sip.StatusBadRequest, "Bad Contact", fmt.Errorf("Contact %q", h.Value()))
		}
		rq.contacts = append(rq.contacts, contactField{uri: ch.Address, params: ch.Params})
	}
	return rq, nil
}

// topVia is what the stateless path needs of a request's first Via
// value: where the UA says it sent from, and its branch.
type topVia struct {
	host   string
	port   int
	branch string
}

// parseRequest reads a REGISTER or an INVITE from a datagram: only the
// fields that register, statelessChallenge and the stateless answer
// use, taking each value as a substring of data. It reports false for
// anything it does not read the way sipgo's parser would, and then the
// caller parses the datagram with sipgo: header lines folded or not
// ending in CRLF, a top Via with a quote or an IPv6 address, a second
// To, From, Call-ID, CSeq or (in an INVITE) Max-Forwards, and
// anything sipgo's URI or address parser rejects.
//
// This is written here because it is the registrar's hot path: sipgo's
// parser made 34 of the 61 allocations of an authorized REGISTER, and a
// quarter of the registrar's CPU under REGISTER load
// (docs/BENCHMARKS.md), parsing header fields a REGISTER does not need
// and copying each value it keeps. The URIs and addresses are still
// sipgo's to parse (sip.ParseUri, sip.ParseAddressValue), so they read
// the same on every transport.
//
// It reads into rq, reusing the memory rq holds from an earlier request.
func parseRequest(data string, rq *regRequest) (via topVia, ok bool) {
	rq.reset()
	head, _, found := strings.Cut(data, "\r\n\r\n")
	if !found {
		return via, false
	}
	start, head, _ := strings.Cut(head, "\r\n")
	method, rest, _ := strings.Cut(start, " ")
	uri, version, _ := strings.Cut(rest, " ")
	switch sip.RequestMethod(method) {
	case sip.REGISTER:
		rq.method = sip.REGISTER
	case sip.INVITE:
		rq.method = sip.INVITE
	default:
		return via, false
	}
	if version != "SIP/2.0" {
		return via, false
	}
	invite := rq.method == sip.INVITE
	if err := sip.ParseUri(uri, &rq.ruri); err != nil {
		return via, false
	}
	rq.host = rq.ruri.Host
	var fromSeen, viaSeen, hopsSeen bool
	for len(head) > 0 {
		var line string
		line, head, _ = strings.Cut(head, "\r\n")
		if line == "" || line[0] == ' ' || line[0] == '\t' || strings.ContainsAny(line, "\r\n") {
			return via, false
		}
		name, value, found := strings.Cut(line, ":")
		if !found {
			return via, false
		}
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		switch {
		case isName(name, "Via", "v"):
			rq.looped = rq.looped || invite && strings.Contains(value, branchPrefix)
			if !viaSeen {
				viaSeen = true
				if via, ok = parseTopVia(value); !ok {
					return via, false
				}
			}
		case isName(name, "To", "t"):
			if rq.hasTo || !rq.parseTo(value) {
				return via, false
			}
		case isName(name, "From", "f"):
			if fromSeen || value == "" {
				return via, false
			}
			rq.from, fromSeen = value, true
			if invite {
				if _, err := sip.ParseAddressValue(value, &rq.fromURI, &rq.fromParams); err != nil {
					return via, false
				}
			}
		case isName(name, "Call-ID", "i"):
			if rq.callID != "" || value == "" {
				return via, false
			}
			rq.callID = value
		case isName(name, "CSeq", ""):
			if rq.hasCSeq || !rq.parseCSeq(value) {
				return via, false
			}
		case isName(name, "Contact", "m"):
			if !invite && !rq.parseContacts(value) {
				return via, false
			}
		case invite && isName(name, "Route", ""):
			rq.routed = true
		case invite && isName(name, "Max-Forwards", ""):
			// sipgo reads the first; a second is left to it.
			n, err := strconv.ParseUint(value, 10, 32)
			if err != nil || hopsSeen {
				return via, false
			}
			rq.noHops, hopsSeen = n == 0, true
		default:
			if long, keep := fieldName(name); keep {
				rq.fields = append(rq.fields, field{long, value})
			}
		}
	}
	return via, true
}

// isName reports whether name is the header name long, or its compact
// form short, in any case.
func isName(name, long, short string) bool {
	return strings.EqualFold(name, long) || (short != "" && strings.EqualFold(name, short))
}

func (rq *regRequest) parseTo(value string) bool {
	if _, err := sip.ParseAddressValue(value, &rq.to, &rq.toParams); err != nil {
		return false
	}
	rq.hasTo, rq.toTag = true, rq.toParams.Has("tag")
	return true
}

// parseCSeq reads "number method", as sipgo does: one separator, a
// number up to 2^31-1.
func (rq *regRequest) parseCSeq(value string) bool {
	i := strings.IndexAny(value, " \t")
	if i < 1 || len(value)-i < 2 {
		return false
	}
	n, err := strconv.ParseUint(value[:i], 10, 32)
	if err != nil || n > 1<<31-1 {
		return false
	}
	rq.cseq, rq.hasCSeq = uint32(n), true
	return true
}

// parseContacts reads a Contact field's values, split at commas outside
// quotes and angle brackets, as sipgo splits them (a backslash escapes
// nothing there).
func (rq *regRequest) parseContacts(value string) bool {
	for value != "" {
		end, quoted, bracketed := len(value), false, false
		for i := 0; i < len(value) && end == len(value); i++ {
			switch c := value[i]; {
			case c == '"':
				quoted = !quoted
			case c == '<' && !quoted:
				bracketed = true
			case c == '>' && !quoted:
				bracketed = false
			case c == ',' && !quoted && !bracketed:
				end = i
			}
		}
		if quoted || bracketed {
			return false
		}
		c := rq.nextContact()
		if _, err := sip.ParseAddressValue(strings.TrimSpace(value[:end]), &c.uri, &c.params); err != nil {
			return false
		}
		value = value[min(end+1, len(value)):]
	}
	return true
}

// parseTopVia reads the top Via field: "SIP/2.0/UDP host[:port]" and
// parameters, of which it keeps the branch. It splits the value where
// sipgo's parser does, but for a field of several values, which sipgo
// misreads when the first has no parameters or ends in white space.
func parseTopVia(value string) (topVia, bool) {
	var v topVia
	if i := strings.IndexByte(value, ','); i >= 0 {
		value = strings.TrimRight(value[:i], " \t") // the first of several
	}
	if strings.ContainsAny(value, `"[`) {
		return v, false
	}
	// The protocol: name/version/transport, then white space.
	rest := value
	for range 2 {
		i := strings.IndexByte(rest, '/')
		if i < 0 {
			return v, false
		}
		rest = rest[i+1:]
	}
	i := strings.IndexAny(rest, " \t")
	if i < 0 {
		return v, false
	}
	sentBy, params, _ := strings.Cut(rest[i+1:], ";")
	v.host = strings.TrimSpace(sentBy)
	if i := strings.LastIndexByte(sentBy, ':'); i >= 0 {
		port, err := strconv.ParseUint(sentBy[i+1:], 10, 16)
		if i == 0 || err != nil {
			return v, false
		}
		v.host, v.port = strings.TrimSpace(sentBy[:i]), int(port)
	}
	if v.host == "" {
		return v, false
	}
	// Parameters as UAs write them: no white space, none empty. The last
	// branch counts, as in sipgo.
	if strings.ContainsAny(params, " \t") || strings.Contains(params, ";;") || strings.HasPrefix(params, ";") || strings.HasSuffix(params, ";") {
		return v, false
	}
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		if k, val, _ := strings.Cut(p, "="); k == "branch" {
			v.branch = val
		}
	}
	return v, true
}
