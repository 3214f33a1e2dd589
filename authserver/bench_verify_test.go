package authserver

import (
	"net/http/httptest"
	"testing"

	"github.com/tenantauth/tenantauth/authserver/directory"
)

// BenchmarkVerifyHandler is /verify through the whole handler stack
// (routing, instrumentation, credential check, forwarded-request parsing
// and the tenant match), for a JWT and an API key, with no forwarded path,
// a clean one and one that needs normalising. The forwarded path is sent
// in X-Original-URL (read in the default ingress-nginx mode) and in
// X-Original-URI (which older releases read), so the same benchmark runs
// before and after the normaliser.
func BenchmarkVerifyHandler(b *testing.B) {
	h, jwt := benchToken(b)
	key, _ := h.addAPIKey("demo/acme", "read")
	creds := []struct{ name, header, value string }{
		{"jwt", "Authorization", "Bearer " + jwt},
		{"apikey", "X-API-Key", key},
	}
	paths := []struct{ name, path string }{
		{"nopath", ""},
		{"clean", "/api/org/acme/orders/42?page=2"},
		{"dirty", "//api/./org/%61cme/orders/x/../42?page=2"},
	}
	for _, c := range creds {
		for _, p := range paths {
			b.Run(c.name+"/"+p.name, func(b *testing.B) {
				r := httptest.NewRequest("GET", "/verify?org=acme", nil)
				r.Header.Set(c.header, c.value)
				if p.path != "" {
					r.Header.Set("X-Original-URL", "https://api.example.com"+p.path)
					r.Header.Set("X-Original-URI", p.path)
				}
				r.Header.Set("X-Original-Method", "GET")
				b.ReportAllocs()
				for b.Loop() {
					w := httptest.NewRecorder()
					h.srv.ServeHTTP(w, r)
					if w.Code != 200 {
						b.Fatalf("verify: %d %s", w.Code, w.Body)
					}
				}
			})
		}
	}
}

// BenchmarkVerifyNormalizePath is the normaliser alone, with the tenant
// check, as /verify runs them: a path that needs nothing (the common case,
// no allocation), and one that needs decoding, slash collapsing and
// dot-segment removal.
func BenchmarkVerifyNormalizePath(b *testing.B) {
	acme := &directory.Org{ID: "org_acme", Slug: "acme"}
	for _, p := range []struct{ name, path string }{
		{"clean", "/api/org/acme/orders/42"},
		{"dirty", "//api/./org/%61cme/orders/x/../42"},
	} {
		b.Run(p.name, func(b *testing.B) {
			if fp, err := parseForwardedPath(p.path); err != nil || fp.tenant() != "acme" {
				b.Fatalf("%q: %+v %v", p.path, fp, err)
			}
			b.ReportAllocs()
			for b.Loop() {
				fp, err := parseForwardedPath(p.path)
				if err != nil || !fp.allTenantsAre(acme) {
					b.Fatalf("%q: %+v %v", p.path, fp, err)
				}
			}
		})
	}
}
