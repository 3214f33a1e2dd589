package authserver

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tenantauth/tenantauth/authserver/problem"
)

// FuzzAuthenticate feeds arbitrary Authorization, X-API-Key and cookie
// values through credential extraction and verification: nothing may panic,
// and every failure is a 401 or 403 in the contract's shape.
func FuzzAuthenticate(f *testing.F) {
	h := newHarness(f, nil)
	h.addMember("demo/acme", "alice@acme.com", "owner", "correct horse battery")
	jwt := h.login("alice@acme.com", "correct horse battery", "").str("access_token")
	key, _ := h.addAPIKey("demo/acme", "read")
	for _, s := range []string{"Bearer " + jwt, "Bearer " + key, "bearer " + key, "Basic x", "Bearer", jwt, key, "", "Bearer a.b.c", "Bearer osk_live_"} {
		f.Add(s, "", "")
		f.Add("", s, "")
		f.Add("", "", s)
	}
	f.Fuzz(func(t *testing.T, authz, apiKey, cookie string) {
		r := httptest.NewRequest("GET", "/verify", nil)
		if authz != "" {
			r.Header.Set("Authorization", authz)
		}
		if apiKey != "" {
			r.Header.Set("X-API-Key", apiKey)
		}
		if cookie != "" {
			r.AddCookie(&http.Cookie{Name: "tenantauth_session", Value: cookie})
		}
		var p Principal
		err := h.srv.authenticateInto(r.Context(), r, &p)
		if err == nil {
			if p.Org == nil {
				t.Fatal("authenticated without a principal")
			}
			return
		}
		var e *problem.Error
		if !errors.As(err, &e) || (e.Status != 401 && e.Status != 403) {
			t.Fatalf("failure %v is not a 401 or 403", err)
		}
	})
}
