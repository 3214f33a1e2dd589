package authserver

import (
	"net/http/httptest"
	"testing"
)

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
