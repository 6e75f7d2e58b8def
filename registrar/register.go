package registrar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipline/sipline/registrar/location"
)

// contactReq is one Contact of a REGISTER, as asked.
type contactReq struct {
	uri      string
	expires  int
	q        int
	instance string
	regID    int
}

func (r *Registrar) handleRegister(req *sip.Request, tx sip.ServerTransaction) {
	r.track(req, tx, func(ctx context.Context) (*sip.Response, error) {
		rq, err := requestOf(req)
		if err != nil {
			return nil, err
		}
		g, err := r.register(ctx, &rq)
		if err != nil {
			return nil, err
		}
		return g.response(req), nil
	})
}

// registered is a REGISTER that succeeded, before its 200 is rendered:
// as a sipgo response on the transaction path, as bytes on the
// stateless one.
type registered struct {
	bindings []location.Binding // the AOR's, after the request
	outbound bool               // answer with Require: outbound
	now      time.Time
}

// dateLayout is the rfc1123-date of RFC 3261 §20.17, always in GMT.
const dateLayout = "Mon, 02 Jan 2006 15:04:05 GMT"

// response renders the 200 for sipgo.
func (g registered) response(req *sip.Request) *sip.Response {
	res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
	for _, b := range g.bindings {
		res.AppendHeader(sip.NewHeader("Contact", string(appendContact(nil, b, g.now))))
	}
	if g.outbound {
		res.AppendHeader(sip.NewHeader("Require", "outbound"))
	}
	res.AppendHeader(sip.NewHeader("Date", g.now.UTC().Format(dateLayout)))
	return res
}

// appendHeaders appends the 200's own header fields in wire form, the
// same as response adds.
func (g registered) appendHeaders(dst []byte) []byte {
	for _, b := range g.bindings {
		dst = append(dst, "Contact: "...)
		dst = append(appendContact(dst, b, g.now), "\r\n"...)
	}
	if g.outbound {
		dst = append(dst, "Require: outbound\r\n"...)
	}
	dst = append(dst, "Date: "...)
	return append(g.now.UTC().AppendFormat(dst, dateLayout), "\r\n"...)
}

// register implements RFC 3261 §10.3.
func (r *Registrar) register(ctx context.Context, rq *regRequest) (registered, error) {
	if !r.isLocalHost(rq.host) {
		return registered{}, statusErr(sip.StatusNotFound, "Not Found", fmt.Errorf("domain %q is not served here", rq.host))
	}
	if err := r.checkRequire(rq.fields, "Require"); err != nil {
		return registered{}, err
	}
	if !rq.hasTo || rq.callID == "" || !rq.hasCSeq {
		return registered{}, statusErr(sip.StatusBadRequest, "Missing To, Call-ID or CSeq", nil)
	}
	user, err := r.authenticate(sip.REGISTER, rq.fields, rq.to.User, false)
	if err != nil {
		return registered{}, err
	}
	if rq.to.User != user || !r.isLocalHost(rq.to.Host) {
		return registered{}, statusErr(sip.StatusForbidden, "Forbidden", fmt.Errorf("user %q may not register %q", user, rq.to.String()))
	}
	aor := r.aor(user)

	contacts, star, err := r.parseContacts(rq)
	if err != nil {
		return registered{}, err
	}

	callID, cseq := rq.callID, rq.cseq
	src := flowKey{transport: rq.transport, addr: rq.source}
	ua, _ := rq.fields.first("User-Agent")
	now := r.now()

	var bs []location.Binding
	if len(contacts) == 0 && !star {
		bs, err = r.store.Lookup(ctx, aor)
		if errors.Is(err, location.ErrNotFound) {
			err = nil
		}
		bs = live(bs, now)
	} else {
		bs, err = r.store.Update(ctx, aor, func(cur []location.Binding) ([]location.Binding, error) {
			return r.apply(live(cur, now), contacts, star, aor, callID, cseq, src, ua, now)
		})
		if err == nil {
			r.noteBindings(aor, bs)
			if src.stream() && !r.flowAlive(src) {
				// The connection closed while we stored: drop what it bound.
				go r.dropFlow(src)
			}
		}
	}
	if err != nil {
		var se *StatusError
		if errors.As(err, &se) {
			return registered{}, se
		}
		return registered{}, statusErr(sip.StatusInternalServerError, "Server Internal Error", fmt.Errorf("store %s: %w", aor, err))
	}

	outbound := false
	for _, b := range bs {
		outbound = outbound || b.RegID > 0
	}
	if (star || len(contacts) > 0) && r.log.Enabled(ctx, slog.LevelInfo) {
		r.log.Info("registered", "aor", aor, "call_id", callID, "contacts", len(bs), "source", src.String())
	}
	return registered{bindings: bs, outbound: outbound && hasOption(rq.fields, "Supported", "outbound"), now: now}, nil
}

