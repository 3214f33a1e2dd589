package authserver

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tenantauth/tenantauth/authserver/account"
)

const alicePassword = "correct horse battery"

// second is another server, a second replica, on h's directory and store.
func (h *flowHarness) second() (*Server, *harness) {
	h.t.Helper()
	srv := New(h.srv.Config(), h.dir, h.store, testKey, WithMailer(h.mail), WithMembershipWriter(h.members))
	ts := httptest.NewServer(srv)
	h.t.Cleanup(ts.Close)
	return srv, &harness{t: h.t, srv: srv, dir: h.dir, store: h.store, clock: h.clock, http: ts}
}

// lockoutNotices counts the slow-down mails to addr.
func (h *flowHarness) lockoutNotices(addr string, others ...*Server) int {
	h.t.Helper()
	for _, s := range others {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if q := s.accounts.MailQueue(); q != nil {
			_ = q.Flush(ctx)
		}
		cancel()
	}
	n := 0
	for _, m := range h.mailsTo(addr) {
		if strings.Contains(m.Subject, "Failed sign-in attempts") {
			n++
			if strings.Contains(m.Text, "token=") {
				h.t.Fatalf("the notice carries a link token: %q", m.Text)
			}
		}
	}
	return n
}

func retryAfter(t *testing.T, r response) time.Duration {
	t.Helper()
	n, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || n < 1 {
		t.Fatalf("no Retry-After on %d %s", r.status, r.raw)
	}
	return time.Duration(n) * time.Second
}

// TestLockoutAcrossServers guesses alice's password through two replicas
// sharing one store: the count is shared, the slow-down starts at the
// threshold on both, alice is mailed once, the right password waits like
// any other, and a success resets the count. An unknown email gets the
// very same answers.
func TestLockoutAcrossServers(t *testing.T) {
	h := newFlowHarness(t, func(c *Config) { c.RateLimitPerMinute = 0 })
	h.srv.limiter = newRateLimiter(0, time.Minute, h.clock.Now)
	h.addMember("demo/acme", "alice@acme.com", "owner", alicePassword)
	srv2, h2 := h.second()
	servers := []*harness{h.harness, h2}
	login := func(i int, email, password string) response {
		return servers[i%2].do("POST", "/auth/login", map[string]string{"email": email, "password": password})
	}
	for _, email := range []string{"alice@acme.com", "nobody@acme.com"} {
		var answers []string
		for i := range account.LockoutThreshold {
			r := login(i, email, fmt.Sprintf("wrong guess %d", i))
			answers = append(answers, fmt.Sprint(r.status, r.errCode()))
			if r.status != 401 || r.errCode() != "invalid_credentials" {
				t.Fatalf("%s guess %d: %d %s", email, i, r.status, r.raw)
			}
		}
		// Past the threshold, on either replica, even the right password
		// waits.
		for i := range 2 {
			r := login(i, email, alicePassword)
			if r.status != 429 || r.errCode() != "too_many_failures" {
				t.Fatalf("%s after %d failures, server %d: %d %s", email, account.LockoutThreshold, i, r.status, r.raw)
			}
			answers = append(answers, fmt.Sprint(r.status, r.errCode(), r.header.Get("Retry-After")))
		}
		// The next wrong guess after the wait doubles it.
		h.clock.Add(retryAfter(t, login(0, email, "x")))
		if r := login(1, email, "wrong again"); r.status != 401 {
			t.Fatalf("%s guess after the wait: %d %s", email, r.status, r.raw)
		}
		r := login(0, email, alicePassword)
		if r.status != 429 || retryAfter(t, r) != 2*account.LockoutDelay(account.LockoutThreshold) {
			t.Fatalf("%s: delay did not double: %d %s", email, r.status, r.header.Get("Retry-After"))
		}
		h.clock.Add(retryAfter(t, r))
		t.Logf("%s: %v", email, answers)
	}
	if n := h.lockoutNotices("alice@acme.com", srv2); n != 1 {
		t.Fatalf("%d slow-down notices to alice, want 1", n)
	}
	if n := h.lockoutNotices("nobody@acme.com", srv2); n != 0 {
		t.Fatalf("an unknown email was mailed")
	}
	// The legitimate user gets in once the wait is over, which resets the
	// count: five fresh failures are allowed again.
	if r := login(1, "alice@acme.com", alicePassword); r.status != 200 || r.str("access_token") == "" {
		t.Fatalf("alice after the wait: %d %s", r.status, r.raw)
	}
	for i := range account.LockoutThreshold {
		if r := login(i, "alice@acme.com", "wrong"); r.status != 401 {
			t.Fatalf("after a success, guess %d: %d %s", i, r.status, r.raw)
		}
	}
}

