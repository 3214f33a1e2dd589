package authserver

import (
	"fmt"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestChartDefaultsBehindIngressNginx reads the chart's default
// trustedProxies, as the Deployment template passes them, and plays
// ingress-nginx running in the cluster's pod network (10.244.3.17): two
// clients behind it get separate limits, so one of them using up its
// minute locks nobody else out, and a client that writes its own
// X-Forwarded-For is still limited by its real address.
func TestChartDefaultsBehindIngressNginx(t *testing.T) {
	raw, err := os.ReadFile("../charts/tenantauth/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var values struct {
		TrustedProxies []string `json:"trustedProxies"`
		RateLimit      struct {
			LoginPerMinute int `json:"loginPerMinute"`
		} `json:"rateLimit"`
	}
	if err := yaml.Unmarshal(raw, &values); err != nil {
		t.Fatal(err)
	}
	proxies, err := ParseProxyList(strings.Join(values.TrustedProxies, ","))
	if err != nil || len(proxies) == 0 {
		t.Fatalf("chart trustedProxies %v: %v", values.TrustedProxies, err)
	}
	limit := values.RateLimit.LoginPerMinute
	h := newHarness(t, nil, func(c *Config) { c.TrustedProxies, c.RateLimitPerMinute = proxies, limit })
	h.addMember("demo/acme", "alice@acme.com", "owner", alicePassword)
	// ingress-nginx appends the address it got the request from.
	login := func(clientXFF, email, password string) int {
		r := httptest.NewRequest("POST", "/auth/login", strings.NewReader(fmt.Sprintf(`{"email":%q,"password":%q}`, email, password)))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("X-Forwarded-For", clientXFF)
		r.RemoteAddr = "10.244.3.17:43210"
		w := httptest.NewRecorder()
		h.srv.ServeHTTP(w, r)
		return w.Code
	}
	for i := range limit {
		if code := login("1.2.3.4, 203.0.113.50", fmt.Sprintf("u%d@acme.com", i), "x"); code != 401 {
			t.Fatalf("attacker request %d: %d", i, code)
		}
	}
	if code := login("9.9.9.9, 203.0.113.50", "u99@acme.com", "x"); code != 429 {
		t.Fatalf("the attacker's spoofed X-Forwarded-For escaped its limit: %d", code)
	}
	if code := login("198.51.100.8", "alice@acme.com", alicePassword); code != 200 {
		t.Fatalf("another client behind the same ingress: %d", code)
	}
}

// TestChartDefaultKeepsSSOOffPrivateNetworks reads the chart's default
// sso.allowPrivateNetworks (the Deployments pass --sso-allow-private-networks
// only when it is true; make helm-lint checks the rendering) and plays it:
// by default a tenant's issuer on loopback is never dialled, so an
// unauthenticated /sso/start cannot make the auth server probe its own
// network.
func TestChartDefaultKeepsSSOOffPrivateNetworks(t *testing.T) {
	raw, err := os.ReadFile("../charts/tenantauth/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var values struct {
		SSO struct {
			AllowPrivateNetworks *bool `json:"allowPrivateNetworks"`
		} `json:"sso"`
	}
	if err := yaml.Unmarshal(raw, &values); err != nil {
		t.Fatal(err)
	}
	if values.SSO.AllowPrivateNetworks == nil || *values.SSO.AllowPrivateNetworks {
		t.Fatalf("sso.allowPrivateNetworks must be in values.yaml and false, got %v", values.SSO.AllowPrivateNetworks)
	}
	h := newSSOHarness(t, func(c *Config) { c.SSOPrivateNetworks = *values.SSO.AllowPrivateNetworks })
	if r := h.do("POST", "/sso/start", map[string]string{"organization": "acme"}); r.status != 503 || r.errCode() != "sso_unavailable" {
		t.Fatalf("a loopback issuer under the chart's default: %d %s", r.status, r.raw)
	}
}