// apply computes an AOR's bindings after a REGISTER, in cur's memory. It
// has no other side effects: the store may call it more than once, each
// time with a fresh cur.
func (r *Registrar) apply(cur []location.Binding, contacts []contactReq, star bool, aor, callID string, cseq uint32, src flowKey, ua string, now time.Time) ([]location.Binding, error) {
	if star {
		for _, b := range cur {
			if b.CallID == callID && cseq <= b.CSeq {
				return nil, statusErr(sip.StatusInternalServerError, "Out of Order CSeq", fmt.Errorf("cseq %d <= %d", cseq, b.CSeq))
			}
		}
		return nil, nil
	}
	out := cur
	var added []int
	for _, c := range contacts {
		i := slices.IndexFunc(out, func(b location.Binding) bool { return sameBinding(b, c) })
		if i >= 0 && out[i].CallID == callID && cseq <= out[i].CSeq {
			return nil, statusErr(sip.StatusInternalServerError, "Out of Order CSeq", fmt.Errorf("contact %s: cseq %d <= %d", c.uri, cseq, out[i].CSeq))
		}
		if c.expires == 0 {
			if i >= 0 {
				out = slices.Delete(out, i, i+1)
			}
			continue
		}
		var prev location.Binding
		if i >= 0 {
			prev = out[i]
		}
		b := location.Binding{
			AOR: aor, Contact: c.uri, Q: c.q,
			Expires: now.Add(time.Duration(c.expires) * time.Second),
			CallID:  own(prev.CallID, callID), CSeq: cseq,
			Instance: own(prev.Instance, c.instance), RegID: c.regID,
			Transport: src.transport, Source: src.addr,
			UserAgent: own(prev.UserAgent, ua), Updated: now,
		}
		if i >= 0 {
			out[i] = b
		} else {
			out = append(out, b)
			added = append(added, len(out)-1)
		}
	}
	// Over the cap, drop the least recently refreshed bindings, but never
	// one this request adds.
	for len(out) > r.maxContacts {
		oldest := -1
		for i, b := range out {
			if slices.Contains(added, i) {
				continue
			}
			if oldest < 0 || b.Updated.Before(out[oldest].Updated) {
				oldest = i
			}
		}
		if oldest < 0 {
			return nil, statusErr(sip.StatusForbidden, "Too Many Contacts", fmt.Errorf("%d contacts, max %d", len(out), r.maxContacts))
		}
		out = slices.Delete(out, oldest, oldest+1)
		for j := range added {
			if added[j] > oldest {
				added[j]--
			}
		}
	}
	return out, nil
}

// own returns s as a string of its own, not a part of the request it
// came from, which a stored binding would keep whole; old when it is the
// same, as on a refresh.
func own(old, s string) string {
	if old == s {
		return old
	}
	return strings.Clone(s)
}

// sameBinding matches a stored binding to a requested contact: by
// instance and reg-id when the UA gives them (RFC 5626 §6), else by URI.
func sameBinding(b location.Binding, c contactReq) bool {
	if c.instance != "" || b.Instance != "" {
		return b.Instance == c.instance && b.RegID == c.regID
	}
	return b.Contact == c.uri
}

