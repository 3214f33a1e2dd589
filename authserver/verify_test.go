package authserver

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tenantauth/tenantauth/authserver/directory"

	"github.com/tenantauth/tenantauth/internal/apikey"
)

// addAPIKey registers a key of orgRef and returns its plaintext.
func (h *harness) addAPIKey(orgRef string, scopes ...string) (string, *directory.APIKeyInfo) {
	h.t.Helper()
	plain, k, err := apikey.Generate("live")
	if err != nil {
		h.t.Fatal(err)
	}
	info := &directory.APIKeyInfo{KeyID: k.ID, OrgRef: orgRef, Scopes: scopes}
	h.dir.PutAPIKey(info)
	h.dir.PutAPIKeyHash(k.ID, k.Hash())
	return plain, info
}

func TestVerifyForwardAuth(t *testing.T) {
	h := newHarness(t, nil)
	uid := h.addMember("demo/acme", "alice@acme.com", "manager", "correct horse battery")
	jwt := h.login("alice@acme.com", "correct horse battery", "").str("access_token")
	key, info := h.addAPIKey("demo/acme", "read", "write")
	bearer := "Bearer " + jwt

	tests := []struct {
		name    string
		path    string
		headers []string
		status  int
		code    string
		want    map[string]string
	}{
		{name: "jwt ok", path: "/verify", headers: []string{"Authorization", bearer}, status: 200,
			want: map[string]string{"X-Auth-User-Id": uid, "X-Auth-Email": "alice@acme.com", "X-Auth-Org-Id": "org_acme", "X-Auth-Org-Slug": "acme", "X-Auth-Role": "manager"}},
		{name: "org query by slug", path: "/verify?org=acme", headers: []string{"Authorization", bearer}, status: 200},
		{name: "org query by id", path: "/verify?org=org_acme", headers: []string{"Authorization", bearer}, status: 200},
		{name: "other tenant by query", path: "/verify?org=globex", headers: []string{"Authorization", bearer}, status: 403, code: "wrong_organization"},
		{name: "other tenant by original url", path: "/verify", headers: []string{"Authorization", bearer, "X-Original-URL", "https://api.example.com/api/org/globex/skills?x=1"}, status: 403, code: "wrong_organization"},
		{name: "own tenant by original url", path: "/verify", headers: []string{"Authorization", bearer, "X-Original-URL", "https://api.example.com/api/org/org_acme/skills"}, status: 200},
		{name: "other copies of the uri are ignored", path: "/verify", headers: []string{"Authorization", bearer, "X-Forwarded-Uri", "/api/org/globex/skills", "X-Original-URI", "/api/org/globex/"}, status: 200},
		{name: "role high enough", path: "/verify?role=member", headers: []string{"Authorization", bearer}, status: 200},
		{name: "role too low", path: "/verify?role=admin", headers: []string{"Authorization", bearer}, status: 403, code: "insufficient_role"},
		{name: "unknown role", path: "/verify?role=emperor", headers: []string{"Authorization", bearer}, status: 400, code: "invalid_role"},
		{name: "no credential", path: "/verify", status: 401, code: "unauthenticated"},
		{name: "api key bearer", path: "/verify?scope=write", headers: []string{"Authorization", "Bearer " + key}, status: 200,
			want: map[string]string{"X-Auth-Key-Id": info.KeyID, "X-Auth-Scopes": "read,write", "X-Auth-Org-Slug": "acme", "X-Auth-User-Id": ""}},
		{name: "api key header", path: "/verify?org=acme", headers: []string{"X-API-Key", key}, status: 200},
		{name: "api key scope missing", path: "/verify?scope=admin", headers: []string{"X-API-Key", key}, status: 403, code: "insufficient_scope"},
		{name: "api key other tenant", path: "/verify?org=globex", headers: []string{"X-API-Key", key}, status: 403, code: "wrong_organization"},
		{name: "api key ranks as manager", path: "/verify?role=manager", headers: []string{"X-API-Key", key}, status: 200},
		{name: "cookie on a forwarded GET", path: "/verify", headers: []string{"Cookie", "tenantauth_session=" + jwt, "X-Original-Method", "GET"}, status: 200},
		{name: "path after /verify is envoy's, ignored here", path: "/verify/api/org/globex/skills", headers: []string{"Authorization", bearer}, status: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, method := range []string{"GET", "POST"} {
				r := h.do(method, tt.path, nil, tt.headers...)
				if r.status != tt.status || r.errCode() != tt.code {
					t.Fatalf("%s: got %d %q, want %d %q: %s", method, r.status, r.errCode(), tt.status, tt.code, r.raw)
				}
				for k, v := range tt.want {
					if got := r.header.Get(k); got != v {
						t.Errorf("%s = %q, want %q", k, got, v)
					}
				}
				if tt.status == 401 && r.header.Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
			}
		})
	}
}

