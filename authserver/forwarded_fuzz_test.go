package authserver

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tenantauth/tenantauth/authserver/problem"

	"github.com/tenantauth/tenantauth/authserver/directory"
)

// forwardedSeeds are original paths worth starting from: the spoofing
// table's, plus edge cases of the normaliser.
var forwardedSeeds = []string{
	"/", "//", "/.", "/..", "/./", "/../", "/a/b/..", "/a/b/.", "/a//..", "/a/..//b",
	"/api/org/acme/orders", "/api/org/org_acme/orders", "/API/Org/ACME/orders", "/api/org/%61cme/orders",
	"/api/org/acme/api/org/globex/x", "/api/org/", "/api/org", "/api/org/globex", "//api/org/globex/orders",
	"/api//org///globex/orders", "/api/./org/globex/orders", "/Api/ORG/GloBex/orders", "/api/org/%67lobex/orders",
	"/%61pi/%6Frg/globex/orders", "/api/org/acme/../globex/x", "/api/org/acme/%2e%2E/globex/x",
	"/x/../api/org/globex/orders", "/v1/api/org/globex/orders", "/api/org/globex/x/../../..",
	"/api/org%2Fglobex/orders", "/api%5Corg%5Cglobex", "/api/org/acme/%252e%252e/globex", "/api;v=1/org/globex",
	"/api/org/globex%00/orders", "/api/org/acme%C0%AF..%C0%AFglobex", "/api/org/gl%ZZobex", "/api/org/gl%",
	"/api/org/caf\xc3\xa9/x", "/api/org/\xff/x", "/api/org/\u212acme/x", "/api/org/%2e/globex", "/api/org/./globex",
	"/ap\u0130/org/globex", "/ap%C4%B1/ORG/globex", "/api/\u2126rg/x",
}

// FuzzParseForwardedPath checks the normaliser: it never panics; what it
// accepts is normalised (no //, /./ or /../, no escapes, valid UTF-8) and
// normalising it again changes nothing; it agrees with path.Clean of the
// once-decoded path; and the tenant it reports really is the segment after
// a leading /api/org/, while a path that path.Clean says starts
// /api/org/{x}/ always reports one.
func FuzzParseForwardedPath(f *testing.F) {
	for _, s := range forwardedSeeds {
		f.Add(s)
	}
	other := &directory.Org{ID: "org_zzzz", Slug: "zzzz"}
	f.Fuzz(func(t *testing.T, p string) {
		fp, err := parseForwardedPath(p)
		if err != nil {
			var e *problem.Error
			if !errors.As(err, &e) || e.Status != http.StatusBadRequest || e.Code != "invalid_forwarded_uri" {
				t.Fatalf("%q: error %v is not a 400 invalid_forwarded_uri", p, err)
			}
			return
		}
		c := fp.clean
		if !strings.HasPrefix(c, "/") || !utf8.ValidString(c) || strings.ContainsAny(c, "%\\;?#\x00") {
			t.Fatalf("%q: clean %q is not a decoded absolute path", p, c)
		}
		for _, bad := range []string{"//", "/./", "/../"} {
			if strings.Contains(c, bad) || strings.Contains(fp.literal, "//") && bad == "//" {
				t.Fatalf("%q: clean %q (literal %q) holds %q", p, c, fp.literal, bad)
			}
		}
		if c != "/" && (strings.HasSuffix(c, "/.") || strings.HasSuffix(c, "/..")) {
			t.Fatalf("%q: clean %q ends in a dot segment", p, c)
		}
		again, err := parseForwardedPath(c)
		if err != nil || again.clean != c || again.literal != c {
			t.Fatalf("%q: normalising %q again gave %q, %q, %v", p, c, again.clean, again.literal, err)
		}
		decoded, err := url.PathUnescape(p)
		if err != nil {
			t.Fatalf("%q: accepted, but it does not decode: %v", p, err)
		}
		if ref := path.Clean(decoded); c != ref && c != ref+"/" {
			t.Fatalf("%q: clean %q, path.Clean %q", p, c, ref)
		}
		tenant := fp.tenant()
		if tenant != "" {
			// clean really is /api/org/{tenant}, then the end or a '/'.
			segs := strings.SplitN(c, "/", 5)
			if len(segs) < 4 || segs[0] != "" || !segmentIs(segs[1], "api") || !segmentIs(segs[2], "org") || segs[3] != tenant {
				t.Fatalf("%q: tenant %q, but clean is %q", p, tenant, c)
			}
			if !asciiEqualFold(tenant, other.Slug) && !asciiEqualFold(tenant, other.ID) && fp.allTenantsAre(other) {
				t.Fatalf("%q: tenant %q, yet organization %q passes", p, tenant, other.Slug)
			}
		}
		if ref := strings.ToLower(path.Clean(decoded)); strings.HasPrefix(ref, "/api/org/") && len(ref) > len("/api/org/") && tenant == "" {
			t.Fatalf("%q: path.Clean gives %q but no tenant was found", p, ref)
		}
	})
}

