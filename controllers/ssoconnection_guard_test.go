package controllers

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestProviderClientStaysOffPrivateNetworks plays the SSRF a tenant admin
// could aim at the operator: an issuer on the operator's own loopback.
// The default client refuses to connect; the one for an IdP inside the
// network reaches it.
func TestProviderClientStaysOffPrivateNetworks(t *testing.T) {
	hit := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hit++ }))
	defer srv.Close()
	if resp, err := providerClient(false).Get(srv.URL + "/.well-known/openid-configuration"); err == nil {
		resp.Body.Close()
		t.Fatal("the default client fetched from 127.0.0.1")
	} else if !strings.Contains(err.Error(), "not a public address") {
		t.Fatalf("refused for another reason: %v", err)
	}
	if hit != 0 {
		t.Fatalf("the loopback server was reached %d times", hit)
	}
	resp, err := providerClient(true).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if hit != 1 {
		t.Fatalf("the private-network client reached the server %d times", hit)
	}
}