func TestAPIKeyStateChanges(t *testing.T) {
	h := newHarness(t, nil)
	key, info := h.addAPIKey("demo/acme", "read")
	ok := func() response { return h.do("GET", "/auth/me", nil, "X-API-Key", key) }
	if r := ok(); r.status != 200 || r.str("type") != "api_key" || r.str("key_id") != info.KeyID {
		t.Fatalf("me: %d %s", r.status, r.raw)
	}

	revoked := *info
	revoked.Revoked = true
	h.dir.PutAPIKey(&revoked)
	if r := ok(); r.status != 401 || r.errCode() != "api_key_revoked" {
		t.Fatalf("revoked: %d %s", r.status, r.raw)
	}
	expired := *info
	expired.ExpiresAt = h.clock.Now().Add(-time.Second)
	h.dir.PutAPIKey(&expired)
	if r := ok(); r.status != 401 || r.errCode() != "api_key_expired" {
		t.Fatalf("expired: %d %s", r.status, r.raw)
	}
	h.dir.PutAPIKey(info)
	h.dir.DeleteAPIKey(info.KeyID)
	if r := ok(); r.status != 401 || r.errCode() != "invalid_api_key" {
		t.Fatalf("deleted: %d %s", r.status, r.raw)
	}
	h.dir.PutAPIKey(info)
	h.dir.DeleteOrg("demo/acme")
	if r := ok(); r.status != 401 {
		t.Fatalf("key of a deleted organization: %d %s", r.status, r.raw)
	}
}

func TestJWKSAndDiscovery(t *testing.T) {
	h := newHarness(t, nil)
	all := h.do("GET", "/.well-known/jwks.json", nil)
	keys, _ := all.body["keys"].([]any)
	if all.status != 200 || len(keys) != 2 {
		t.Fatalf("jwks: %d %s", all.status, all.raw)
	}
	if strings.Contains(all.raw, `"d"`) {
		t.Fatal("the JWKS contains private key material")
	}
	one := h.do("GET", "/orgs/acme/.well-known/jwks.json", nil)
	if keys, _ := one.body["keys"].([]any); one.status != 200 || len(keys) != 1 {
		t.Fatalf("org jwks: %d %s", one.status, one.raw)
	}
	byID := h.do("GET", "/orgs/org_acme/.well-known/jwks.json", nil)
	if byID.raw != one.raw {
		t.Fatal("jwks by id and by slug differ")
	}
	d := h.do("GET", "/orgs/acme/.well-known/openid-configuration", nil)
	if d.status != 200 || d.str("issuer") != "http://auth.test/orgs/acme" || d.str("jwks_uri") != "http://auth.test/orgs/acme/.well-known/jwks.json" {
		t.Fatalf("discovery: %d %s", d.status, d.raw)
	}
	if r := h.do("GET", "/orgs/nope/.well-known/jwks.json", nil); r.status != 404 || r.errCode() != "organization_not_found" {
		t.Fatalf("unknown org: %d %s", r.status, r.raw)
	}
}

// TestRotationKeepsTokensValid rotates an organization's keys the way the
// operator does: the next key is published first, then signs, while the
// old one keeps verifying until it is pruned.
func TestRotationKeepsTokensValid(t *testing.T) {
	h := newHarness(t, nil)
	h.addMember("demo/acme", "alice@acme.com", "owner", "correct horse battery")
	old := h.login("alice@acme.com", "correct horse battery", "").str("access_token")
	oldKS, _ := h.dir.Keys("demo/acme")
	next := mustKeySet(t, "ES256", h.clock.Now().Add(time.Minute))
	h.dir.PutKeys("demo/acme", &directory.KeySet{Keys: []*directory.SigningKey{oldKS.Keys[0], next.Keys[0]}})

	if r := h.do("GET", "/verify", nil, "Authorization", "Bearer "+old); r.status != 200 {
		t.Fatalf("old token after the next key is published: %d", r.status)
	}
	h.clock.Add(2 * time.Minute)
	fresh := h.login("alice@acme.com", "correct horse battery", "").str("access_token")
	if kid := decodeSegment(t, strings.Split(fresh, ".")[0])["kid"]; kid != next.Keys[0].KID {
		t.Fatalf("new tokens sign with the new key, got kid %v", kid)
	}
	for _, tok := range []string{old, fresh} {
		if r := h.do("GET", "/verify", nil, "Authorization", "Bearer "+tok); r.status != 200 {
			t.Fatalf("token during rotation: %d %s", r.status, r.raw)
		}
	}
	h.dir.PutKeys("demo/acme", &directory.KeySet{Keys: []*directory.SigningKey{next.Keys[0]}})
	if r := h.do("GET", "/verify", nil, "Authorization", "Bearer "+old); r.status != 401 {
		t.Fatalf("a token of a pruned key: %d", r.status)
	}
	if r := h.do("GET", "/verify", nil, "Authorization", "Bearer "+fresh); r.status != http.StatusOK {
		t.Fatalf("fresh token after pruning: %d", r.status)
	}
}

func TestRateLimit(t *testing.T) {
	h := newHarness(t, nil, func(c *Config) { c.RateLimitPerMinute = 3 })
	h.addMember("demo/acme", "alice@acme.com", "owner", "correct horse battery")
	var last response
	for i := 0; i < 4; i++ {
		last = h.do("POST", "/auth/login", map[string]string{"email": "alice@acme.com", "password": "wrong password"})
	}
	if last.status != 429 || last.errCode() != "rate_limited" || last.header.Get("Retry-After") == "" {
		t.Fatalf("4th login in a minute: %d %s", last.status, last.raw)
	}
	h.clock.Add(time.Minute)
	if r := h.do("POST", "/auth/login", map[string]string{"email": "alice@acme.com", "password": "correct horse battery"}); r.status != 200 {
		t.Fatalf("after the window: %d %s", r.status, r.raw)
	}
}
