package saml

import (
	"context"
	"errors"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/tenantauth/tenantauth/authserver/store"
)

func TestStoreReplayCache(t *testing.T) {
	ctx := context.Background()
	st := store.NewMemoryStore()
	c := StoreReplayCache{Store: st}
	exp := time.Now().Add(time.Minute)
	if err := c.Consume(ctx, "https://idp-a", "id-1", exp); err != nil {
		t.Fatal(err)
	}
	if err := c.Consume(ctx, "https://idp-a", "id-1", exp); !errors.Is(err, ErrReplayed) {
		t.Fatalf("second use: %v", err)
	}
	// Another IdP may pick the same assertion ID.
	if err := c.Consume(ctx, "https://idp-b", "id-1", exp); err != nil {
		t.Fatalf("same ID from another IdP: %v", err)
	}
	id := ReplayRecordID("https://idp-a", "id-1")
	if !regexp.MustCompile(`^samlassertion_[0-9a-f]{64}$`).MatchString(id) {
		t.Fatalf("record ID %q is not a hash fit for every backend", id)
	}
	rec, err := st.Get(ctx, store.KindToken, id)
	if err != nil || !rec.ExpiresAt.Equal(exp.UTC()) {
		t.Fatalf("record: %+v, %v", rec, err)
	}
	// The record goes when the assertion could no longer be accepted.
	if n, err := st.DeleteExpired(ctx, exp.Add(time.Second)); err != nil || n != 2 {
		t.Fatalf("DeleteExpired: %d, %v", n, err)
	}
}

// TestStoreReplayCacheConcurrent: of many replicas given one assertion at
// once, exactly one accepts it.
func TestStoreReplayCacheConcurrent(t *testing.T) {
	c := StoreReplayCache{Store: store.NewMemoryStore()}
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := 0
	for range 32 {
		wg.Go(func() {
			if c.Consume(context.Background(), "https://idp", "id-race", time.Now().Add(time.Minute)) == nil {
				mu.Lock()
				accepted++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if accepted != 1 {
		t.Fatalf("%d replicas accepted the assertion", accepted)
	}
}
