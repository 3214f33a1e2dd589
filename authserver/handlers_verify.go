package authserver

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/tenantauth/tenantauth/authserver/problem"

	"github.com/tenantauth/tenantauth/api/consts"
)

var errWrongOrganization = problem.WrongOrganization.New()

// handleVerify is /verify, forward-auth for ingress controllers and
// gateways. It reads the original request from the deployment's one
// source (readForwarded), authenticates with the CSRF rule applied to the
// original method, and checks the tenant, role and scope. It does no
// network call: JWTs verify against keys in memory and API keys against
// hashes in memory. ctx bounds the store's calls; the status written is
// returned for the metrics (instrumentVerify).
func (s *Server) handleVerify(ctx context.Context, w http.ResponseWriter, r *http.Request) int {
	fwd, err := s.readForwarded(r)
	if err != nil {
		return s.writeError(w, r, err)
	}
	var p Principal // stays on the stack
	if err := s.authenticateMethodInto(ctx, r, fwd.method, &p); err != nil {
		return s.writeError(w, r, err)
	}
	if err := s.authorizeForwarded(&p, &fwd); err != nil {
		return s.writeError(w, r, err)
	}
	setIdentityHeaders(w.Header(), &p)
	w.WriteHeader(http.StatusOK)
	return http.StatusOK
}

// setIdentityHeaders sets the X-Auth-* headers of a principal, replacing
// any of them already set. The names are in canonical form, so each is
// set as Header.Set would, and all the values share one array rather
// than a slice each.
func setIdentityHeaders(h http.Header, p *Principal) {
	vals := make([]string, 0, 5)
	set := func(name, v string) {
		vals = append(vals, v)
		h[name] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	set("X-Auth-Org-Id", p.Org.ID)
	set("X-Auth-Org-Slug", p.Org.Slug)
	if p.Kind == kindUser {
		set("X-Auth-User-Id", p.UserID)
		set("X-Auth-Email", p.Email)
		set("X-Auth-Role", p.Role)
	} else {
		set("X-Auth-Key-Id", p.KeyID)
		set("X-Auth-Scopes", strings.Join(p.Scopes, ","))
	}
}

// authorizeForwarded applies the route's rules to an authenticated
// principal. They all hold together: the route's org and every tenant the
// path names must be the credential's organization (a path with no
// tenant authenticates only), its role must rank at least the route's
// role, and an API key must hold the route's scope.
func (s *Server) authorizeForwarded(p *Principal, fwd *forwardedRequest) error {
	if fwd.org != "" && !orgNamed(p.Org, fwd.org) {
		return errWrongOrganization
	}
	if !fwd.path.allTenantsAre(p.Org) {
		return errWrongOrganization
	}
	if want := fwd.role; want != "" {
		need, ok := p.Org.Role(want)
		if !ok {
			return problem.InvalidRole.New()
		}
		if rank := s.rank(p); rank < need.Rank {
			return problem.InsufficientRole.Because("this needs role " + want + " or higher; the credential has " + s.roleName(p))
		}
	}
	if want := fwd.scope; want != "" && p.Kind == kindAPIKey && !slices.Contains(p.Scopes, want) {
		return problem.InsufficientScope.Because("this needs scope " + want + "; the key has " + strings.Join(p.Scopes, ","))
	}
	return nil
}

// isVerifyPath reports whether the request is for /verify: the path
// itself, a path under it (Envoy's ext_authz appends the original path)
// or /verify;parameters (Envoy's route configuration). It reads the raw
// request target, because the mux would redirect an unclean original
// path such as /verify//api/org/x instead of letting /verify judge it.
func (s *Server) isVerifyPath(r *http.Request) bool {
	target := r.RequestURI
	if target == "" || target[0] != '/' {
		target = r.URL.EscapedPath()
	}
	rest, ok := strings.CutPrefix(target, s.verifyPath)
	return ok && (rest == "" || rest[0] == '/' || rest[0] == ';' || rest[0] == '?')
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
	case slices.Contains(p.Scopes, consts.ScopeAdmin):
		return consts.RoleAdmin
	case slices.Contains(p.Scopes, consts.ScopeWrite), slices.Contains(p.Scopes, consts.ScopeDelete):
		return consts.RoleManager
	}
	return consts.RoleViewer
}
