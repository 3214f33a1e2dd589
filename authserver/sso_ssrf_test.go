package authserver

import (
	"net/http/httptest"
	"testing"
)

// TestPublicOnly holds the SSO client's dial guard to the addresses an
// unauthenticated /sso/start must never make the server reach.
func TestPublicOnly(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:443": false, "[::1]:443": false, "10.1.2.3:443": false, "172.16.0.1:443": false,
		"192.168.1.1:443": false, "169.254.169.254:80": false, "100.64.0.1:443": false, "0.0.0.0:443": false,
		"[fd00::1]:443": false, "[fe80::1]:443": false, "[::ffff:127.0.0.1]:443": false, "224.0.0.1:443": false,
		"8.8.8.8:443": true, "[2001:4860:4860::8888]:443": true,
	} {
		if err := publicOnly("tcp", addr, nil); (err == nil) != ok {
			t.Errorf("%s: %v, want allowed %v", addr, err, ok)
		}
	}
}

// TestSSOPrivateNetworksRefused plays the SSRF: a tenant points its
// connection's issuer at the server's own loopback (here, a real OpenID
// Provider on 127.0.0.1). With the default configuration, /sso/start
// answers 503 without the server having connected; allowed, the same
// connection works.
func TestSSOPrivateNetworksRefused(t *testing.T) {
	h := newSSOHarness(t)
	open := h.do("POST", "/sso/start", map[string]string{"organization": "acme"})
	if open.status != 200 || open.str("redirect_url") == "" {
		t.Fatalf("with private networks allowed: %d %s", open.status, open.raw)
	}
	cfg := h.srv.Config()
	cfg.SSOPrivateNetworks = false
	h.srv = New(cfg, h.dir, h.store, testKey)
	h.http.Close()
	h.http = httptest.NewServer(h.srv)
	if r := h.do("POST", "/sso/start", map[string]string{"organization": "acme"}); r.status != 503 || r.errCode() != "sso_unavailable" {
		t.Fatalf("a loopback issuer by default: %d %s", r.status, r.raw)
	}
}
