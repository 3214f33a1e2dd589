package authserver

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tenantauth/tenantauth/authserver/directory"
	"github.com/tenantauth/tenantauth/authserver/token"
)

func decodeSegment(t *testing.T, seg string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestLoginIssuesContractSession(t *testing.T) {
	h := newHarness(t, nil)
	uid := h.addMember("demo/acme", "alice@acme.com", "owner", "correct horse battery")
	r := h.login("Alice@Acme.com", "correct horse battery", "")

	jwt := r.str("access_token")
	if r.str("session.jwt") != jwt || r.str("token_type") != "bearer" || r.body["expires_in"] != float64(900) {
		t.Fatalf("session response fields: %s", r.raw)
	}
	if r.str("user.id") != uid || r.str("user.email") != "alice@acme.com" || r.str("organization.slug") != "acme" ||
		r.str("organization.name") != "Acme Inc." || r.str("role") != "owner" || r.str("csrf_token") == "" ||
		!strings.HasPrefix(r.str("session.id"), "ses_") || !strings.HasPrefix(r.str("refresh_token"), "rt_") {
		t.Fatalf("session response: %s", r.raw)
	}
	if _, err := time.Parse(time.RFC3339, r.str("session.expires_at")); err != nil {
		t.Fatalf("expires_at: %v", err)
	}
	parts := strings.Split(jwt, ".")
	hdr, claims := decodeSegment(t, parts[0]), decodeSegment(t, parts[1])
	if hdr["alg"] != "ES256" || hdr["typ"] != "at+jwt" || hdr["kid"] == "" {
		t.Fatalf("header %v", hdr)
	}
	for _, k := range []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "sid", "org_id", "org_slug", "role", "permissions", "email", "amr"} {
		if _, ok := claims[k]; !ok {
			t.Errorf("claim %s missing", k)
		}
	}
	if claims["iss"] != "http://auth.test/orgs/acme" || claims["aud"] != claims["iss"] || claims["sub"] != uid ||
		claims["sid"] != r.str("session.id") || claims["org_id"] != "org_acme" || claims["role"] != "owner" {
		t.Fatalf("claims %v", claims)
	}
	if amr, _ := claims["amr"].([]any); len(amr) != 1 || amr[0] != "pwd" {
		t.Fatalf("amr %v", claims["amr"])
	}

	cookies := map[string]*http.Cookie{}
	for _, c := range r.cookies {
		cookies[c.Name] = c
	}
	sc, rc := cookies["tenantauth_session"], cookies["tenantauth_refresh"]
	if sc == nil || rc == nil || sc.Value != jwt || rc.Value != r.str("refresh_token") {
		t.Fatalf("cookies %v", r.cookies)
	}
	if !sc.HttpOnly || !rc.HttpOnly || rc.Path != "/auth" || sc.SameSite == http.SameSiteNoneMode || sc.Secure {
		t.Fatalf("cookie attributes: %+v %+v (http public URL: not Secure)", sc, rc)
	}

	me := h.do("GET", "/auth/me", nil, "Authorization", "Bearer "+jwt)
	if me.status != 200 || me.str("id") != uid || me.str("organization_slug") != "acme" || me.str("session_id") != r.str("session.id") {
		t.Fatalf("me: %d %s", me.status, me.raw)
	}
	if perms, _ := me.body["permissions"].([]any); !slices.Contains(perms, any("org:delete")) {
		t.Fatalf("me permissions: %v", me.body["permissions"])
	}
}

func TestLoginFailuresLookAlike(t *testing.T) {
	h := newHarness(t, nil)
	h.addMember("demo/acme", "alice@acme.com", "owner", "correct horse battery")
	h.addMember("demo/acme", "nopass@acme.com", "member", "")
	var bodies []string
	for _, c := range []struct{ email, pw string }{
		{"alice@acme.com", "wrong password"},
		{"nobody@acme.com", "whatever pw"},
		{"nopass@acme.com", "whatever pw"},
	} {
		r := h.do("POST", "/auth/login", map[string]string{"email": c.email, "password": c.pw})
		if r.status != 401 || r.errCode() != "invalid_credentials" || r.header.Get("WWW-Authenticate") == "" {
			t.Fatalf("%s: %d %s", c.email, r.status, r.raw)
		}
		bodies = append(bodies, r.raw)
	}
	if bodies[0] != bodies[1] || bodies[1] != bodies[2] {
		t.Fatalf("answers differ: %q", bodies)
	}
}

