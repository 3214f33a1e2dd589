package authserver

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// The forward-auth attacker: bob is a member of acme only, and tries to
// reach globex's routes through every spelling of a globex path and every
// other copy of the original URI a client can send. Each case runs under
// each --forwarded-uri-source, with the auth request built the way that
// proxy builds it, plus the copies a client adds to fool the others.

// forwardedSources are the values of --forwarded-uri-source under test.
// header: names a custom header pair, as another proxy would set.
var forwardedSources = []string{"ingress-nginx", "traefik", "envoy", "header:X-Original-Path,X-Original-Verb"}

// authRequest is an auth request for an original request, as the proxy of
// source sends it, with the spoofed copies of a hostile client added.
type authRequest struct {
	path   string // the auth request's own path and query
	method string // the auth request's own method
	header http.Header
}

// forwardAs builds the auth request source's proxy sends for an original
// request (method, uri) to a route whose configuration sets org/role/scope
// in routeQuery (ingress-nginx, Traefik and header: put it in the auth
// URL's query; Envoy in the /verify segment's parameters).
func forwardAs(source, method, uri, routeQuery string) authRequest {
	a := authRequest{path: "/verify", method: "GET", header: http.Header{}}
	// What a client adds, hoping the server reads another copy: acme
	// paths (bob's own tenant) in every header some proxy uses.
	spoof := "/api/org/acme/orders"
	a.header.Set("X-Original-URI", spoof)
	a.header.Set("X-Forwarded-Uri", spoof)
	a.header.Set("X-Original-URL", "https://api.example.com"+spoof)
	a.header.Set("X-Original-Path", spoof)
	a.header.Set("X-Forwarded-Method", "GET")
	a.header.Set("X-Original-Method", "GET")
	a.header.Set("X-Original-Verb", "GET")
	if routeQuery != "" {
		a.path += "?" + routeQuery
	}
	switch source {
	case "ingress-nginx":
		a.header.Set("X-Original-URL", "https://api.example.com"+uri)
		a.header.Set("X-Original-Method", method)
	case "traefik":
		a.header.Set("X-Forwarded-Uri", uri)
		a.header.Set("X-Forwarded-Method", method)
	case "envoy":
		// ext_authz keeps the method and appends the client's path and
		// query; the client adds ?org=acme.
		a.method = method
		a.path = "/verify"
		if routeQuery != "" {
			a.path += ";" + strings.ReplaceAll(routeQuery, "&", ";")
		}
		sep := "?"
		if strings.Contains(uri, "?") {
			sep = "&"
		}
		a.path += uri + sep + "org=acme&role=viewer"
	default:
		a.header.Set("X-Original-Path", uri)
		a.header.Set("X-Original-Verb", method)
	}
	return a
}

