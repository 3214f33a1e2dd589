package authserver

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr/funcr"

	"github.com/tenantauth/tenantauth/authserver/store"
)

// downStore is a store that cannot be reached.
type downStore struct{ *store.MemoryStore }

func (downStore) Get(context.Context, string, string) (*store.Record, error) {
	return nil, errTransient
}

// TestClientErrorsDoNotFloodTheLog sends many requests that each make the
// server log a line (the store is down): the log holds a bounded number of
// lines, and the count of those dropped.
func TestClientErrorsDoNotFloodTheLog(t *testing.T) {
	const requests = 500
	var mu sync.Mutex
	var lines []string
	logger := funcr.New(func(prefix, args string) {
		mu.Lock()
		lines = append(lines, args)
		mu.Unlock()
	}, funcr.Options{})
	h := newHarness(t, nil)
	srv := New(h.srv.Config(), h.dir, downStore{store.NewMemoryStore()}, testKey, WithLogger(logger))
	ts := httptest.NewServer(srv)
	defer ts.Close()
	h.http = ts
	for i := range requests {
		r := h.do("POST", "/auth/login", map[string]string{"email": "alice@acme.com", "password": "guess" + strings.Repeat("x", i%7)})
		if r.status != 503 || r.errCode() != "store_unavailable" {
			t.Fatalf("request %d: %d %s", i, r.status, r.raw)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lines) == 0 || len(lines) > 60 {
		t.Fatalf("%d requests wrote %d log lines; want between 1 and 60", requests, len(lines))
	}
	// Whatever is logged carries no secret from the requests.
	for _, l := range lines {
		if strings.Contains(l, "guess") {
			t.Fatalf("a password reached the log: %s", l)
		}
	}
}
