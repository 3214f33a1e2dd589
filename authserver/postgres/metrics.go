package postgres

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics of the store, for an operator to see the pool and the batching
// (see batcher) under load. Store is a prometheus.Collector of them; the
// auth server registers it with its other metrics.
var (
	poolConnsDesc = prometheus.NewDesc("tenantauth_postgres_pool_connections",
		"Connections of the store's pool by state (acquired, idle, constructing).", []string{"state"}, nil)
	poolMaxDesc = prometheus.NewDesc("tenantauth_postgres_pool_max_connections",
		"The pool's bound on connections.", nil, nil)
	poolAcquiresDesc = prometheus.NewDesc("tenantauth_postgres_pool_acquires_total",
		"Connections taken from the pool.", nil, nil)
	poolWaitsDesc = prometheus.NewDesc("tenantauth_postgres_pool_waited_acquires_total",
		"Connections taken from the pool that had to wait for one: the pool was empty.", nil, nil)
	poolWaitSecondsDesc = prometheus.NewDesc("tenantauth_postgres_pool_acquire_wait_seconds_total",
		"Time spent waiting for a connection of an empty pool.", nil, nil)
	batchesDesc = prometheus.NewDesc("tenantauth_postgres_swap_batches_total",
		"Statements the batcher ran, each deciding one or more compare-and-swap writes.", nil, nil)
	batchedSwapsDesc = prometheus.NewDesc("tenantauth_postgres_batched_swaps_total",
		"Compare-and-swap writes decided by a statement of more than one.", nil, nil)
	batchRefusalsDesc = prometheus.NewDesc("tenantauth_postgres_swap_batch_refusals_total",
		"Batches the server refused, by SQLSTATE (55P03: a row lock held past the lock timeout); their swaps ran alone.",
		[]string{"code"}, nil)
)

// Describe implements prometheus.Collector.
func (s *Store) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{poolConnsDesc, poolMaxDesc, poolAcquiresDesc, poolWaitsDesc, poolWaitSecondsDesc} {
		ch <- d
	}
	if s.batch != nil {
		ch <- batchesDesc
		ch <- batchedSwapsDesc
		ch <- batchRefusalsDesc
	}
}

// Collect implements prometheus.Collector.
func (s *Store) Collect(ch chan<- prometheus.Metric) {
	st := s.pool.Stat()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge(poolConnsDesc, float64(st.AcquiredConns()), "acquired")
	gauge(poolConnsDesc, float64(st.IdleConns()), "idle")
	gauge(poolConnsDesc, float64(st.ConstructingConns()), "constructing")
	gauge(poolMaxDesc, float64(st.MaxConns()))
	counter(poolAcquiresDesc, float64(st.AcquireCount()))
	counter(poolWaitsDesc, float64(st.EmptyAcquireCount()))
	counter(poolWaitSecondsDesc, st.EmptyAcquireWaitTime().Seconds())
	if b := s.batch; b != nil {
		counter(batchesDesc, float64(b.batches.Load()))
		counter(batchedSwapsDesc, float64(b.batched.Load()))
		for code, n := range b.refusalCounts() {
			counter(batchRefusalsDesc, float64(n), code)
		}
	}
}

var _ prometheus.Collector = (*Store)(nil)