func TestLoginDisabledMemberRefused(t *testing.T) {
	h := newHarness(t, nil)
	h.addMember("demo/acme", "alice@acme.com", "owner", "correct horse battery")
	jwt := h.login("alice@acme.com", "correct horse battery", "").str("access_token")
	h.dir.PutMember(&directory.Member{Ref: "demo/acme-alice@acme.com", OrgRef: "demo/acme", Email: "alice@acme.com", Role: "owner", Disabled: true})
	if r := h.do("POST", "/auth/login", map[string]string{"email": "alice@acme.com", "password": "correct horse battery"}); r.status != 401 {
		t.Fatalf("disabled login: %d %s", r.status, r.raw)
	}
	if r := h.do("GET", "/verify", nil, "Authorization", "Bearer "+jwt); r.status != 401 {
		t.Fatalf("disabled member's token at /verify: %d", r.status)
	}
}

func TestMultiOrgLoginAndExchange(t *testing.T) {
	h := newHarness(t, nil)
	h.addMember("demo/acme", "alice@acme.com", "owner", "correct horse battery")
	h.addMember("demo/globex", "alice@acme.com", "viewer", "")
	r := h.do("POST", "/auth/login", map[string]string{"email": "alice@acme.com", "password": "correct horse battery"})
	ist := r.str("intermediate_session_token")
	orgs, _ := r.body["organizations"].([]any)
	if r.status != 200 || ist == "" || len(orgs) != 2 || r.body["mfa_required"] != false || r.str("access_token") != "" {
		t.Fatalf("intermediate: %d %s", r.status, r.raw)
	}
	ex := h.do("POST", "/users/exchange-session", map[string]string{"intermediate_session_token": ist, "organization_id": "org_globex"})
	if ex.status != 200 || ex.str("organization.slug") != "globex" || ex.str("role") != "viewer" {
		t.Fatalf("exchange: %d %s", ex.status, ex.raw)
	}
	hdr := decodeSegment(t, strings.Split(ex.str("access_token"), ".")[0])
	if hdr["alg"] != "EdDSA" {
		t.Fatalf("globex signs with EdDSA, got %v", hdr["alg"])
	}
	again := h.do("POST", "/users/exchange-session", map[string]string{"intermediate_session_token": ist, "organization_id": "acme"})
	if again.status != 401 || again.errCode() != "token_used" {
		t.Fatalf("second exchange: %d %s", again.status, again.raw)
	}

	t.Run("switch organization with a session", func(t *testing.T) {
		sw := h.do("POST", "/users/exchange-session", map[string]string{"organization_id": "acme"}, "Authorization", "Bearer "+ex.str("access_token"))
		if sw.status != 200 || sw.str("organization.slug") != "acme" || sw.str("role") != "owner" {
			t.Fatalf("switch: %d %s", sw.status, sw.raw)
		}
		cookie := "tenantauth_session=" + ex.str("access_token")
		if r := h.do("POST", "/users/exchange-session", map[string]string{"organization_id": "acme"}, "Cookie", cookie); r.status != 403 || r.errCode() != "csrf_invalid" {
			t.Fatalf("switch by cookie without CSRF: %d %s", r.status, r.raw)
		}
		if r := h.do("POST", "/users/exchange-session", map[string]string{"organization_id": "acme"}, "Cookie", cookie, "X-CSRF-Token", ex.str("csrf_token")); r.status != 200 {
			t.Fatalf("switch by cookie with CSRF: %d %s", r.status, r.raw)
		}
	})
}

