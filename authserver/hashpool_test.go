package authserver

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tenantauth/tenantauth/authserver/account"
)

// TestHashPoolSheds fills the argon2 pool (one slot, one queued login):
// every further login, for a member or an unknown email alike, is shed
// with 503 busy and Retry-After before any hash starts; once the slot
// frees, the member signs in.
func TestHashPoolSheds(t *testing.T) {
	h := newHarness(t, nil, func(c *Config) { c.PasswordHashConcurrency, c.PasswordHashQueue = 1, 1 })
	h.addMember("demo/acme", "alice@acme.com", "owner", alicePassword)
	acc := h.srv.accounts
	hold := make(chan struct{})
	running := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { _ = acc.OccupyHashSlot(context.Background(), func() { close(running); <-hold }) })
	<-running
	queued := make(chan response, 1)
	wg.Go(func() {
		queued <- h.do("POST", "/auth/login", map[string]string{"email": "alice@acme.com", "password": alicePassword, "organization": "acme"})
	})
	deadline := time.Now().Add(5 * time.Second)
	for acc.HashAdmitted() < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	for _, email := range []string{"alice@acme.com", "nobody@acme.com"} {
		r := h.do("POST", "/auth/login", map[string]string{"email": email, "password": alicePassword})
		if r.status != 503 || r.errCode() != "busy" || r.header.Get("Retry-After") == "" {
			t.Fatalf("%s with the pool full: %d %s", email, r.status, r.raw)
		}
	}
	close(hold)
	if r := <-queued; r.status != 200 {
		t.Fatalf("the queued login: %d %s", r.status, r.raw)
	}
	wg.Wait()
	h.login("alice@acme.com", alicePassword, "acme")
	// Nothing shed was counted as a failure: five wrong passwords still
	// answer 401, not 429.
	for i := range account.LockoutThreshold {
		if r := h.do("POST", "/auth/login", map[string]string{"email": "alice@acme.com", "password": "wrong"}); r.status != 401 {
			t.Fatalf("wrong password %d: %d %s", i, r.status, r.raw)
		}
	}
}
