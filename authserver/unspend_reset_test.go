package authserver

import (
	"testing"

	"github.com/tenantauth/tenantauth/authserver/account"
	"github.com/tenantauth/tenantauth/authserver/token"
)

// TestResetEndsALinkItsRequestReleases plays the race a reviewer found: a
// request spends a magic link, a password reset revokes the user's tokens
// meanwhile (skipping the link, already spent), then the request fails on
// a fault and releases the link. The link from before the reset must stay
// dead; a link mailed after the reset still works.
func TestResetEndsALinkItsRequestReleases(t *testing.T) {
	h := newFlowHarness(t)
	uid := h.addMember("demo/acme", "alice@acme.com", "owner", alicePassword)
	h.org("demo/acme").MagicLink = true
	ctx := t.Context()
	if r := h.do("POST", "/users/send-magic-link", map[string]string{"email_address": "alice@acme.com", "organization_id": "acme"}); r.status != 202 {
		t.Fatalf("send: %d %s", r.status, r.raw)
	}
	h.settle()
	old := h.tokenFromMail("alice@acme.com")
	rec, ot, err := h.srv.accounts.ConsumeOneTime(ctx, token.PrefixMagicLink, account.PurposeMagicLink, old, nil)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := account.HashPassword("a brand new passphrase", fastArgon)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.srv.accounts.ApplyReset(ctx, uid, hash); err != nil {
		t.Fatal(err)
	}
	h.srv.accounts.Unspend(ctx, rec, ot) // the failed request lets go
	if r := h.do("POST", "/users/authenticate-magic-link", map[string]string{"token": old}); r.status != 401 {
		t.Fatalf("a link from before the reset, released after it: %d %s", r.status, r.raw)
	}
	if r := h.do("POST", "/users/send-magic-link", map[string]string{"email_address": "alice@acme.com", "organization_id": "acme"}); r.status != 202 {
		t.Fatalf("send again: %d %s", r.status, r.raw)
	}
	h.settle()
	if r := h.do("POST", "/users/authenticate-magic-link", map[string]string{"token": h.tokenFromMail("alice@acme.com")}); r.status != 200 {
		t.Fatalf("a link mailed after the reset: %d %s", r.status, r.raw)
	}
}
