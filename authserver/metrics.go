package authserver

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the auth server's Prometheus metrics.
type Metrics struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	issued        *prometheus.CounterVec
	verifications *prometheus.CounterVec
}

// NewMetrics makes the metrics and registers them with reg (nil: none).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantauth_http_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tenantauth_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
		issued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantauth_tokens_issued_total", Help: "Tokens issued by kind (access, refresh, intermediate).",
		}, []string{"kind"}),
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantauth_verifications_total", Help: "Credential verifications by credential kind and result.",
		}, []string{"kind", "result"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.issued, m.verifications)
	}
	return m
}