// send sends an auth request to the harness's listener as is.
func (h *harness) send(a authRequest) response {
	h.t.Helper()
	req, err := http.NewRequest(a.method, h.http.URL+a.path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	for k, vs := range a.header {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func TestVerifyForwardedTenantSpoofing(t *testing.T) {
	tests := []struct {
		name   string
		uri    string
		status int
		code   string
		// notEnvoy: Go's HTTP server itself refuses such a request line
		// before any handler runs, so Envoy mode cannot be asked.
		notEnvoy bool
	}{
		// The victim's own tenant keeps working in every spelling.
		{name: "own tenant", uri: "/api/org/acme/orders", status: 200},
		{name: "own tenant by id", uri: "/api/org/org_acme/orders?x=1", status: 200},
		{name: "own tenant mixed case", uri: "/API/Org/ACME/orders", status: 200},
		{name: "own tenant percent-encoded", uri: "/api/org/%61cme/orders", status: 200},
		{name: "own tenant doubled", uri: "/api/org/acme/api/org/acme/x", status: 200},
		{name: "own tenant with dot segments", uri: "/api/org/acme/./x/../orders", status: 200},
		{name: "no tenant authenticates only", uri: "/static/app.js", status: 200},
		{name: "tenant prefix without a tenant", uri: "/api/org/", status: 200},

		{name: "other tenant", uri: "/api/org/globex/orders", status: 403, code: "wrong_organization"},
		{name: "other tenant without trailing slash", uri: "/api/org/globex", status: 403, code: "wrong_organization"},
		{name: "leading double slash", uri: "//api/org/globex/orders", status: 403, code: "wrong_organization"},
		{name: "doubled slashes inside", uri: "/api//org///globex/orders", status: 403, code: "wrong_organization"},
		{name: "dot segment", uri: "/api/./org/globex/orders", status: 403, code: "wrong_organization"},
		{name: "upper-case prefix", uri: "/API/org/globex/orders", status: 403, code: "wrong_organization"},
		{name: "mixed case", uri: "/Api/ORG/GloBex/orders", status: 403, code: "wrong_organization"},
		{name: "percent-encoded slug", uri: "/api/org/%67lobex/orders", status: 403, code: "wrong_organization"},
		{name: "percent-encoded prefix", uri: "/%61pi/%6Frg/globex/orders", status: 403, code: "wrong_organization"},
		{name: "dot-dot back into a tenant", uri: "/api/org/acme/../globex/x", status: 403, code: "wrong_organization"},
		{name: "encoded dot-dot", uri: "/api/org/acme/%2e%2E/globex/x", status: 403, code: "wrong_organization"},
		{name: "dot-dot over the prefix", uri: "/x/../api/org/globex/orders", status: 403, code: "wrong_organization"},
		{name: "doubled prefix", uri: "/api/org/acme/api/org/globex/x", status: 403, code: "wrong_organization"},
		{name: "tenant path under another prefix", uri: "/v1/api/org/globex/orders", status: 403, code: "wrong_organization"},
		{name: "dot segments resolved away", uri: "/api/org/globex/x/../../..", status: 403, code: "wrong_organization"},
		{name: "other tenant by id", uri: "/api/org/ORG_GLOBEX/orders", status: 403, code: "wrong_organization"},
		// U+0130 lower-cases to i and U+0131 upper-cases to I: a router that
		// folds case with Unicode rules reads /api/org/globex.
		{name: "unicode case look-alike prefix", uri: "/ap%C4%B0/org/globex/orders", status: 403, code: "wrong_organization"},
		{name: "unicode dotless i prefix", uri: "/ap%C4%B1/ORG/globex/orders", status: 403, code: "wrong_organization"},
		{name: "fullwidth look-alike of the own tenant", uri: "/api/org/%EF%BD%81cme/orders", status: 403, code: "wrong_organization"},

		{name: "encoded slash", uri: "/api/org%2Fglobex/orders", status: 400, code: "invalid_forwarded_uri"},
		{name: "encoded slash in tenant", uri: "/api/org/acme%2F..%2Fglobex/x", status: 400, code: "invalid_forwarded_uri"},
		{name: "encoded backslash", uri: "/api%5Corg%5Cglobex/orders", status: 400, code: "invalid_forwarded_uri"},
		{name: "double encoding", uri: "/api/org/acme/%252e%252e/globex", status: 400, code: "invalid_forwarded_uri"},
		{name: "path parameter", uri: "/api;v=1/org/globex/orders", status: 400, code: "invalid_forwarded_uri"},
		{name: "encoded NUL", uri: "/api/org/globex%00/orders", status: 400, code: "invalid_forwarded_uri"},
		{name: "overlong slash", uri: "/api/org/acme%C0%AF..%C0%AFglobex", status: 400, code: "invalid_forwarded_uri"},
		{name: "invalid percent-encoding", uri: "/api/org/gl%ZZobex/orders", status: 400, code: "invalid_forwarded_uri", notEnvoy: true},
	}
	for _, source := range forwardedSources {
		t.Run(source, func(t *testing.T) {
			h := newHarness(t, nil, withForwardedSource(t, source))
			h.addMember("demo/acme", "bob@acme.com", "member", "correct horse battery")
			jwt := h.login("bob@acme.com", "correct horse battery", "").str("access_token")
			key, _ := h.addAPIKey("demo/acme", "read")
			for _, tt := range tests {
				if tt.notEnvoy && source == "envoy" {
					continue
				}
				t.Run(tt.name, func(t *testing.T) {
					for _, cred := range [][2]string{{"Authorization", "Bearer " + jwt}, {"X-API-Key", key}} {
						a := forwardAs(source, "GET", tt.uri, "")
						a.header.Set(cred[0], cred[1])
						r := h.send(a)
						if r.status != tt.status || r.errCode() != tt.code {
							t.Fatalf("%s %s: got %d %q, want %d %q: %s", cred[0], a.path, r.status, r.errCode(), tt.status, tt.code, r.raw)
						}
						if r.status == 200 && r.header.Get("X-Auth-Org-Slug") != "acme" {
							t.Fatalf("200 for org %q", r.header.Get("X-Auth-Org-Slug"))
						}
					}
				})
			}
		})
	}
}

// TestVerifyRouteConfiguration checks that org, role and scope come from
// the route's configuration only, and all hold together with the path's
// tenant: the client's query never sets them in Envoy mode, and the
// route's org never overrides a path that names another tenant.
func TestVerifyRouteConfiguration(t *testing.T) {
	tests := []struct {
		name   string
		route  string // org/role/scope, in query syntax
		uri    string
		status int
		code   string
	}{
		{name: "route org of the credential", route: "org=acme", uri: "/orders", status: 200},
		{name: "route org of another tenant", route: "org=globex", uri: "/orders", status: 403, code: "wrong_organization"},
		{name: "route org does not override the path", route: "org=acme", uri: "/api/org/globex/orders", status: 403, code: "wrong_organization"},
		{name: "route role met", route: "org=acme&role=member", uri: "/api/org/acme/orders", status: 200},
		{name: "route role too high", route: "role=admin", uri: "/api/org/acme/orders", status: 403, code: "insufficient_role"},
		{name: "route scope missing", route: "scope=write", uri: "/orders", status: 403, code: "insufficient_scope"},
		{name: "route org given twice", route: "org=acme&org=globex", uri: "/orders", status: 400, code: "invalid_route_parameters"},
		{name: "route org empty", route: "org=", uri: "/orders", status: 400, code: "invalid_route_parameters"},
	}
	for _, source := range forwardedSources {
		t.Run(source, func(t *testing.T) {
			h := newHarness(t, nil, withForwardedSource(t, source))
			h.addMember("demo/acme", "bob@acme.com", "member", "correct horse battery")
			jwt := h.login("bob@acme.com", "correct horse battery", "").str("access_token")
			key, _ := h.addAPIKey("demo/acme", "read")
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					cred := []string{"Authorization", "Bearer " + jwt}
					if strings.Contains(tt.route, "scope=") {
						cred = []string{"X-API-Key", key}
					}
					a := forwardAs(source, "GET", tt.uri, tt.route)
					a.header.Set(cred[0], cred[1])
					if r := h.send(a); r.status != tt.status || r.errCode() != tt.code {
						t.Fatalf("%s: got %d %q, want %d %q: %s", a.path, r.status, r.errCode(), tt.status, tt.code, r.raw)
					}
				})
			}
		})
	}

	t.Run("envoy ignores the client's query", func(t *testing.T) {
		h := newHarness(t, nil, withForwardedSource(t, "envoy"))
		h.addMember("demo/acme", "bob@acme.com", "member", "correct horse battery")
		bearer := "Bearer " + h.login("bob@acme.com", "correct horse battery", "").str("access_token")
		for _, tt := range []struct {
			path   string
			status int
		}{
			// The case: the client's ?org=acme used to win.
			{"/verify/api/org/globex/orders?org=acme", 403},
			{"/verify;org=globex/orders?org=acme", 403},
			// A client's ?role= can neither raise nor lower the route's.
			{"/verify;role=admin/api/org/acme/orders?role=viewer", 403},
			{"/verify/api/org/acme/orders?role=admin&scope=admin&org=globex", 200},
			// A client cannot add ;parameters: its path starts after them.
			{"/verify/;org=acme/api/org/globex", 400},
			{"/verify;tenant=acme/orders", 400},
		} {
			if r := h.do("GET", tt.path, nil, "Authorization", bearer); r.status != tt.status {
				t.Errorf("%s: got %d, want %d: %s", tt.path, r.status, tt.status, r.raw)
			}
		}
	})

	t.Run("envoy under a path prefix", func(t *testing.T) {
		h := newHarness(t, nil, withForwardedSource(t, "envoy"), func(c *Config) { c.PathPrefix = "/api/v1" })
		h.addMember("demo/acme", "bob@acme.com", "member", "correct horse battery")
		bearer := "Bearer " + h.do("POST", "/api/v1/auth/login", map[string]string{"email": "bob@acme.com", "password": "correct horse battery"}).str("access_token")
		for _, tt := range []struct {
			path   string
			status int
		}{
			{"/api/v1/verify;org=acme/api/org/acme/orders", 200},
			{"/api/v1/verify;org=acme/api/org/globex/orders", 403},
			{"/api/v1/verify//api/org/globex/orders", 403},
			{"/api/v1/verify/api/org/%2e%2e/globex/orders", 200}, // normalises to /api/globex/orders: no tenant
			{"/verify/api/org/acme/orders", 404},
		} {
			if r := h.do("GET", tt.path, nil, "Authorization", bearer); r.status != tt.status {
				t.Errorf("%s: got %d, want %d: %s", tt.path, r.status, tt.status, r.raw)
			}
		}
	})

	t.Run("parameters on /verify outside envoy mode", func(t *testing.T) {
		h := newHarness(t, nil, withForwardedSource(t, "ingress-nginx"))
		h.addMember("demo/acme", "bob@acme.com", "member", "correct horse battery")
		bearer := "Bearer " + h.login("bob@acme.com", "correct horse battery", "").str("access_token")
		if r := h.do("GET", "/verify;org=globex", nil, "Authorization", bearer); r.status != 400 || r.errCode() != "invalid_route_parameters" {
			t.Fatalf("got %d %s", r.status, r.raw)
		}
	})
}

