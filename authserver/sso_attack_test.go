package authserver

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tenantauth/tenantauth/internal/oidctest"
)

// halted starts a sign-in as u and stops at the redirect to the callback,
// returning the browser and the callback URL the provider chose.
func (h *ssoHarness) halted(t *testing.T, u oidctest.User) (*browser, string) {
	t.Helper()
	b := h.browser()
	b.stop = true
	if status, body := b.signIn(map[string]string{"organization": "acme"}, u); status != http.StatusFound {
		t.Fatalf("halt at callback: %d %v", status, body)
	}
	b.stop = false
	return b, b.callback.String()
}

// flowNonce opens the browser's flow cookie, as only the server can.
func (h *ssoHarness) flowNonce(t *testing.T, b *browser) string {
	t.Helper()
	f, err := h.srv.ssoSealer.Open(b.flowCookie().Value, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return f.Nonce
}

func unsigned(claims map[string]any) string {
	hdr, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT"})
	body, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(hdr) + "." + base64.RawURLEncoding.EncodeToString(body) + "."
}

func TestSSOOIDCBadInput(t *testing.T) {
	h := newSSOHarness(t)
	other := oidctest.Start(t, ssoClient) // another issuer, same client ID
	other.AddUser(alice)
	bob := oidctest.User{Email: "bob@unverified.test", Password: "bob-pw"}
	eve := oidctest.User{Email: "eve@globex.test", Password: "eve-pw", EmailVerified: true}
	carol := oidctest.User{Email: "carol@elsewhere.test", Password: "carol-pw", EmailVerified: true}
	// dave is on a domain no organization claimed, and a member of acme
	// as an admin may make anyone; acme's IdP says his email is verified.
	// Were that enough, acme's IdP would sign in as dave, the one user he
	// is in every organization, and could enrol a TOTP it holds.
	dave := oidctest.User{Email: "dave@unclaimed.test", Password: "dave-pw", EmailVerified: true}
	h.addMember("demo/acme", dave.Email, "member", alicePassword)
	for _, u := range []oidctest.User{bob, eve, carol, dave} {
		h.op.AddUser(u)
	}
	tests := []struct {
		name   string
		play   func(t *testing.T) (int, map[string]any)
		status int
		code   string
	}{
		{"wrong state", func(t *testing.T) (int, map[string]any) {
			b, cb := h.halted(t, alice)
			return b.get(strings.Replace(cb, "state=", "state=x", 1))
		}, 400, "sso_state_invalid"},
		{"no flow cookie (another browser)", func(t *testing.T) (int, map[string]any) {
			_, cb := h.halted(t, alice)
			return h.browser().get(cb)
		}, 400, "sso_state_invalid"},
		{"forged flow cookie", func(t *testing.T) (int, map[string]any) {
			b, cb := h.halted(t, alice)
			b.setFlowCookie(b.flowCookie().Value[:40] + "AAAA" + b.flowCookie().Value[44:])
			return b.get(cb)
		}, 400, "sso_state_invalid"},
		{"replayed code", func(t *testing.T) (int, map[string]any) {
			b, cb := h.halted(t, alice)
			cookie := b.flowCookie().Value
			if status, body := b.get(cb); status != http.StatusOK {
				t.Fatalf("first use: %d %v", status, body)
			}
			b.setFlowCookie(cookie) // an attacker who kept the cookie too
			return b.get(cb)
		}, 401, "sso_failed"},
		{"wrong nonce", func(t *testing.T) (int, map[string]any) {
			b, cb := h.halted(t, alice)
			f, _ := h.srv.ssoSealer.Open(b.flowCookie().Value, time.Now())
			f.Nonce = "another-sign-ins-nonce"
			v, _ := h.srv.ssoSealer.Seal(f)
			b.setFlowCookie(v)
			return b.get(cb)
		}, 401, "sso_failed"},
		{"ID token for another audience", func(t *testing.T) (int, map[string]any) {
			b, cb := h.halted(t, alice)
			tok := h.op.IDToken(t, otherClient, alice, h.flowNonce(t, b))
			h.op.RewriteToken(func(m map[string]any) { m["id_token"] = tok })
			defer h.op.RewriteToken(nil)
			return b.get(cb)
		}, 401, "sso_failed"},
		{"ID token from another issuer", func(t *testing.T) (int, map[string]any) {
			b, cb := h.halted(t, alice)
			tok := other.IDToken(t, ssoClient, alice, h.flowNonce(t, b))
			h.op.RewriteToken(func(m map[string]any) { m["id_token"] = tok })
			defer h.op.RewriteToken(nil)
			return b.get(cb)
		}, 401, "sso_failed"},
		{"alg none ID token", func(t *testing.T) (int, map[string]any) {
			b, cb := h.halted(t, alice)
			tok := unsigned(map[string]any{"iss": h.op.Issuer, "aud": ssoClient.ID, "sub": alice.Email, "nonce": h.flowNonce(t, b),
				"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(), "email": alice.Email, "email_verified": true})
			h.op.RewriteToken(func(m map[string]any) { m["id_token"] = tok })
			defer h.op.RewriteToken(nil)
			return b.get(cb)
		}, 401, "sso_failed"},
		{"no ID token", func(t *testing.T) (int, map[string]any) {
			b, cb := h.halted(t, alice)
			h.op.RewriteToken(func(m map[string]any) { delete(m, "id_token") })
			defer h.op.RewriteToken(nil)
			return b.get(cb)
		}, 401, "sso_failed"},
		{"connection re-made between start and callback", func(t *testing.T) (int, map[string]any) {
			b, cb := h.halted(t, alice)
			c, _ := h.dir.SSOConnection("demo/acme-idp")
			remade := *c
			remade.UID = "uid-remade"
			h.dir.PutSSOConnection(&remade)
			defer h.dir.PutSSOConnection(c)
			return b.get(cb)
		}, 400, "sso_state_invalid"},
		{"provider error", func(t *testing.T) (int, map[string]any) {
			b, cb := h.halted(t, alice)
			return b.get(strings.Replace(cb, "code=", "error=access_denied&x=", 1))
		}, 401, "sso_denied"},
		{"email unverified on an unverified domain", func(t *testing.T) (int, map[string]any) {
			return h.browser().signIn(map[string]string{"organization": "acme"}, bob)
		}, 403, "sso_email_unverified"},
		{"email on a domain another organization verified", func(t *testing.T) (int, map[string]any) {
			return h.browser().signIn(map[string]string{"organization": "acme"}, eve)
		}, 403, "sso_email_unverified"},
		{"verified email, not a member, not on a verified domain: no JIT", func(t *testing.T) (int, map[string]any) {
			return h.browser().signIn(map[string]string{"organization": "acme"}, carol)
		}, 403, "sso_email_unverified"},
		{"IdP-verified email of a member on an unclaimed domain", func(t *testing.T) (int, map[string]any) {
			return h.browser().signIn(map[string]string{"organization": "acme"}, dave)
		}, 403, "sso_email_unverified"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(h.members.list())
			status, body := tt.play(t)
			if status != tt.status || errCode(body) != tt.code {
				t.Fatalf("got %d %v, want %d %s", status, body, tt.status, tt.code)
			}
			if body["access_token"] != nil || len(h.members.list()) > before+btoi(tt.name == "replayed code") {
				t.Fatalf("a refused sign-in made a session or a membership: %v %v", body, h.members.list())
			}
		})
	}
	if _, ok := h.dir.MemberAnyState(eve.Email, "demo/globex"); ok {
		t.Fatal("acme's IdP made a member of globex")
	}
	// dave himself still signs in with his password.
	if r := h.do("POST", "/auth/login", map[string]string{"email": dave.Email, "password": alicePassword, "organization": "acme"}); r.status != 200 {
		t.Fatalf("dave's own password login: %d %s", r.status, r.raw)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestSSOSessionStaysInItsOrganization: a user of two organizations signs
// in through acme's IdP; the session is acme's and cannot be exchanged
// into globex, whose members the IdP does not speak for.
func TestSSOSessionStaysInItsOrganization(t *testing.T) {
	h := newSSOHarness(t)
	h.addMember("demo/acme", alice.Email, "member", "")
	h.addMember("demo/globex", alice.Email, "admin", "")
	status, body := h.browser().signIn(map[string]string{"organization": "acme"}, alice)
	if status != http.StatusOK || body["access_token"] == nil {
		t.Fatalf("sign-in: %d %v", status, body)
	}
	if org, _ := body["organization"].(map[string]any); org["slug"] != "acme" {
		t.Fatalf("organization = %v", body["organization"])
	}
	r := h.do(http.MethodPost, "/users/exchange-session", map[string]string{"organization_id": "globex"},
		"Authorization", "Bearer "+body["access_token"].(string))
	if r.status != http.StatusForbidden || r.errCode() != "auth_method_disabled" {
		t.Fatalf("switch to globex: %d %v", r.status, r.body)
	}
}

// TestSSORequired: with authMethods.ssoRequired a member's password and
// magic-link sign-ins are refused; an owner keeps the password
// (break-glass), and SSO itself works.
func TestSSORequired(t *testing.T) {
	h := newSSOHarness(t)
	login := func(email, password, org string) response {
		return h.do("POST", "/auth/login", map[string]string{"email": email, "password": password, "organization": org})
	}
	acme := *h.org("demo/acme")
	acme.SSORequired = true
	h.dir.PutOrg(&acme)
	h.addMember("demo/acme", "member@acme.test", "member", "member-password-1")
	h.addMember("demo/acme", "owner@acme.test", "owner", "owner-password-1")
	if r := login("member@acme.test", "member-password-1", "acme"); r.status != http.StatusForbidden || r.errCode() != "sso_required" {
		t.Fatalf("member password login: %d %v", r.status, r.body)
	}
	if r := login("member@acme.test", "member-password-1", ""); r.status != http.StatusForbidden || r.errCode() != "sso_required" {
		t.Fatalf("member password login without org: %d %v", r.status, r.body)
	}
	if r := login("owner@acme.test", "owner-password-1", "acme"); r.status != http.StatusOK || r.str("access_token") == "" {
		t.Fatalf("owner password login (break-glass): %d %v", r.status, r.body)
	}
	if r := login("member@acme.test", "wrong-password", "acme"); r.status != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d %v", r.status, r.body)
	}
	// Another organization without the requirement is unaffected.
	h.addMember("demo/globex", "member@acme.test", "member", "")
	if r := login("member@acme.test", "member-password-1", "globex"); r.status != http.StatusOK {
		t.Fatalf("globex password login: %d %v", r.status, r.body)
	}
	if status, body := h.browser().signIn(map[string]string{"organization": "acme"}, alice); status != http.StatusOK {
		t.Fatalf("SSO sign-in: %d %v", status, body)
	}
}

// TestSSORequiredStopsEarlierSessions: a member's password session made
// before the organization required single sign-on is not a way around
// it. Its next refresh answers 403 sso_required (so it ends within one
// access-token lifetime), while the owner's break-glass session and an
// SSO session keep refreshing, and turning the requirement off lets the
// member's session refresh again.
func TestSSORequiredStopsEarlierSessions(t *testing.T) {
	h := newSSOHarness(t)
	h.addMember("demo/acme", "member@acme.test", "member", "member-password-1")
	h.addMember("demo/acme", "owner@acme.test", "owner", "owner-password-1")
	login := func(email, password string) string {
		t.Helper()
		r := h.do("POST", "/auth/login", map[string]string{"email": email, "password": password, "organization": "acme"})
		if r.status != http.StatusOK || r.str("refresh_token") == "" {
			t.Fatalf("login %s: %d %v", email, r.status, r.body)
		}
		return r.str("refresh_token")
	}
	refresh := func(tok *string) response {
		t.Helper()
		r := h.do("POST", "/auth/refresh", map[string]string{"refresh_token": *tok})
		if r.status == http.StatusOK {
			*tok = r.str("refresh_token")
		}
		return r
	}
	member, owner := login("member@acme.test", "member-password-1"), login("owner@acme.test", "owner-password-1")
	status, body := h.browser().signIn(map[string]string{"organization": "acme"}, alice)
	if status != http.StatusOK {
		t.Fatalf("SSO sign-in: %d %v", status, body)
	}
	sso, _ := body["refresh_token"].(string)
	if sso == "" {
		t.Fatalf("SSO sign-in gave no refresh token: %v", body)
	}

	required := *h.org("demo/acme")
	required.SSORequired = true
	h.dir.PutOrg(&required)
	if r := refresh(&member); r.status != http.StatusForbidden || r.errCode() != "sso_required" {
		t.Fatalf("member's earlier password session refreshed after ssoRequired: %d %v", r.status, r.body)
	}
	if r := refresh(&owner); r.status != http.StatusOK {
		t.Fatalf("owner's break-glass session: %d %v", r.status, r.body)
	}
	if r := refresh(&sso); r.status != http.StatusOK {
		t.Fatalf("SSO session: %d %v", r.status, r.body)
	}

	optional := required
	optional.SSORequired = false
	h.dir.PutOrg(&optional)
	if r := refresh(&member); r.status != http.StatusOK {
		t.Fatalf("member's session once ssoRequired is off again: %d %v", r.status, r.body)
	}
}
