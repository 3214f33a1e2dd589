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

// TestSealedVerificationLinks: register writes no record; a link that was
// altered, sealed by another installation or expired is refused; a used
// one stays used however many links the user asks for afterwards; and a
// password reset ends a link issued before it.
func TestSealedVerificationLinks(t *testing.T) {
	h := signupHarness(t)
	ctx := context.Background()
	register := func(email string) (string, response) {
		r := h.do("POST", "/auth/register", map[string]string{"email": email, "password": goodPassword, "organization": "acme"})
		if r.status != 202 {
			t.Fatalf("register %s: %d %s", email, r.status, r.raw)
		}
		return h.tokenFromMail(email), r
	}
	tok, reg := register("new@acme.com")
	if recs, _ := h.store.ListByUser(ctx, store.KindToken, h.srv.userFor("new@acme.com").ID); len(recs) != 0 {
		t.Fatalf("register wrote %d records", len(recs))
	}

	other := New(Config{PublicURL: "http://auth.test", Secret: []byte("another-installation-secret-0123"), Now: h.clock.Now}, h.dir, h.store, testKey)
	foreign, err := other.accounts.SealVerification(&account.OneTime{Email: "new@acme.com", OrgRef: "demo/acme", ExpiresAt: h.clock.Now().Add(time.Hour)}, h.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	flipped := []byte(tok)
	flipped[len(flipped)-5] ^= 1
	for name, bad := range map[string]string{"altered": string(flipped), "other installation": foreign,
		"other id": token.PrefixVerifyEmail + "_" + token.NewID() + tok[strings.IndexByte(tok, '.'):], "huge": tok + strings.Repeat("A", 2048)} {
		if r := h.do("POST", "/auth/verify-email", map[string]string{"token": bad}); r.status != 401 || r.errCode() != "token_invalid" {
			t.Fatalf("%s link: %d %s", name, r.status, r.raw)
		}
	}

	if v := h.do("POST", "/auth/verify-email", map[string]string{"token": tok}, "Cookie", signupCookieOf(t, reg)); v.status != 200 {
		t.Fatalf("verify: %d %s", v.status, v.raw)
	}
	for range 10 { // the cap must not delete the spent marker
		h.do("POST", "/users/send-magic-link", map[string]string{"email_address": "new@acme.com"})
		h.clock.Add(time.Second)
	}
	h.settle()
	if r := h.do("POST", "/auth/verify-email", map[string]string{"token": tok}); r.status != 401 || r.errCode() != "token_used" {
		t.Fatalf("verify again after ten magic links: %d %s", r.status, r.raw)
	}

	// bob is a member elsewhere with a password: a reset ends his link.
	h.addMember("demo/globex", "bob@acme.com", "member", alicePassword)
	bobTok, _ := register("bob@acme.com")
	h.clock.Add(time.Second)
	h.do("POST", "/auth/forgot-password", map[string]string{"email": "bob@acme.com"})
	if r := h.do("POST", "/auth/reset-password", map[string]string{"token": h.tokenFromMail("bob@acme.com"), "password": "another fine passphrase"}); r.status != 204 {
		t.Fatalf("reset: %d %s", r.status, r.raw)
	}
	if r := h.do("POST", "/auth/verify-email", map[string]string{"token": bobTok}); r.status != 401 || r.errCode() != "token_used" {
		t.Fatalf("a link from before the reset: %d %s", r.status, r.raw)
	}

	late, _ := register("late@acme.com")
	h.clock.Add(account.VerifyEmailTTL)
	if r := h.do("POST", "/auth/verify-email", map[string]string{"token": late}); r.status != 401 || r.errCode() != "token_expired" {
		t.Fatalf("an expired link: %d %s", r.status, r.raw)
	}
}
