package registrar

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sipline/sipline/registrar/location"
)

// AdminHandler serves /healthz, /registrations and /metrics, and Go's
// profiles under /debug/pprof/. The admin listener is off by default and
// meant for loopback.
func (r *Registrar) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /registrations", r.serveRegistrations)
	mux.Handle("GET /metrics", promhttp.HandlerFor(r.metrics.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return mux
}

type registrationJSON struct {
	AOR      string        `json:"aor"`
	Contacts []contactJSON `json:"contacts"`
}

type contactJSON struct {
	URI       string  `json:"uri"`
	Expires   int     `json:"expires"`
	Q         float64 `json:"q,omitempty"`
	Transport string  `json:"transport"`
	Source    string  `json:"source"`
	Instance  string  `json:"instance,omitempty"`
	RegID     int     `json:"reg_id,omitempty"`
	UserAgent string  `json:"user_agent,omitempty"`
}

func (r *Registrar) serveRegistrations(w http.ResponseWriter, req *http.Request) {
	now := r.now()
	out := []registrationJSON{}
	err := r.store.Range(req.Context(), func(aor string, bs []location.Binding) bool {
		bs = live(bs, now)
		if len(bs) == 0 {
			return true
		}
		reg := registrationJSON{AOR: aor}
		for _, b := range bs {
			reg.Contacts = append(reg.Contacts, contactJSON{
				URI: b.Contact, Expires: int(b.Expires.Sub(now).Round(time.Second) / time.Second),
				Q: float64(b.Q) / 1000, Transport: b.Transport, Source: b.Source,
				Instance: b.Instance, RegID: b.RegID, UserAgent: b.UserAgent,
			})
		}
		out = append(out, reg)
		return true
	})
	if err != nil {
		r.log.Error("list registrations", "error", err)
		http.Error(w, "store: "+err.Error(), http.StatusInternalServerError)
		return
	}
	sort.Slice(out, func(i, j int) bool { return out[i].AOR < out[j].AOR })
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(out)
}