// TestLockoutAcrossIntermediateSessions guesses TOTP codes through fresh
// intermediate sessions (a new login gives a new one): the count is per
// user, so the slow-down comes all the same, and a right password does
// not reset it.
func TestLockoutAcrossIntermediateSessions(t *testing.T) {
	h := newFlowHarness(t)
	h.addMember("demo/acme", "alice@acme.com", "owner", alicePassword)
	tok := h.login("alice@acme.com", alicePassword, "acme").str("access_token")
	secret, recovery := h.enableTOTP(tok)
	intermediate := func() string {
		r := h.do("POST", "/auth/login", map[string]string{"email": "alice@acme.com", "password": alicePassword, "organization": "acme"})
		if r.status != 200 || r.str("intermediate_session_token") == "" {
			t.Fatalf("login: %d %s", r.status, r.raw)
		}
		return r.str("intermediate_session_token")
	}
	verify := func(ist string, body map[string]string) response {
		body["intermediate_session_token"] = ist
		return h.do("POST", "/auth/2fa/verify", body)
	}
	failures := 0
	for _, guesses := range []int{3, 2} {
		ist := intermediate()
		for range guesses {
			kind := map[string]string{"code": "000000"}
			if failures%2 == 1 {
				kind = map[string]string{"recovery_code": "aaaaa-bbbbb"}
			}
			if r := verify(ist, kind); r.status != 401 || r.errCode() != "invalid_code" {
				t.Fatalf("wrong code %d: %d %s", failures, r.status, r.raw)
			}
			failures++
		}
	}
	ist := intermediate() // a right password leaves the count alone
	r := verify(ist, map[string]string{"code": h.totpCode(secret, 0)})
	if r.status != 429 || r.errCode() != "too_many_failures" {
		t.Fatalf("a right code in a third session after %d failures: %d %s", failures, r.status, r.raw)
	}
	if r := verify(ist, map[string]string{"recovery_code": recovery[0]}); r.status != 429 {
		t.Fatalf("a recovery code during the slow-down: %d %s", r.status, r.raw)
	}
	if n := h.lockoutNotices("alice@acme.com"); n != 1 {
		t.Fatalf("%d notices, want 1", n)
	}
	h.clock.Add(retryAfter(t, r))
	if r := verify(ist, map[string]string{"code": h.totpCode(secret, 0)}); r.status != 200 || r.str("access_token") == "" {
		t.Fatalf("a right code after the wait: %d %s", r.status, r.raw)
	}
}

// TestLockoutLocksUntilReset makes account.LockoutMaxFailures consecutive failures,
// waiting out each slow-down: then the account is locked, even for the
// right password, until a password reset.
func TestLockoutLocksUntilReset(t *testing.T) {
	h := newFlowHarness(t)
	h.addMember("demo/acme", "alice@acme.com", "owner", alicePassword)
	for i := range account.LockoutMaxFailures {
		h.clock.Add(account.LockoutMaxDelay)
		if r := h.do("POST", "/auth/login", map[string]string{"email": "alice@acme.com", "password": "guess"}); r.status != 401 {
			t.Fatalf("guess %d: %d %s", i, r.status, r.raw)
		}
	}
	h.clock.Add(24 * time.Hour)
	r := h.do("POST", "/auth/login", map[string]string{"email": "alice@acme.com", "password": alicePassword})
	if r.status != 403 || r.errCode() != "account_locked" {
		t.Fatalf("after %d failures: %d %s", account.LockoutMaxFailures, r.status, r.raw)
	}
	if n := h.lockoutNotices("alice@acme.com"); n != 1 {
		t.Fatalf("%d notices over one episode, want 1", n)
	}
	if r := h.do("POST", "/auth/forgot-password", map[string]string{"email": "alice@acme.com"}); r.status != 202 {
		t.Fatalf("forgot: %d %s", r.status, r.raw)
	}
	if r := h.do("POST", "/auth/reset-password", map[string]string{"token": h.tokenFromMail("alice@acme.com"), "password": "a brand new passphrase"}); r.status != http.StatusNoContent {
		t.Fatalf("reset: %d %s", r.status, r.raw)
	}
	h.login("alice@acme.com", "a brand new passphrase", "acme")
}
