package authserver

import (
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/tenantauth/tenantauth/authserver/problem"
)

// ForwardedURISource is where /verify reads the original request from:
// exactly one source per deployment, chosen with
// --forwarded-uri-source. Every other copy of the original URI (other
// headers, and in Envoy mode the client's query) is ignored, because a
// client may send any header and most proxies pass client headers through
// to the auth request. The zero value is ingress-nginx, the default.
type ForwardedURISource struct {
	kind sourceKind
	// uriHeader and methodHeader are the canonical header names of a
	// header:<name>[,<method header>] source. With no method header the
	// original method is unknown, and unknown counts as state-changing.
	uriHeader    string
	methodHeader string
}

type sourceKind uint8

const (
	sourceIngressNginx sourceKind = iota
	sourceTraefik
	sourceEnvoy
	sourceHeader
)

// The values of --forwarded-uri-source other than header:<name>.
const (
	SourceIngressNginx = "ingress-nginx"
	SourceTraefik      = "traefik"
	SourceEnvoy        = "envoy"
)

// Headers the proxies set on the auth request, over whatever the client
// sent, in canonical form so that reading them is one map lookup.
const (
	headerOriginalURL     = "X-Original-Url"     // ingress-nginx: $scheme://$http_host$request_uri
	headerOriginalMethod  = "X-Original-Method"  // ingress-nginx: $request_method
	headerForwardedURI    = "X-Forwarded-Uri"    // Traefik ForwardAuth
	headerForwardedMethod = "X-Forwarded-Method" // Traefik ForwardAuth
)

// ParseForwardedURISource reads a --forwarded-uri-source value:
// ingress-nginx, traefik, envoy, or header:<name> for a proxy that sets
// header <name> to the original URI itself. header:<name>,<method header>
// also names the header that carries the original method; without it the
// method is unknown and a cookie-authenticated request always needs its
// CSRF token.
func ParseForwardedURISource(v string) (ForwardedURISource, error) {
	switch v {
	case SourceIngressNginx:
		return ForwardedURISource{kind: sourceIngressNginx}, nil
	case SourceTraefik:
		return ForwardedURISource{kind: sourceTraefik}, nil
	case SourceEnvoy:
		return ForwardedURISource{kind: sourceEnvoy}, nil
	}
	rest, ok := strings.CutPrefix(v, "header:")
	if !ok {
		return ForwardedURISource{}, fmt.Errorf("forwarded URI source %q: must be ingress-nginx, traefik, envoy or header:<name>", v)
	}
	uri, method, hasMethod := strings.Cut(rest, ",")
	if err := checkSourceHeader(uri); err != nil {
		return ForwardedURISource{}, fmt.Errorf("forwarded URI source %q: %w", v, err)
	}
	src := ForwardedURISource{kind: sourceHeader, uriHeader: textproto.CanonicalMIMEHeaderKey(uri)}
	if hasMethod {
		if err := checkSourceHeader(method); err != nil {
			return ForwardedURISource{}, fmt.Errorf("forwarded URI source %q: method header: %w", v, err)
		}
		src.methodHeader = textproto.CanonicalMIMEHeaderKey(method)
	}
	return src, nil
}

// checkSourceHeader accepts an HTTP header name that is not one of the
// credential headers, which cannot also carry the original URI.
func checkSourceHeader(name string) error {
	if name == "" {
		return errors.New("the header name is empty")
	}
	for i := 0; i < len(name); i++ {
		if !isTokenChar(name[i]) {
			return errors.New("the header name is not a valid HTTP header name")
		}
	}
	switch textproto.CanonicalMIMEHeaderKey(name) {
	case "Authorization", "Cookie", "X-Api-Key", "X-Csrf-Token", "Host":
		return fmt.Errorf("header %s carries credentials or the auth request's own host, not the original URI", name)
	}
	return nil
}

// isTokenChar reports whether c may appear in an HTTP token (RFC 9110
// section 5.6.2).
func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// String is the flag value of s.
func (s ForwardedURISource) String() string {
	switch s.kind {
	case sourceTraefik:
		return SourceTraefik
	case sourceEnvoy:
		return SourceEnvoy
	case sourceHeader:
		if s.methodHeader != "" {
			return "header:" + s.uriHeader + "," + s.methodHeader
		}
		return "header:" + s.uriHeader
	}
	return SourceIngressNginx
}

