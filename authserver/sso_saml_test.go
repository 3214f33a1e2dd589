package authserver

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tenantauth/tenantauth/authserver/directory"
	"github.com/tenantauth/tenantauth/internal/samltest"
)

// TestSSOSAML runs a SAML sign-in end to end against a real IdP
// (crewjam/saml's samlidp on 127.0.0.1): the administrator registers the
// organization's SP metadata at the IdP, the browser starts at
// /sso/start, signs in at the IdP and posts its signed response to the
// ACS. Then the attacks: the response posted again, posted from another
// browser, answering another organization's request, and tampered.
func TestSSOSAML(t *testing.T) {
	h := newSSOHarness(t)
	idp := samltest.New(t)
	h.dir.PutSSOConnection(&directory.SSOConnection{Ref: "demo/globex-saml", UID: "uid-globex-saml", OrgRef: "demo/globex",
		Protocol: "saml", SAMLMetadataXML: string(idp.Metadata(t)), DefaultRole: "member"})
	b := h.browser()
	get := func(path string) (int, []byte) {
		resp, err := b.c.Get("http://auth.test" + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}
	status, md := get("/orgs/globex/saml/metadata")
	if status != 200 || !strings.Contains(string(md), "http://auth.test/orgs/org_globex/saml/metadata") ||
		!strings.Contains(string(md), "http://auth.test/sso/saml/acs") {
		t.Fatalf("SP metadata: %d %s", status, md)
	}
	idp.Register(t, "globex", md)
	idp.AddUser(t, "gina", "gina-pw", "gina@globex.test", nil)

	start := func(b *browser) string {
		t.Helper()
		body, _ := json.Marshal(map[string]string{"organization": "globex"})
		req, _ := http.NewRequest(http.MethodPost, "http://auth.test/sso/start", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		status, out := decodeResp(t, do(t, b, req))
		if status != 200 || out["redirect_url"] == nil {
			t.Fatalf("start: %d %v", status, out)
		}
		return out["redirect_url"].(string)
	}
	post := func(b *browser, samlResponse string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://auth.test/sso/saml/acs",
			strings.NewReader(url.Values{"SAMLResponse": {samlResponse}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return decodeResp(t, do(t, b, req))
	}

	resp := idp.SignIn(t, start(b), "gina", "gina-pw")
	status, sess := post(b, resp)
	if status != 200 || sess["access_token"] == nil {
		t.Fatalf("ACS: %d %v", status, sess)
	}
	if _, ok := h.dir.MemberAnyState("gina@globex.test", "demo/globex"); !ok {
		t.Fatal("no just-in-time Membership for gina")
	}
	if r := h.do("GET", "/verify?org=globex", nil, "Authorization", "Bearer "+sess["access_token"].(string)); r.status != 200 {
		t.Fatalf("/verify with the SAML session's token: %d %s", r.status, r.raw)
	}

	// The same response again, with a fresh flow in the same browser: the
	// request it answers is not this flow's, and its assertion was spent.
	start(b)
	if status, out := post(b, resp); status != 401 || errCode(out) != "saml_response_invalid" {
		t.Fatalf("a replayed response: %d %v", status, out)
	}
	// Posted from a browser that started nothing.
	if status, out := post(h.browser(), resp); status != 400 || errCode(out) != "sso_state_invalid" {
		t.Fatalf("a response without a flow: %d %v", status, out)
	}
	// A fresh, genuine response with one byte of its assertion changed.
	b2 := h.browser()
	fresh := idp.SignIn(t, start(b2), "gina", "gina-pw")
	raw, _ := samltest.Decode(fresh)
	tampered := samltest.Encode(strings.Replace(raw, "gina@globex.test", "gino@globex.test", 1))
	if status, out := post(b2, tampered); status != 401 || errCode(out) != "saml_response_invalid" {
		t.Fatalf("a tampered response: %d %v", status, out)
	}
	if _, ok := h.dir.MemberAnyState("gino@globex.test", "demo/globex"); ok {
		t.Fatal("a tampered response made a Membership")
	}
}

func do(t testing.TB, b *browser, req *http.Request) *http.Response {
	t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// BenchmarkSSOSAMLSignIn is a whole SAML sign-in per iteration, as a
// browser makes it: POST /sso/start (an AuthnRequest for a connection
// whose metadata is at its metadataURL), the IdP's sign-on endpoint, and
// its signed response posted to POST /sso/saml/acs (signature, audience,
// InResponseTo, the assertion recorded in the replay cache, session made
// on the memory store). The IdP, crewjam's samlidp, runs in the same
// process and signs a response per sign-in; the browser keeps its IdP
// session, so the IdP's bcrypt password check runs once, not per
// iteration (the OIDC benchmark's provider checks a plain password).
// samlidp gives every assertion a random ID, so the replay cache refuses
// none (a repeated one would answer 401 and stop the benchmark). Compare BenchmarkSSOSignIn (OIDC) and BenchmarkLogin (password).
func BenchmarkSSOSAMLSignIn(b *testing.B) {
	h := newSSOHarness(b, func(c *Config) { c.RateLimitPerMinute = -1 })
	idp := samltest.New(b)
	h.dir.PutSSOConnection(&directory.SSOConnection{Ref: "demo/globex-saml", UID: "uid-globex-saml", OrgRef: "demo/globex",
		Protocol: "saml", SAMLMetadataURL: idp.Srv.URL + "/metadata", DefaultRole: "member"})
	r := h.do(http.MethodGet, "/orgs/globex/saml/metadata", nil)
	if r.status != http.StatusOK {
		b.Fatalf("SP metadata: %d", r.status)
	}
	idp.Register(b, "globex", []byte(r.raw))
	idp.AddUser(b, "gina", "gina-pw", "gina@globex.test", nil)
	h.addMember("demo/globex", "gina@globex.test", "member", "")
	br := h.browser()
	for b.Loop() {
		if status, body := br.samlSignIn("globex", "gina", "gina-pw"); status != http.StatusOK || body["access_token"] == nil {
			b.Fatalf("sign-in: %d %v", status, body)
		}
	}
}

// samlSignIn runs the browser flow from POST /sso/start for org through
// the IdP's forms (as user, unless the browser's IdP session signs in)
// to the ACS's answer.
func (b *browser) samlSignIn(org, user, password string) (int, map[string]any) {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://auth.test/sso/start", strings.NewReader(`{"organization":"`+org+`"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/html")
	resp := do(b.t, b, req)
	if resp.Request.URL.Host == "auth.test" {
		return decodeResp(b.t, resp) // start itself answered
	}
	resp, _, err := samltest.Login(b.c, resp, user, password)
	if err != nil {
		b.t.Fatal(err)
	}
	return decodeResp(b.t, resp)
}
