package registrar

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// track runs one request's handling: it counts it, maps an error to its
// response in this one place, sends the response and logs failures once.
func (r *Registrar) track(req *sip.Request, tx sip.ServerTransaction, handle func(ctx context.Context) (*sip.Response, error)) {
	r.metrics.transactions.Inc()
	defer r.metrics.transactions.Dec()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tx.OnTerminate(func(string, error) { cancel() })

	if res := r.answer(ctx, req, handle); res != nil {
		r.respond(tx, req, res)
	}
}

// answer counts req and runs handle, mapping an error to its response;
// it returns nil when handle has answered by itself.
func (r *Registrar) answer(ctx context.Context, req *sip.Request, handle func(ctx context.Context) (*sip.Response, error)) *sip.Response {
	r.metrics.requests.WithLabelValues(methodLabel(req.Method)).Inc()
	res, err := handle(ctx)
	if err != nil {
		res = r.errorResponse(req, err)
	}
	return res
}

// errorResponse maps err to a final response: a *StatusError as it says,
// anything else 500.
func (r *Registrar) errorResponse(req *sip.Request, err error) *sip.Response {
	return r.refusal(req, err).response(req)
}

// response renders se as the final response to req, for sipgo.
func (se *StatusError) response(req *sip.Request) *sip.Response {
	res := sip.NewResponseFromRequest(req, se.Code, se.Reason, nil)
	for _, h := range se.Headers {
		res.AppendHeader(sip.NewHeader(h[0], h[1]))
	}
	return res
}

// appendHeaders appends se's own header fields in wire form, the same as
// response adds.
func (se *StatusError) appendHeaders(dst []byte) []byte {
	for _, h := range se.Headers {
		dst = append(append(append(append(dst, h[0]...), ": "...), h[1]...), "\r\n"...)
	}
	return dst
}

// refusal maps err to the status to answer, and logs it: a *StatusError
// as it says, anything else 500.
func (r *Registrar) refusal(req *sip.Request, err error) *StatusError {
	se, level := refusal(err)
	if r.log.Enabled(context.Background(), level) {
		r.logRefusal(level, req.Method, callID(req), addrOf(req), se)
	}
	return se
}

// refusal maps err to the status to answer, and the level to log it at.
func refusal(err error) (*StatusError, slog.Level) {
	var se *StatusError
	if !errors.As(err, &se) {
		se = statusErr(sip.StatusInternalServerError, "Server Internal Error", err)
	}
	switch {
	case se.Code == sip.StatusUnauthorized || se.Code == sip.StatusProxyAuthRequired:
		if se.Err == nil {
			return se, slog.LevelDebug // a plain challenge
		}
	case se.Code >= 500:
		return se, slog.LevelError
	}
	return se, slog.LevelInfo
}

func (r *Registrar) logRefusal(level slog.Level, method sip.RequestMethod, callID, from string, se *StatusError) {
	r.log.Log(context.Background(), level, "request refused", "method", string(method), "call_id", callID,
		"from", from, "status", se.Code, "error", se.Err)
}

func (r *Registrar) respond(tx sip.ServerTransaction, req *sip.Request, res *sip.Response) {
	if req.IsInvite() && res.StatusCode >= 300 && toTag(req) != "" && strings.EqualFold(req.Transport(), "UDP") {
		// Its ACK comes with a route set of ours, and is for tx: the
		// socket reader is not to relay it.
		if v := req.Via(); v != nil {
			if b, ok := v.Params.Get("branch"); ok {
				r.refused.add(req.Source(), b, r.now())
			}
		}
	}
	r.sent(req.Method, callID(req), res.StatusCode, tx.Respond(res))
}

// sent counts a response that went out, or logs why it did not.
func (r *Registrar) sent(method sip.RequestMethod, callID string, code int, err error) {
	if err != nil {
		r.log.Debug("respond", "call_id", callID, "status", code, "error", err)
		return
	}
	r.metrics.responses.WithLabelValues(methodLabel(method), statusClass(code)).Inc()
}

var statusClasses = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx", "6xx"}

// statusClass is code's class label, without formatting one per response.
func statusClass(code int) string {
	if i := code/100 - 1; i >= 0 && i < len(statusClasses) {
		return statusClasses[i]
	}
	return strconv.Itoa(code/100) + "xx"
}

// methodLabel bounds the metric labels: any method can arrive.
func methodLabel(m sip.RequestMethod) string {
	switch m {
	case sip.REGISTER, sip.ACK, sip.CANCEL:
		return string(m)
	}
	if slices.Contains(proxiedMethods, m) {
		return string(m)
	}
	return "other"
}

func addrOf(req *sip.Request) string {
	if f := req.From(); f != nil {
		return f.Address.String()
	}
	return ""
}
