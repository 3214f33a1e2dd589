package authserver

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tenantauth/tenantauth/authserver/directory"
	"github.com/tenantauth/tenantauth/internal/oidctest"
)

// setNotReady serves acme's connection with the operator's Ready=False
// reason (as authserver/kube does for the current generation); "" is Ready
// True or unknown.
func (h *ssoHarness) setNotReady(t *testing.T, reason string) {
	t.Helper()
	c, ok := h.dir.SSOConnection("demo/acme-idp")
	if !ok {
		t.Fatal("acme's connection is not served")
	}
	cp := *c
	cp.NotReady = reason
	h.dir.PutSSOConnection(&cp)
}

// TestSSOStartNotReady: while the operator reports acme's connection not
// ready, start answers 503 sso_unavailable and sends nobody to the
// provider, though the provider would answer (so a broken IdP shows as a
// clear error, not a page of the IdP's own). Ready or unknown, the
// sign-in works; a younger connection that is not reported broken is
// used instead; and a sign-in begun while ready still finishes: readiness
// comes from status, which the tenant may write, so it only ever turns
// sign-ins away at start, and the callback's checks stay what make a
// sign-in safe.
func TestSSOStartNotReady(t *testing.T) {
	starts := []map[string]string{{"organization": "acme"}, {"email": "alice@acme.test"}}
	t.Run("reported not ready", func(t *testing.T) {
		for _, reason := range []string{"DiscoveryFailed", "MetadataInvalid", "CertificateExpired"} {
			t.Run(reason, func(t *testing.T) {
				h := newSSOHarness(t)
				h.setNotReady(t, reason)
				for _, start := range starts {
					for _, accept := range []string{"application/json", "text/html"} {
						r := h.do(http.MethodPost, "/sso/start", start, "Accept", accept)
						if r.status != http.StatusServiceUnavailable || r.errCode() != "sso_unavailable" ||
							r.header.Get("Retry-After") != "30" || r.header.Get("Location") != "" || r.str("redirect_url") != "" {
							t.Fatalf("%v (%s): %d %v %v", start, accept, r.status, r.header, r.body)
						}
						if msg := r.str("error.message"); !strings.Contains(msg, "not ready") || strings.Contains(msg, h.op.Issuer) {
							t.Fatalf("message %q: want a clear one that names no provider URL", msg)
						}
						for _, c := range r.cookies {
							if strings.HasSuffix(c.Name, ssoCookie) {
								t.Fatalf("a refused start set the flow cookie %s", c.Name)
							}
						}
					}
				}
				if len(h.members.list()) != 0 {
					t.Fatalf("memberships: %v", h.members.list())
				}
			})
		}
	})
	t.Run("ready or unknown", func(t *testing.T) {
		h := newSSOHarness(t)
		h.setNotReady(t, "")
		for _, start := range starts {
			if status, body := h.browser().signIn(start, alice); status != http.StatusOK || body["access_token"] == nil {
				t.Fatalf("%v: %d %v", start, status, body)
			}
		}
	})
	t.Run("a younger connection that works is used", func(t *testing.T) {
		h := newSSOHarness(t)
		second := oidctest.Start(t, ssoClient)
		second.AddUser(alice)
		h.dir.PutSSOConnection(&directory.SSOConnection{Ref: "demo/acme-idp2", UID: "uid-acme-idp2", OrgRef: "demo/acme", Protocol: "oidc",
			Issuer: second.Issuer, ClientID: ssoClient.ID, ClientSecret: ssoClient.Secret, DefaultRole: "member", CreatedAt: time.Now()})
		if r := h.do(http.MethodPost, "/sso/start", starts[0]); !strings.HasPrefix(r.str("redirect_url"), h.op.Issuer+"/") {
			t.Fatalf("both working: the oldest is used: %d %v", r.status, r.body)
		}
		h.setNotReady(t, "DiscoveryFailed")
		if r := h.do(http.MethodPost, "/sso/start", starts[0]); r.status != http.StatusOK || !strings.HasPrefix(r.str("redirect_url"), second.Issuer+"/") {
			t.Fatalf("start with the oldest not ready: %d %v", r.status, r.body)
		}
		if status, body := h.browser().signIn(starts[1], alice); status != http.StatusOK || body["access_token"] == nil {
			t.Fatalf("sign-in through the younger connection: %d %v", status, body)
		}
		if got := h.members.list(); len(got) != 1 || got[0] != "demo/acme|acme-idp2|alice@acme.test|member" {
			t.Fatalf("JIT memberships: %v", got)
		}
	})
	t.Run("a sign-in begun while ready finishes", func(t *testing.T) {
		h := newSSOHarness(t)
		b, callback := h.halted(t, alice)
		h.setNotReady(t, "DiscoveryFailed")
		if status, body := b.get(callback); status != http.StatusOK || body["access_token"] == nil {
			t.Fatalf("callback: %d %v", status, body)
		}
	})
}
