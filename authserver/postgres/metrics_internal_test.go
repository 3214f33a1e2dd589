package postgres

import (
	"context"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/tenantauth/tenantauth/authserver/store"
)

// TestMetrics runs a batch of three swaps and a batch the server refuses,
// and reads what the store's collector says of them and of its pool.
func TestMetrics(t *testing.T) {
	s := migrated(t)
	s.batch = newBatcher(s, 1)
	ctx := context.Background()
	batchOf := func(n int, bad bool) []*pendingSwap {
		var batch []*pendingSwap
		for range n {
			r := &store.Record{Kind: store.KindSession, ID: fmt.Sprintf("ses_%d_%t", len(batch), bad), UserID: "usr_1", Data: []byte("v1")}
			if err := s.Create(ctx, r); err != nil {
				t.Fatal(err)
			}
			next := *r
			next.Data = []byte("v2")
			if bad {
				next.UserID = "usr_\x00" // PostgreSQL refuses a NUL in text: 22021
			}
			batch = append(batch, pending(ctx, &next, nil))
		}
		return batch
	}
	s.batch.exec(ctx, batchOf(3, false))
	s.batch.exec(ctx, batchOf(2, true))

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s)
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", err, problems)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	value := func(name string, labels ...string) float64 {
		t.Helper()
		for _, f := range families {
			if f.GetName() != name {
				continue
			}
			for _, m := range f.GetMetric() {
				if matches(m, labels) {
					return m.GetCounter().GetValue() + m.GetGauge().GetValue()
				}
			}
		}
		t.Fatalf("no metric %s%v", name, labels)
		return 0
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"tenantauth_postgres_swap_batches_total", nil, 2},
		{"tenantauth_postgres_batched_swaps_total", nil, 3},
		{"tenantauth_postgres_swap_batch_refusals_total", []string{"code", "22021"}, 1},
		{"tenantauth_postgres_pool_max_connections", nil, defaultMaxConns},
		{"tenantauth_postgres_pool_connections", []string{"state", "acquired"}, 0},
	} {
		if got := value(c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if got := value("tenantauth_postgres_pool_acquires_total"); got < 7 { // 5 creates, 2 batches
		t.Errorf("pool acquires %v, want at least 7", got)
	}
}

// matches reports whether m has each name and value pair of labels.
func matches(m *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, l := range m.GetLabel() {
			found = found || l.GetName() == labels[i] && l.GetValue() == labels[i+1]
		}
		if !found {
			return false
		}
	}
	return true
}