// TestVerifyForwardedHeaderTricks covers what only a header-borne URI
// allows: ingress-nginx builds X-Original-URL from the client's Host
// header, which nginx lets hold '?' and '#', and a header sent twice.
func TestVerifyForwardedHeaderTricks(t *testing.T) {
	h := newHarness(t, nil)
	h.addMember("demo/acme", "bob@acme.com", "member", "correct horse battery")
	bearer := "Bearer " + h.login("bob@acme.com", "correct horse battery", "").str("access_token")
	tests := []struct {
		name   string
		header http.Header
		status int
		code   string
	}{
		{name: "host with ?", header: http.Header{"X-Original-Url": {"https://api.example.com?/api/org/globex/orders"}}, status: 403, code: "wrong_organization"},
		{name: "host with #", header: http.Header{"X-Original-Url": {"http://api.example.com#/api/org/globex/orders"}}, status: 403, code: "wrong_organization"},
		{name: "host with @", header: http.Header{"X-Original-Url": {"http://acme@api.example.com/api/org/globex/orders"}}, status: 403, code: "wrong_organization"},
		{name: "sent twice", header: http.Header{"X-Original-Url": {"https://a/api/org/acme/", "https://a/api/org/globex/"}}, status: 400, code: "invalid_forwarded_uri"},
		{name: "a path, not a URL", header: http.Header{"X-Original-Url": {"/api/org/globex/orders"}}, status: 400, code: "invalid_forwarded_uri"},
		{name: "no path at all", header: http.Header{"X-Original-Url": {"https://api.example.com"}}, status: 400, code: "invalid_forwarded_uri"},
		{name: "method sent twice", header: http.Header{"X-Original-Url": {"https://a/api/org/acme/"}, "X-Original-Method": {"GET", "POST"}}, status: 400, code: "invalid_forwarded_method"},
		{name: "no forwarded URI names no tenant", header: http.Header{}, status: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.header.Set("Authorization", bearer)
			if r := h.send(authRequest{path: "/verify", method: "GET", header: tt.header}); r.status != tt.status || r.errCode() != tt.code {
				t.Fatalf("got %d %q, want %d %q: %s", r.status, r.errCode(), tt.status, tt.code, r.raw)
			}
		})
	}
}