// FuzzVerifyForwarded drives the forwarded-request parser through the
// whole /verify handler, for every source, with bob of acme's API key: the
// answer is always 200, or 400, 403 or 404 in the contract's shape, never a fault;
// and a 200 never lets a path that names another tenant through.
func FuzzVerifyForwarded(f *testing.F) {
	type src struct {
		name, key string
		srv       *Server
	}
	var srcs []src
	for _, name := range forwardedSources {
		h := newHarness(f, nil, withForwardedSource(f, name))
		key, _ := h.addAPIKey("demo/acme", "read")
		srcs = append(srcs, src{name, key, h.srv})
	}
	for i, s := range forwardedSeeds {
		f.Add(uint8(i), s, "GET", "")
		f.Add(uint8(i), "https://api.example.com"+s, "POST", "org=acme")
	}
	f.Add(uint8(2), ";org=acme;role=member/api/org/acme/x", "GET", "")
	f.Add(uint8(2), ";scope=read?org=globex", "DELETE", "")
	f.Add(uint8(0), "http://a?/api/org/globex/x", "GET", "role=viewer&org=acme&org=x")
	f.Fuzz(func(t *testing.T, which uint8, uri, method, query string) {
		s := srcs[int(which)%len(srcs)]
		target := "/verify"
		if query != "" {
			target += "?" + query
		}
		r := &http.Request{Method: "GET", Header: http.Header{"X-Api-Key": {s.key}}, URL: &url.URL{Path: "/verify", RawQuery: query}}
		switch s.name {
		case "ingress-nginx":
			r.Header.Set("X-Original-URL", uri)
			r.Header.Set("X-Original-Method", method)
		case "traefik":
			r.Header["X-Forwarded-Uri"] = []string{uri}
			r.Header["X-Forwarded-Method"] = []string{method}
		case "envoy":
			target = "/verify" + uri
		default:
			r.Header["X-Original-Path"] = []string{uri}
			r.Header["X-Original-Verb"] = []string{method}
		}
		r.RequestURI = target
		w := httptest.NewRecorder()
		s.srv.ServeHTTP(w, r)
		switch w.Code {
		case 200:
		case 400, 403, 404: // 404: in Envoy mode, a target that is not /verify at all
			var body struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			if json.Unmarshal(w.Body.Bytes(), &body) != nil || body.Error.Code == "" || body.Error.Message == "" {
				t.Fatalf("%s %q: %d not in the contract's shape: %s", s.name, uri, w.Code, w.Body)
			}
			return
		default:
			t.Fatalf("%s %q %q: status %d: %s", s.name, uri, query, w.Code, w.Body)
		}
		if w.Header().Get("X-Auth-Org-Slug") != "acme" {
			t.Fatalf("%s %q: 200 for %q", s.name, uri, w.Header().Get("X-Auth-Org-Slug"))
		}
		// The original path, as path.Clean reads it once decoded, must not
		// lead into another tenant's /api/org/{org}/.
		p := uri
		if s.name != "envoy" {
			if i := strings.Index(p, "://"); i >= 0 {
				p = p[i+3:]
				if j := strings.IndexByte(p, '/'); j >= 0 {
					p = p[j:]
				}
			}
		} else if i := strings.IndexByte(p, '/'); i >= 0 && strings.HasPrefix(p, ";") {
			p = p[i:]
		}
		p, _, _ = strings.Cut(p, "?")
		decoded, err := url.PathUnescape(p)
		if err != nil {
			return
		}
		rest, ok := strings.CutPrefix(strings.ToLower(path.Clean(decoded)), "/api/org/")
		if t0, _, _ := strings.Cut(rest, "/"); ok && t0 != "" && t0 != "acme" && t0 != "org_acme" {
			t.Fatalf("%s %q: 200 for a path of tenant %q", s.name, uri, t0)
		}
	})
}