func TestRefreshRotation(t *testing.T) {
	h := newHarness(t, nil)
	h.addMember("demo/acme", "alice@acme.com", "owner", "correct horse battery")
	first := h.login("alice@acme.com", "correct horse battery", "acme")
	rt1 := first.str("refresh_token")

	second := h.do("POST", "/auth/refresh", map[string]string{"refresh_token": rt1})
	rt2 := second.str("refresh_token")
	if second.status != 200 || rt2 == "" || rt2 == rt1 || second.str("session.id") != first.str("session.id") {
		t.Fatalf("refresh: %d %s", second.status, second.raw)
	}

	retry := h.do("POST", "/auth/refresh", map[string]string{"refresh_token": rt1})
	if retry.status != 401 || retry.errCode() != "refresh_token_spent" {
		t.Fatalf("retry inside grace: %d %s", retry.status, retry.raw)
	}
	if r := h.do("POST", "/auth/refresh", map[string]string{"refresh_token": rt2}); r.status != 200 {
		t.Fatalf("the newest token still works after a retry: %d %s", r.status, r.raw)
	} else {
		rt2 = r.str("refresh_token")
	}

	h.clock.Add(10 * time.Second)
	reuse := h.do("POST", "/auth/refresh", map[string]string{"refresh_token": rt1})
	if reuse.status != 401 || reuse.errCode() != "refresh_token_reused" {
		t.Fatalf("reuse after grace: %d %s", reuse.status, reuse.raw)
	}
	if r := h.do("POST", "/auth/refresh", map[string]string{"refresh_token": rt2}); r.status != 401 || r.errCode() != "session_revoked" {
		t.Fatalf("reuse revokes the whole session: %d %s", r.status, r.raw)
	}
	if r := h.do("GET", "/auth/me", nil, "Authorization", "Bearer "+first.str("access_token")); r.status != 401 {
		t.Fatalf("access token of a revoked session: %d", r.status)
	}
}

// TestRefreshUnknownTokens: a made-up secret on a real session's ID, an
// unknown ID and a malformed token are each 401 invalid_refresh_token, and
// none of them ends the session.
func TestRefreshUnknownTokens(t *testing.T) {
	h := newHarness(t, nil)
	h.addMember("demo/acme", "alice@acme.com", "owner", "correct horse battery")
	rt := h.login("alice@acme.com", "correct horse battery", "acme").str("refresh_token")
	id, _, ok := strings.Cut(rt, ".")
	if !ok {
		t.Fatalf("refresh token %q has no secret part", rt)
	}
	for _, tt := range []struct{ name, token string }{
		{"a made-up secret", id + "." + token.NewSecret()},
		{"an unknown ID", token.PrefixRefresh + "_" + strings.Repeat("a", len(id)-len(token.PrefixRefresh)-1) + "." + token.NewSecret()},
		{"malformed", "rt_not-a-token"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if r := h.do("POST", "/auth/refresh", map[string]string{"refresh_token": tt.token}); r.status != 401 || r.errCode() != "invalid_refresh_token" {
				t.Errorf("%d %s, want 401 invalid_refresh_token", r.status, r.raw)
			}
		})
	}
	if r := h.do("POST", "/auth/refresh", map[string]string{"refresh_token": rt}); r.status != 200 {
		t.Fatalf("the real token afterwards: %d %s", r.status, r.raw)
	}
}

func TestRefreshTTLs(t *testing.T) {
	h := newHarness(t, nil)
	h.addMember("demo/acme", "alice@acme.com", "owner", "correct horse battery")
	rt := h.login("alice@acme.com", "correct horse battery", "").str("refresh_token")
	h.clock.Add(23 * time.Hour)
	r := h.do("POST", "/auth/refresh", map[string]string{"refresh_token": rt})
	if r.status != 200 {
		t.Fatalf("inside idle TTL: %d %s", r.status, r.raw)
	}
	rt = r.str("refresh_token")
	h.clock.Add(23 * time.Hour) // idle slides: 46h since login, 23h since refresh
	if r = h.do("POST", "/auth/refresh", map[string]string{"refresh_token": rt}); r.status != 200 {
		t.Fatalf("idle TTL slides: %d %s", r.status, r.raw)
	}
	rt = r.str("refresh_token")
	h.clock.Add(25 * time.Hour)
	if r = h.do("POST", "/auth/refresh", map[string]string{"refresh_token": rt}); r.status != 401 || r.errCode() != "refresh_token_expired" {
		t.Fatalf("past idle TTL: %d %s", r.status, r.raw)
	}

	rt = h.login("alice@acme.com", "correct horse battery", "").str("refresh_token")
	for range 3 {
		h.clock.Add(20 * time.Hour)
		r = h.do("POST", "/auth/refresh", map[string]string{"refresh_token": rt})
		rt = r.str("refresh_token")
	}
	h.clock.Add(13 * time.Hour) // 73h: past the 72h absolute TTL
	if r = h.do("POST", "/auth/refresh", map[string]string{"refresh_token": rt}); r.status != 401 || r.errCode() != "refresh_token_expired" {
		t.Fatalf("past absolute TTL: %d %s", r.status, r.raw)
	}
}