// parseContacts reads the Contact and Expires header fields and applies
// the expiry rules: the contact's expires parameter, else the Expires
// header, else the default; capped at the maximum; 423 below the minimum.
func (r *Registrar) parseContacts(rq *regRequest) ([]contactReq, bool, error) {
	hdrExp := -1
	if v, ok := rq.fields.first("Expires"); ok {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return nil, false, statusErr(sip.StatusBadRequest, "Bad Expires", fmt.Errorf("Expires %q: %w", v, err))
		}
		hdrExp = int(min(n, 1<<31-1))
	}
	var out []contactReq
	star := false
	for _, ch := range rq.contacts {
		if ch.uri.Wildcard {
			star = true
			continue
		}
		c := contactReq{uri: contactURI(ch.uri), expires: hdrExp}
		if v, ok := ch.params.Get("expires"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			if err != nil {
				return nil, false, statusErr(sip.StatusBadRequest, "Bad Contact expires", fmt.Errorf("expires %q: %w", v, err))
			}
			c.expires = int(min(n, 1<<31-1))
		}
		if c.expires < 0 {
			c.expires = r.expDefault
		}
		if c.expires > 0 && c.expires < r.expMin {
			return nil, false, statusErr(sip.StatusIntervalToBrief, "Interval Too Brief",
				fmt.Errorf("contact %s expires %d < %d", c.uri, c.expires, r.expMin),
				[2]string{"Min-Expires", strconv.Itoa(r.expMin)})
		}
		c.expires = min(c.expires, r.expMax)
		if v, ok := ch.params.Get("q"); ok {
			q, err := strconv.ParseFloat(v, 64)
			if err != nil || q < 0 || q > 1 {
				return nil, false, statusErr(sip.StatusBadRequest, "Bad Contact q", fmt.Errorf("q %q", v))
			}
			c.q = int(q*1000 + 0.5)
		}
		if v, ok := ch.params.Get("+sip.instance"); ok {
			c.instance = strings.Trim(v, `"`)
		}
		if v, ok := ch.params.Get("reg-id"); ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return nil, false, statusErr(sip.StatusBadRequest, "Bad reg-id", fmt.Errorf("reg-id %q", v))
			}
			c.regID = n
		}
		out = append(out, c)
	}
	if star && (len(out) > 0 || hdrExp != 0) {
		return nil, false, statusErr(sip.StatusBadRequest, "Contact * needs Expires: 0 and no other contact", nil)
	}
	return out, star, nil
}

// contactURI is the contact's URI as stored: without its header params.
func contactURI(u sip.Uri) string {
	u.Headers = nil
	return u.String()
}

// appendContact appends a binding as a Contact value of a 200 to REGISTER.
func appendContact(dst []byte, b location.Binding, now time.Time) []byte {
	dst = append(append(append(dst, '<'), b.Contact...), ">;expires="...)
	dst = strconv.AppendInt(dst, max(0, int64(b.Expires.Sub(now).Round(time.Second)/time.Second)), 10)
	if b.Q > 0 {
		dst = strconv.AppendFloat(append(dst, ";q="...), float64(b.Q)/1000, 'f', -1, 64)
	}
	if b.Instance != "" {
		dst = append(append(append(dst, `;+sip.instance="`...), b.Instance...), '"')
	}
	if b.RegID > 0 {
		dst = strconv.AppendInt(append(dst, ";reg-id="...), int64(b.RegID), 10)
	}
	return dst
}

// aor is the canonical address-of-record of a local user.
func (r *Registrar) aor(user string) string { return "sip:" + user + "@" + r.domain }

// supported lists the option tags this registrar understands.
var supported = []string{"outbound"}

// checkRequire answers 420 Bad Extension for option tags we lack (RFC 3261 §8.2.2.3).
func (r *Registrar) checkRequire(fs fields, name string) error {
	var bad []string
	for v := range fs.all(name) {
		for _, tag := range strings.Split(v, ",") {
			tag = strings.TrimSpace(tag)
			if tag != "" && !slices.Contains(supported, strings.ToLower(tag)) {
				bad = append(bad, tag)
			}
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return statusErr(sip.StatusBadExtension, "Bad Extension", fmt.Errorf("%s: %s", name, strings.Join(bad, ", ")),
		[2]string{"Unsupported", strings.Join(bad, ", ")})
}

func hasOption(fs fields, header, tag string) bool {
	for v := range fs.all(header) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), tag) {
				return true
			}
		}
	}
	return false
}
