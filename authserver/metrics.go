package authserver

import (
	"maps"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the auth server's Prometheus metrics.
type Metrics struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	issued        *prometheus.CounterVec
	verifications *prometheus.CounterVec
	// verified holds the verification counters already resolved, so the
	// hot path neither hashes label values nor builds their slice.
	verified *counterCache[verificationLabels]
}

// verificationLabels are the labels of tenantauth_verifications_total.
type verificationLabels struct{ kind, result string }

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
	m.verified = newCounterCache(func(l verificationLabels) prometheus.Counter {
		return m.verifications.WithLabelValues(l.kind, l.result)
	})
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.issued, m.verifications)
	}
	return m
}

// routeRequests returns the request counters of one route by status code.
func (m *Metrics) routeRequests(route string) *counterCache[int] {
	return newCounterCache(func(code int) prometheus.Counter {
		return m.requests.WithLabelValues(route, strconv.Itoa(code))
	})
}

// counterCache resolves each label value of a counter vector once.
// Readers load an immutable map without locking; a value not seen before
// is resolved under the mutex and published in a copy of the map. The
// values are few (status codes, error codes), so the copies stay small.
// A child is only created on first use, as WithLabelValues would, so
// /metrics shows the same series as before.
type counterCache[K comparable] struct {
	mu      sync.Mutex
	byLabel atomic.Pointer[map[K]prometheus.Counter]
	resolve func(K) prometheus.Counter
}

func newCounterCache[K comparable](resolve func(K) prometheus.Counter) *counterCache[K] {
	return &counterCache[K]{resolve: resolve}
}

// get returns the counter of label k.
func (c *counterCache[K]) get(k K) prometheus.Counter {
	if m := c.byLabel.Load(); m != nil {
		if ctr, ok := (*m)[k]; ok {
			return ctr
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.byLabel.Load()
	if old != nil {
		if ctr, ok := (*old)[k]; ok {
			return ctr
		}
	}
	next := map[K]prometheus.Counter{}
	if old != nil {
		next = maps.Clone(*old)
	}
	ctr := c.resolve(k)
	next[k] = ctr
	c.byLabel.Store(&next)
	return ctr
}