// TestVerifyForwardedCSRF: a session cookie on a state-changing original
// request needs the session's X-CSRF-Token, judged by the original
// method from the source (never by another header the client adds);
// bearer tokens and API keys need none.
func TestVerifyForwardedCSRF(t *testing.T) {
	for _, source := range forwardedSources {
		t.Run(source, func(t *testing.T) {
			h := newHarness(t, nil, withForwardedSource(t, source))
			h.addMember("demo/acme", "bob@acme.com", "member", "correct horse battery")
			s := h.login("bob@acme.com", "correct horse battery", "")
			cookie := "tenantauth_session=" + s.str("access_token")
			csrf := s.str("csrf_token")
			key, _ := h.addAPIKey("demo/acme", "write")
			tests := []struct {
				name    string
				method  string
				headers []string
				status  int
				code    string
			}{
				{name: "cookie GET", method: "GET", headers: []string{"Cookie", cookie}, status: 200},
				{name: "cookie HEAD", method: "HEAD", headers: []string{"Cookie", cookie}, status: 200},
				{name: "cookie POST without token", method: "POST", headers: []string{"Cookie", cookie}, status: 403, code: "csrf_invalid"},
				{name: "cookie PUT without token", method: "PUT", headers: []string{"Cookie", cookie}, status: 403, code: "csrf_invalid"},
				{name: "cookie PATCH without token", method: "PATCH", headers: []string{"Cookie", cookie}, status: 403, code: "csrf_invalid"},
				{name: "cookie DELETE without token", method: "DELETE", headers: []string{"Cookie", cookie}, status: 403, code: "csrf_invalid"},
				{name: "cookie POST with a wrong token", method: "POST", headers: []string{"Cookie", cookie, "X-CSRF-Token", "x" + csrf}, status: 403, code: "csrf_invalid"},
				{name: "cookie POST with the token", method: "POST", headers: []string{"Cookie", cookie, "X-CSRF-Token", csrf}, status: 200},
				{name: "cookie DELETE with the token", method: "DELETE", headers: []string{"Cookie", cookie, "X-CSRF-Token", csrf}, status: 200},
				{name: "bearer POST", method: "POST", headers: []string{"Authorization", "Bearer " + s.str("access_token")}, status: 200},
				{name: "api key POST", method: "POST", headers: []string{"X-API-Key", key}, status: 200},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					a := forwardAs(source, tt.method, "/api/org/acme/orders", "")
					for i := 0; i+1 < len(tt.headers); i += 2 {
						a.header.Set(tt.headers[i], tt.headers[i+1])
					}
					if r := h.send(a); r.status != tt.status || (tt.method != "HEAD" && r.errCode() != tt.code) {
						t.Fatalf("got %d %q, want %d %q: %s", r.status, r.errCode(), tt.status, tt.code, r.raw)
					}
				})
			}
		})
	}

	t.Run("unknown original method counts as state-changing", func(t *testing.T) {
		for _, source := range []string{"ingress-nginx", "header:X-Original-Path"} {
			h := newHarness(t, nil, withForwardedSource(t, source))
			h.addMember("demo/acme", "bob@acme.com", "member", "correct horse battery")
			s := h.login("bob@acme.com", "correct horse battery", "")
			cookie := "tenantauth_session=" + s.str("access_token")
			// No X-Original-Method (or no method header configured): the
			// client's X-Forwarded-Method: GET must not stand in for it.
			hdr := http.Header{"Cookie": {cookie}, "X-Forwarded-Method": {"GET"}, "X-Original-Verb": {"GET"}}
			if r := h.send(authRequest{path: "/verify", method: "GET", header: hdr}); r.status != 403 || r.errCode() != "csrf_invalid" {
				t.Errorf("%s: got %d %s, want 403 csrf_invalid", source, r.status, r.raw)
			}
			hdr.Set("X-CSRF-Token", s.str("csrf_token"))
			if r := h.send(authRequest{path: "/verify", method: "GET", header: hdr}); r.status != 200 {
				t.Errorf("%s with the token: got %d %s", source, r.status, r.raw)
			}
		}
	})
}