func TestCookiesAndCSRF(t *testing.T) {
	h := newHarness(t, nil)
	h.addMember("demo/acme", "alice@acme.com", "owner", "correct horse battery")
	r := h.login("alice@acme.com", "correct horse battery", "")
	session := "tenantauth_session=" + r.str("access_token")
	refresh := "tenantauth_refresh=" + r.str("refresh_token")

	if me := h.do("GET", "/auth/me", nil, "Cookie", session); me.status != 200 {
		t.Fatalf("GET with cookie needs no CSRF: %d", me.status)
	}
	if out := h.do("POST", "/auth/logout", nil, "Cookie", session); out.status != 403 || out.errCode() != "csrf_invalid" {
		t.Fatalf("logout by cookie without CSRF: %d %s", out.status, out.raw)
	}
	if out := h.do("POST", "/auth/refresh", nil, "Cookie", refresh); out.status != 403 {
		t.Fatalf("refresh by cookie without CSRF: %d %s", out.status, out.raw)
	}
	ref := h.do("POST", "/auth/refresh", nil, "Cookie", refresh, "X-CSRF-Token", r.str("csrf_token"))
	if ref.status != 200 {
		t.Fatalf("refresh by cookie with CSRF: %d %s", ref.status, ref.raw)
	}
	out := h.do("POST", "/auth/logout", nil, "Cookie", session, "X-CSRF-Token", r.str("csrf_token"))
	if out.status != 204 {
		t.Fatalf("logout: %d %s", out.status, out.raw)
	}
	cleared := 0
	for _, c := range out.cookies {
		if c.MaxAge < 0 {
			cleared++
		}
	}
	if cleared != 2 {
		t.Fatalf("logout clears both cookies: %v", out.cookies)
	}
	if r := h.do("POST", "/auth/refresh", map[string]string{"refresh_token": ref.str("refresh_token")}); r.status != 401 {
		t.Fatalf("refresh after logout: %d", r.status)
	}
	if r := h.do("POST", "/auth/logout", nil, "Authorization", "Bearer "+ref.str("access_token")); r.status != 401 {
		t.Fatalf("bearer of a logged-out session: %d", r.status)
	}
}

func TestSecureCookiesOnHTTPS(t *testing.T) {
	h := newHarness(t, nil, func(c *Config) { c.PublicURL = "https://auth.example.com" })
	h.addMember("demo/acme", "alice@acme.com", "owner", "correct horse battery")
	for _, c := range h.login("alice@acme.com", "correct horse battery", "").cookies {
		if !c.Secure {
			t.Fatalf("cookie %s is not Secure under an https public URL", c.Name)
		}
	}
}

// TestPathPrefix mounts every endpoint under /api/v1, as the Boses and
// Assimetria documents show: the issuer and the refresh cookie's path
// follow it, and nothing answers at the bare paths.
func TestPathPrefix(t *testing.T) {
	h := newHarness(t, nil, func(c *Config) { c.PathPrefix = "/api/v1/" })
	h.addMember("demo/acme", "alice@acme.com", "owner", "correct horse battery")
	if r := h.do("POST", "/auth/login", map[string]string{"email": "alice@acme.com", "password": "correct horse battery"}); r.status != 404 {
		t.Fatalf("bare path answers %d", r.status)
	}
	r := h.do("POST", "/api/v1/auth/login", map[string]string{"email": "alice@acme.com", "password": "correct horse battery"})
	if r.status != 200 {
		t.Fatalf("login under the prefix: %d %s", r.status, r.raw)
	}
	claims := decodeSegment(t, strings.Split(r.str("access_token"), ".")[1])
	if claims["iss"] != "http://auth.test/api/v1/orgs/acme" {
		t.Fatalf("iss %v", claims["iss"])
	}
	for _, c := range r.cookies {
		if c.Name == "tenantauth_refresh" && c.Path != "/api/v1/auth" {
			t.Fatalf("refresh cookie path %q", c.Path)
		}
	}
	for _, p := range []string{"/api/v1/health", "/api/v1/orgs/acme/.well-known/jwks.json", "/api/v1/orgs/acme/.well-known/openid-configuration"} {
		if r := h.do("GET", p, nil); r.status != 200 {
			t.Fatalf("%s: %d", p, r.status)
		}
	}
	if r := h.do("GET", "/api/v1/verify", nil, "Authorization", "Bearer "+r.str("access_token")); r.status != 200 {
		t.Fatalf("verify under the prefix: %d %s", r.status, r.raw)
	}
}
