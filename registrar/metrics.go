package registrar

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the registrar's Prometheus collectors, in a registry of
// their own.
type Metrics struct {
	Registry     *prometheus.Registry
	requests     *prometheus.CounterVec
	responses    *prometheus.CounterVec
	authFailures *prometheus.CounterVec
	bindings     prometheus.Gauge
	transactions prometheus.Gauge
	dropped      prometheus.Counter
}

// NewMetrics creates the collectors and registers them, with the Go and
// process collectors, in a new registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sip_requests_total", Help: "SIP requests received, by method.",
		}, []string{"method"}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sip_responses_total", Help: "SIP responses sent, by request method and class.",
		}, []string{"method", "class"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sip_auth_failures_total", Help: "Digest authentications that failed, by reason.",
		}, []string{"reason"}),
		bindings: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sip_bindings_active", Help: "Unexpired contact bindings.",
		}),
		transactions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sip_transactions_active", Help: "Server transactions being handled.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sip_register_dropped_total", Help: "UDP REGISTERs dropped because every worker was busy; their UAs retransmit.",
		}),
	}
	m.Registry.MustRegister(m.requests, m.responses, m.authFailures, m.bindings, m.transactions, m.dropped,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}
