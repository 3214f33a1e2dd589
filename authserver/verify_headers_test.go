package authserver

import (
	"net/http"
	"net/textproto"
	"reflect"
	"testing"

	"github.com/tenantauth/tenantauth/authserver/directory"
)

// TestIdentityHeadersAsHeaderSet checks that setIdentityHeaders sets what
// Header.Set would: canonical names, one value each, over any value the
// header already had, and values that later changes cannot reach.
func TestIdentityHeadersAsHeaderSet(t *testing.T) {
	org := &directory.Org{ID: "org_acme", Slug: "acme"}
	tests := []struct {
		name string
		p    *Principal
		want http.Header
	}{
		{"member", &Principal{Kind: kindUser, Org: org, UserID: "usr_a", Email: "a@acme.com", Role: "owner"}, http.Header{
			"X-Auth-Org-Id": {"org_acme"}, "X-Auth-Org-Slug": {"acme"}, "X-Auth-User-Id": {"usr_a"},
			"X-Auth-Email": {"a@acme.com"}, "X-Auth-Role": {"owner"}, "Other": {"kept"},
		}},
		{"api key", &Principal{Kind: kindAPIKey, Org: org, KeyID: "k1", Scopes: []string{"read", "write"}}, http.Header{
			"X-Auth-Org-Id": {"org_acme"}, "X-Auth-Org-Slug": {"acme"}, "X-Auth-Key-Id": {"k1"},
			"X-Auth-Scopes": {"read,write"}, "Other": {"kept"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{"X-Auth-Org-Id": {"stale", "twice"}, "Other": {"kept"}}
			setIdentityHeaders(h, tt.p)
			if !reflect.DeepEqual(h, tt.want) {
				t.Fatalf("headers %v, want %v", h, tt.want)
			}
			for name := range h {
				if textproto.CanonicalMIMEHeaderKey(name) != name {
					t.Errorf("%s is not canonical", name)
				}
			}
			h.Add("X-Auth-Org-Id", "added")
			if got := h.Values("X-Auth-Org-Slug"); len(got) != 1 || got[0] != "acme" {
				t.Fatalf("an Add to one header changed another: %v", h)
			}
		})
	}
}
