package authserver

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/tenantauth/tenantauth/authserver/account"
	"github.com/tenantauth/tenantauth/authserver/mail"
)

// slowMailer is a mail server that takes a while per message and notes
// when each recipient's mail arrived.
type slowMailer struct {
	delay time.Duration
	mu    sync.Mutex
	at    map[string]time.Time
}

func (m *slowMailer) Send(_ context.Context, msg mail.Message) error {
	time.Sleep(m.delay)
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.at[msg.To]; !ok {
		m.at[msg.To] = time.Now()
	}
	return nil
}

func (m *slowMailer) arrived(to string) (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.at[to]
	return t, ok
}

// TestSignupFloodDoesNotDelayOtherMail floods register with 2,000
// signups from 100 client addresses (each within its rate limit), then a
// member asks for a magic link: it must go out within seconds, not after
// the flood's hashes and mails.
func TestSignupFloodDoesNotDelayOtherMail(t *testing.T) {
	if testing.Short() {
		t.Skip("flood skipped in -short mode")
	}
	const clients, perClient = 100, 20
	h := signupHarness(t)
	cfg := h.srv.Config()
	cfg.TrustedProxies = loopbackProxy
	cfg.RateLimitPerMinute = perClient
	cfg.Argon2 = account.Argon2Params{MemoryKiB: 2048, Time: 2, Threads: 1} // a few ms a hash
	mailer := &slowMailer{delay: 10 * time.Millisecond, at: map[string]time.Time{}}
	h.srv = New(cfg, h.dir, h.store, testKey, WithMailer(mailer), WithMembershipWriter(h.members))
	h.http.Close()
	h.http = httptest.NewServer(h.srv)
	t.Cleanup(h.http.Close)
	h.addMember("demo/acme", "alice@acme.com", "owner", "")

	var wg sync.WaitGroup
	var mu sync.Mutex
	answers := map[int]int{}
	for c := range clients {
		wg.Go(func() {
			for i := range perClient {
				r := h.do("POST", "/auth/register", map[string]string{"email": fmt.Sprintf("flood%d-%d@acme.com", c, i),
					"password": goodPassword, "organization": "acme"}, "X-Forwarded-For", fmt.Sprintf("198.51.%d.%d", c/250, c%250+1))
				mu.Lock()
				answers[r.status]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if answers[202] == 0 || answers[429] > 0 || answers[500] > 0 {
		t.Fatalf("flood answers: %v", answers)
	}
	start := time.Now()
	if r := h.do("POST", "/users/send-magic-link", map[string]string{"email_address": "alice@acme.com"}, "X-Forwarded-For", "203.0.113.7"); r.status != 202 {
		t.Fatalf("alice's magic link: %d %s", r.status, r.raw)
	}
	deadline := start.Add(30 * time.Second)
	for {
		if at, ok := mailer.arrived("alice@acme.com"); ok {
			delay := at.Sub(start)
			t.Logf("flood answers %v; alice's mail after %v", answers, delay)
			if delay > 3*time.Second {
				t.Fatalf("alice's magic link took %v behind the flood", delay)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("alice's magic link never went out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
