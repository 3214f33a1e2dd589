package authserver

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
)

// handleVerify is /verify, forward-auth for ingress controllers and
// gateways. It does no network call: JWTs verify against keys in memory
// and API keys against hashes in memory.
func (s *Server) handleVerify(w http.ResponseWriter, r *http.Request) {
	p, err := s.authenticate(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	tenant := q.Get("org")
	if tenant == "" {
		tenant = s.forwardedOrg(r)
	}
	if tenant != "" {
		if tenant != p.Org.ID && tenant != p.Org.Slug {
			s.writeError(w, r, errf(http.StatusForbidden, "wrong_organization", "the credential belongs to another organization"))
			return
		}
	}
	if want := q.Get("role"); want != "" {
		need, ok := p.Org.Role(want)
		if !ok {
			s.writeError(w, r, errf(http.StatusBadRequest, "invalid_role", "the role query names no role of this organization"))
			return
		}
		if rank := s.rank(p); rank < need.Rank {
			s.writeError(w, r, errf(http.StatusForbidden, "insufficient_role", "this needs role "+want+" or higher; the credential has "+s.roleName(p)))
			return
		}
	}
	if want := q.Get("scope"); want != "" && p.Kind == kindAPIKey && !slices.Contains(p.Scopes, want) {
		s.writeError(w, r, errf(http.StatusForbidden, "insufficient_scope", "this needs scope "+want+"; the key has "+strings.Join(p.Scopes, ",")))
		return
	}
	h := w.Header()
	h.Set("X-Auth-Org-Id", p.Org.ID)
	h.Set("X-Auth-Org-Slug", p.Org.Slug)
	if p.Kind == kindUser {
		h.Set("X-Auth-User-Id", p.UserID)
		h.Set("X-Auth-Email", p.Email)
		h.Set("X-Auth-Role", p.Role)
	} else {
		h.Set("X-Auth-Key-Id", p.KeyID)
		h.Set("X-Auth-Scopes", strings.Join(p.Scopes, ","))
	}
	w.WriteHeader(http.StatusOK)
}

// forwardedOrg reads the tenant from a forwarded path /api/org/{org}/...:
// X-Forwarded-Uri (Traefik), X-Original-URI (ingress-nginx), or the path
// after /verify (Envoy ext_authz).
func (s *Server) forwardedOrg(r *http.Request) string {
	uri := r.Header.Get("X-Forwarded-Uri")
	if uri == "" {
		uri = r.Header.Get("X-Original-URI")
	}
	if uri == "" {
		uri = strings.TrimPrefix(r.URL.Path, s.cfg.PathPrefix+"/verify")
	}
	if uri == "" {
		return ""
	}
	if u, err := url.Parse(uri); err == nil {
		uri = u.Path
	}
	rest, ok := strings.CutPrefix(uri, "/api/org/")
	if !ok {
		return ""
	}
	org, _, _ := strings.Cut(rest, "/")
	return org
}

// rank is the principal's role rank. An API key ranks by its highest
// scope: admin as admin, write or delete as manager, read as viewer.
func (s *Server) rank(p *Principal) int {
	r, _ := p.Org.Role(s.roleName(p))
	return r.Rank
}

func (s *Server) roleName(p *Principal) string {
	if p.Kind == kindUser {
		return p.Role
	}
	switch {
	case slices.Contains(p.Scopes, string(tav1.ScopeAdmin)):
		return tav1.RoleAdmin
	case slices.Contains(p.Scopes, string(tav1.ScopeWrite)), slices.Contains(p.Scopes, string(tav1.ScopeDelete)):
		return tav1.RoleManager
	}
	return tav1.RoleViewer
}
