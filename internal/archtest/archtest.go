// Package archtest checks that imports between the module's packages run
// one way (see STYLE.md, "Dependency direction"). Its rules are a pure
// function over an import graph, so they are tested on made-up graphs; its
// test also runs them over the module as `go list -deps` sees it, and
// `make lint` runs that test.
//
// Only non-test imports count: tests may reach for a cluster or a fake
// client where the code under test does not.
package archtest

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Module is the module path the rules are written against.
const Module = "github.com/tenantauth/tenantauth"

// HTTPPackages lists the packages under authserver/ that may import
// net/http: the HTTP layer, which alone decodes requests and writes
// answers. A new package under authserver/ that needs net/http belongs in
// that layer or needs a reason here.
var HTTPPackages = []string{
	Module + "/authserver",
	// The OIDC client takes the HTTP layer's *http.Client for its outbound
	// calls (discovery, JWKS, token and userinfo endpoints) and serves
	// nothing; go-oidc and x/oauth2 speak in net/http types.
	Module + "/authserver/sso/oidc",
}

// Layers are the auth server's packages below the HTTP layer, each with
// the others of them it may import (docs/architecture.md draws them).
// Imports run one way, down. The HTTP layer (the authserver root), the
// store backends (kube, postgres) and the wiring above them are not
// layers: they may import any of these.
var Layers = map[string][]string{
	"authserver/problem":   nil,
	"authserver/store":     nil,
	"authserver/directory": nil,
	"authserver/mail":      nil,
	"authserver/token":     {"authserver/directory"},
	"authserver/session":   {"authserver/problem", "authserver/store", "authserver/directory", "authserver/token"},
	"authserver/account": {"authserver/problem", "authserver/store", "authserver/directory", "authserver/token",
		"authserver/session", "authserver/mail"},
	// The SAML service provider checks a posted response and records its
	// assertion; signing the user in is account's, called by the HTTP
	// layer with what it returns.
	"authserver/sso/saml": {"authserver/problem", "authserver/store"},
	// sso ends every protocol's sign-in in account's completion; the
	// protocols (sso/oidc, sso/saml) sit on it.
	"authserver/sso":      {"authserver/problem", "authserver/directory", "authserver/session", "authserver/account"},
	"authserver/sso/oidc": {"authserver/problem", "authserver/directory", "authserver/sso"},
}

// Graph is an import graph: each package's direct, non-test imports, and
// which packages are in the standard library.
type Graph struct {
	Imports  map[string][]string
	Standard map[string]bool
}

// Violation is one import that breaks a rule.
type Violation struct {
	Package string // the importing package
	Import  string // the forbidden package, directly or through others
	Rule    string
}

func (v Violation) String() string {
	return fmt.Sprintf("%s imports %s: %s", v.Package, v.Import, v.Rule)
}

func under(pkg, dir string) bool {
	p := Module + "/" + dir
	return pkg == p || strings.HasPrefix(pkg, p+"/")
}

func isKube(pkg string) bool {
	return strings.HasPrefix(pkg, "k8s.io/") || strings.HasPrefix(pkg, "sigs.k8s.io/")
}

// deps is every package pkg imports, directly or not, sorted.
func (g Graph) deps(pkg string) []string {
	seen := map[string]bool{}
	var walk func(string)
	walk = func(p string) {
		for _, i := range g.Imports[p] {
			if !seen[i] {
				seen[i] = true
				walk(i)
			}
		}
	}
	walk(pkg)
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// Check applies every rule to the module's packages in g and returns what
// breaks them, sorted.
func Check(g Graph) []Violation {
	var out []Violation
	pkgs := make([]string, 0, len(g.Imports))
	for p := range g.Imports {
		if p == Module || strings.HasPrefix(p, Module+"/") {
			pkgs = append(pkgs, p)
		}
	}
	sort.Strings(pkgs)
	for _, p := range pkgs {
		switch {
		case under(p, "api"):
			// api/ is read by every layer; it holds types and names only.
			for _, i := range g.Imports[p] {
				if !g.Standard[i] && !strings.HasPrefix(i, "k8s.io/apimachinery/") &&
					i != "sigs.k8s.io/controller-runtime/pkg/scheme" && !under(i, "api") {
					out = append(out, Violation{p, i, "api/ imports only apimachinery, controller-runtime's scheme helpers, the standard library and api/"})
				}
			}
		case under(p, "controllers"), under(p, "webhook"):
			// The operator side never depends on the auth server.
			for _, i := range g.deps(p) {
				if under(i, "authserver") {
					out = append(out, Violation{p, i, "controllers/ and webhook/ never import authserver/"})
				}
			}
		case under(p, "authserver") && !under(p, "authserver/kube") && !under(p, "authserver/e2e"):
			// Only the kubernetes store and source know Kubernetes types.
			for _, i := range g.deps(p) {
				if isKube(i) {
					out = append(out, Violation{p, i, "nothing under authserver/ but authserver/kube imports k8s.io or sigs.k8s.io"})
					break // one chain is enough to say so
				}
			}
		}
		if allowed, layered := Layers[strings.TrimPrefix(p, Module+"/")]; layered {
			for _, i := range g.Imports[p] {
				rel := strings.TrimPrefix(i, Module+"/")
				if _, isLayer := Layers[rel]; isLayer && !slices.Contains(allowed, rel) {
					out = append(out, Violation{p, i, "auth server layers import only the layers below them (archtest.Layers)"})
				}
			}
		}
		if under(p, "authserver") && !slices.Contains(HTTPPackages, p) && slices.Contains(g.Imports[p], "net/http") {
			out = append(out, Violation{p, "net/http", "under authserver/ only the HTTP layer (archtest.HTTPPackages) imports net/http"})
		}
	}
	return out
}
