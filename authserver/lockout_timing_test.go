package authserver

import (
	"fmt"
	"testing"
	"time"

	"github.com/tenantauth/tenantauth/authserver/account"
)

// TestLoginAnswersAlikeInTime checks that a wrong password for a member
// and any password for an unknown email take the same time, lockout
// counting included (the member's count is written to the store, the
// unknown email's to a decoy shard): median latencies over interleaved
// requests differ by less than 10%; a round disturbed by other load is
// measured again, up to four times. Each address is used fewer times than
// the lockout threshold, so neither side is slowed down.
func TestLoginAnswersAlikeInTime(t *testing.T) {
	if testing.Short() {
		t.Skip("timing comparison skipped in -short mode")
	}
	const samples = 200
	h := newHarness(t, nil, func(c *Config) {
		c.RateLimitPerMinute = -1
		c.Argon2 = account.Argon2Params{MemoryKiB: 4096, Time: 1, Threads: 1}
	})
	const members = samples // each used at most once a round, four rounds
	for i := range members {
		h.addMember("demo/acme", fmt.Sprintf("m%d@acme.com", i), "member", alicePassword)
	}
	nm, nu := 0, 0
	send := func(email string) time.Duration {
		start := time.Now()
		r := h.do("POST", "/auth/login", map[string]string{"email": email, "password": "not the password"})
		d := time.Since(start)
		if r.status != 401 || r.errCode() != "invalid_credentials" {
			t.Fatalf("%s: %d %s", email, r.status, r.raw)
		}
		return d
	}
	member := func() string { nm++; return fmt.Sprintf("m%d@acme.com", nm%members) }
	unknown := func() string { nu++; return fmt.Sprintf("nobody%d@acme.com", nu) }
	for range 20 {
		send(unknown())
	}
	var diff float64
	for round := 1; round <= 4; round++ {
		var a, b []time.Duration
		for i := 0; i < samples; i += 4 {
			a = append(a, send(member()))
			b = append(b, send(unknown()))
			b = append(b, send(unknown()))
			a = append(a, send(member()))
		}
		ma, mb := median(a), median(b)
		diff = float64(max(ma, mb)-min(ma, mb)) / float64(min(ma, mb))
		t.Logf("round %d: median %v for a member, %v for an unknown email (%.1f%% apart)", round, ma, mb, 100*diff)
		if diff < 0.10 {
			break
		}
	}
	if diff >= 0.10 {
		t.Fatalf("medians differ by %.1f%%", 100*diff)
	}
}