// MarshalText is String, for flag.TextVar.
func (s ForwardedURISource) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText is ParseForwardedURISource, for flag.TextVar: a bad value
// stops the program at flag parsing.
func (s *ForwardedURISource) UnmarshalText(b []byte) error {
	v, err := ParseForwardedURISource(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// forwardedRequest is what /verify learns about the original request from
// the deployment's one source.
type forwardedRequest struct {
	path forwardedPath
	// method is the original method, or "" when the source does not say;
	// changesState counts "" as state-changing.
	method string
	// org, role and scope come from the route's configuration: the auth
	// URL's query (ingress-nginx, Traefik, header) or the parameters of the
	// /verify segment (Envoy).
	org, role, scope string
}

var (
	errForwardedDuplicate = problem.InvalidForwardedURI.Because("the header carrying the original request appears more than once")
	errForwardedURL       = problem.InvalidForwardedURI.Because("the original URL must be an absolute http(s) URL or a path starting with /")
	errRouteParams        = problem.InvalidRouteParameters.New()
	errRouteParamsMode    = problem.InvalidRouteParameters.Because("parameters on the /verify segment are read only with --forwarded-uri-source=envoy; put org, role and scope in the auth URL's query")
	errForwardedMethod    = problem.InvalidForwardedMethod.Because("the header carrying the original method appears more than once")
)

// readForwarded reads the original request from the configured source
// only, and the route's org, role and scope from the route's
// configuration only.
func (s *Server) readForwarded(r *http.Request) (forwardedRequest, error) {
	var f forwardedRequest
	// The auth request's own path: <prefix>/verify, then in Envoy mode
	// ;params and the original path.
	self := r.RequestURI
	if self == "" || self[0] != '/' {
		self = r.URL.EscapedPath()
		if r.URL.RawQuery != "" {
			self += "?" + r.URL.RawQuery
		}
	}
	after := strings.TrimPrefix(self, s.verifyPath)
	var err error
	switch src := s.cfg.ForwardedURISource; src.kind {
	case sourceEnvoy:
		// ext_authz appends the client's path and query to the configured
		// path, so the query is the client's: org, role and scope come only
		// from the ;parameters that the gateway's configuration fixes.
		var params string
		if strings.HasPrefix(after, ";") {
			end := strings.IndexAny(after, "/?")
			if end < 0 {
				end = len(after)
			}
			params, after = after[1:end], after[end:]
			if f.org, f.role, f.scope, err = routeParams(params, ';', false); err != nil {
				return f, err
			}
		}
		if path, _, _ := strings.Cut(after, "?"); path != "" {
			if f.path, err = parseForwardedPath(path); err != nil {
				return f, err
			}
		}
		f.method = r.Method
		return f, nil
	case sourceIngressNginx:
		err = f.readHeaders(r, headerOriginalURL, headerOriginalMethod, true)
	case sourceTraefik:
		err = f.readHeaders(r, headerForwardedURI, headerForwardedMethod, false)
	case sourceHeader:
		err = f.readHeaders(r, src.uriHeader, src.methodHeader, false)
	}
	if err != nil {
		return f, err
	}
	if strings.HasPrefix(after, ";") {
		return f, errRouteParamsMode
	}
	if r.URL.RawQuery != "" {
		f.org, f.role, f.scope, err = routeParams(r.URL.RawQuery, '&', true)
	}
	return f, err
}

// readHeaders reads the original URI and method from the source's
// headers. A header sent twice is refused rather than guessed at; a
// missing URI header names no tenant, and a missing method is unknown.
func (f *forwardedRequest) readHeaders(r *http.Request, uriHeader, methodHeader string, absolute bool) error {
	switch vs := r.Header[uriHeader]; len(vs) {
	case 0:
	case 1:
		path, err := requestPath(vs[0], absolute)
		if err != nil {
			return err
		}
		if f.path, err = parseForwardedPath(path); err != nil {
			return err
		}
	default:
		return errForwardedDuplicate
	}
	if methodHeader == "" {
		return nil
	}
	switch vs := r.Header[methodHeader]; len(vs) {
	case 0:
	case 1:
		f.method = vs[0]
	default:
		return errForwardedMethod
	}
	return nil
}

// requestPath is the path of an original request target: an absolute
// http(s) URL (ingress-nginx sends $scheme://$http_host$request_uri) or,
// unless absolute is required, a path. The authority is skipped up to the
// first '/', never parsed: $http_host is the client's Host header, which
// nginx lets hold '?', '#' and '@', and a URL parser would then read the
// path as a query or fragment and find no tenant in it.
func requestPath(v string, absolute bool) (string, error) {
	if !absolute && strings.HasPrefix(v, "/") {
		path, _, _ := strings.Cut(v, "?")
		return path, nil
	}
	var rest string
	switch {
	case len(v) > 8 && strings.EqualFold(v[:8], "https://"):
		rest = v[8:]
	case len(v) > 7 && strings.EqualFold(v[:7], "http://"):
		rest = v[7:]
	default:
		return "", errForwardedURL
	}
	i := strings.IndexByte(rest, '/')
	if i < 0 {
		return "", errForwardedURL
	}
	path, _, _ := strings.Cut(rest[i:], "?")
	return path, nil
}

// routeParams reads org, role and scope from a route's configuration,
// pairs separated by sep. Other keys are ignored in a query (it is the
// proxy's auth URL, which may carry its own) and refused in Envoy's
// ;parameters. A key given twice, or a value that is not a plain token,
// is a configuration error: 400, never a guess.
func routeParams(raw string, sep byte, query bool) (org, role, scope string, err error) {
	for raw != "" {
		var pair string
		if i := strings.IndexByte(raw, sep); i >= 0 {
			pair, raw = raw[:i], raw[i+1:]
		} else {
			pair, raw = raw, ""
		}
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		var dst *string
		switch k {
		case "org":
			dst = &org
		case "role":
			dst = &role
		case "scope":
			dst = &scope
		default:
			if query {
				continue
			}
			return "", "", "", errRouteParams
		}
		if *dst != "" || !plainToken(v) {
			return "", "", "", errRouteParams
		}
		*dst = v
	}
	return org, role, scope, nil
}

// plainToken accepts slugs, organization IDs, role names and scopes: no
// escapes, so no decoding is needed and no two spellings mean one value.
func plainToken(v string) bool {
	if v == "" || len(v) > 128 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
