package authserver

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tenantauth/tenantauth/authserver/account"
	"github.com/tenantauth/tenantauth/authserver/token"

	"github.com/tenantauth/tenantauth/authserver/store"
)

// liveTokens counts the user's token records in the store, by class.
// The classes of token records the caps keep apart.
const (
	tokenClassMailed       = "mailed"
	tokenClassIntermediate = "intermediate"
)

func liveTokens(t *testing.T, st store.Store, userID, class string) int {
	t.Helper()
	recs, err := st.ListByUser(context.Background(), store.KindToken, userID)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range recs {
		intermediate := strings.HasPrefix(r.ID, token.PrefixIntermediate+"_")
		if (class == tokenClassIntermediate) == intermediate && !strings.HasPrefix(r.ID, "vs_") {
			n++
		}
	}
	return n
}

// TestMagicLinksReplaceTheOldest asks ten links for one member: at most
// MaxOutstandingTokens records remain, the newest link works, the oldest
// does not.
func TestMagicLinksReplaceTheOldest(t *testing.T) {
	for _, limit := range []int{1, account.DefaultMaxOutstandingTokens} {
		h := newFlowHarness(t, func(c *Config) { c.MaxOutstandingTokens = limit })
		uid := h.addMember("demo/acme", "alice@acme.com", "owner", "")
		var tokens []string
		for range 10 {
			if r := h.do("POST", "/users/send-magic-link", map[string]string{"email_address": "alice@acme.com"}); r.status != 202 {
				t.Fatalf("send: %d %s", r.status, r.raw)
			}
			tokens = append(tokens, h.tokenFromMail("alice@acme.com"))
			h.clock.Add(time.Second)
		}
		if n := liveTokens(t, h.store, uid, tokenClassMailed); n > limit {
			t.Fatalf("limit %d: %d token records after 10 sends", limit, n)
		}
		oldest := h.do("POST", "/users/authenticate-magic-link", map[string]string{"token": tokens[0]})
		if oldest.status != 401 || oldest.errCode() != "token_invalid" {
			t.Fatalf("limit %d: the oldest link: %d %s", limit, oldest.status, oldest.raw)
		}
		if limit > 1 {
			kept := h.do("POST", "/users/authenticate-magic-link", map[string]string{"token": tokens[10-limit]})
			if kept.status != 200 {
				t.Fatalf("limit %d: the oldest link kept: %d %s", limit, kept.status, kept.raw)
			}
		}
		newest := h.do("POST", "/users/authenticate-magic-link", map[string]string{"token": tokens[9]})
		if newest.status != 200 || newest.str("intermediate_session_token") == "" {
			t.Fatalf("limit %d: the newest link: %d %s", limit, newest.status, newest.raw)
		}
	}
}

// TestIntermediateSessionsNotCapped signs in six times with a password
// to a user of two organizations (each an intermediate session): all six
// stay usable, and asking for a reset link meanwhile ends none of them.
// Each needed a proven first factor, is rate limited per email and lives
// 10 minutes; a cap would cost a live list on every sign-in.
func TestIntermediateSessionsNotCapped(t *testing.T) {
	h := newFlowHarness(t)
	uid := h.addMember("demo/acme", "alice@acme.com", "owner", alicePassword)
	h.addMember("demo/globex", "alice@acme.com", "viewer", "")
	var ists []string
	for range 6 {
		r := h.do("POST", "/auth/login", map[string]string{"email": "alice@acme.com", "password": alicePassword})
		if r.status != 200 || r.str("intermediate_session_token") == "" {
			t.Fatalf("login: %d %s", r.status, r.raw)
		}
		ists = append(ists, r.str("intermediate_session_token"))
		h.clock.Add(time.Second)
	}
	if r := h.do("POST", "/auth/forgot-password", map[string]string{"email": "alice@acme.com"}); r.status != 202 {
		t.Fatalf("forgot: %d %s", r.status, r.raw)
	}
	h.settle()
	if n := liveTokens(t, h.store, uid, tokenClassIntermediate); n != len(ists) {
		t.Fatalf("%d intermediate sessions, want %d", n, len(ists))
	}
	if n := liveTokens(t, h.store, uid, tokenClassMailed); n != 1 {
		t.Fatalf("%d mailed tokens, want 1", n)
	}
	exchange := func(ist string) response {
		return h.do("POST", "/users/exchange-session", map[string]string{"intermediate_session_token": ist, "organization_id": "org_acme"})
	}
	if r := exchange(ists[0]); r.status != 200 {
		t.Fatalf("the oldest intermediate session: %d %s", r.status, r.raw)
	}
	if r := exchange(ists[5]); r.status != 200 {
		t.Fatalf("the newest intermediate session: %d %s", r.status, r.raw)
	}
}

// TestSpentAndRevokedRecordsGoPromptly: a spent link and a logged-out
// session's records are collectable within minutes, not a day, and once
// collected they are refused just the same.
func TestSpentAndRevokedRecordsGoPromptly(t *testing.T) {
	h := newFlowHarness(t)
	uid := h.addMember("demo/acme", "alice@acme.com", "owner", alicePassword)
	ctx := context.Background()

	h.do("POST", "/users/send-magic-link", map[string]string{"email_address": "alice@acme.com"})
	link := h.tokenFromMail("alice@acme.com")
	if r := h.do("POST", "/users/authenticate-magic-link", map[string]string{"token": link}); r.status != 200 {
		t.Fatalf("magic link: %d %s", r.status, r.raw)
	}
	if r := h.do("POST", "/users/authenticate-magic-link", map[string]string{"token": link}); r.errCode() != "token_used" {
		t.Fatalf("second use right away: %d %s", r.status, r.raw)
	}

	s := h.login("alice@acme.com", alicePassword, "acme")
	rt, jwt := s.str("refresh_token"), s.str("access_token")
	if r := h.do("POST", "/auth/logout", nil, "Authorization", "Bearer "+jwt); r.status != 204 {
		t.Fatalf("logout: %d %s", r.status, r.raw)
	}
	if r := h.do("POST", "/auth/refresh", map[string]string{"refresh_token": rt}); r.errCode() != "session_revoked" {
		t.Fatalf("refresh right after logout: %d %s", r.status, r.raw)
	}

	// Promptly: within a quarter of an hour, whatever the constants say.
	const promptly = 15 * time.Minute
	h.clock.Add(promptly)
	if _, err := h.store.DeleteExpired(ctx, h.clock.Now()); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{store.KindToken, store.KindSession, store.KindFamily} {
		recs, err := h.store.ListByUser(ctx, kind, uid)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			t.Errorf("%s record %s left %v after it was spent or revoked", kind, r.ID, promptly)
		}
	}
	if r := h.do("POST", "/users/authenticate-magic-link", map[string]string{"token": link}); r.status != 401 {
		t.Fatalf("the collected link: %d %s", r.status, r.raw)
	}
	if r := h.do("POST", "/auth/refresh", map[string]string{"refresh_token": rt}); r.status != 401 {
		t.Fatalf("refresh of the collected session: %d %s", r.status, r.raw)
	}
}
