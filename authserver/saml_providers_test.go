package authserver

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantauth/tenantauth/authserver/directory"
	"github.com/tenantauth/tenantauth/internal/samltest"
)

// The SAML service providers' cache (saml_providers.go), played against
// a real samlidp on 127.0.0.1 whose metadata GETs are counted.

// newSAMLCacheHarness serves globex's SAML connection from the IdP's
// metadataURL, with the SP registered at the IdP and a user there.
func newSAMLCacheHarness(t *testing.T) (*ssoHarness, *samltest.IdP, *directory.SSOConnection) {
	t.Helper()
	h := newSSOHarness(t)
	idp := samltest.New(t)
	conn := &directory.SSOConnection{Ref: "demo/globex-saml", UID: "uid-globex-saml", OrgRef: "demo/globex",
		Protocol: "saml", SAMLMetadataURL: idp.Srv.URL + "/metadata", DefaultRole: "member"}
	h.dir.PutSSOConnection(conn)
	r := h.do(http.MethodGet, "/orgs/globex/saml/metadata", nil)
	if r.status != http.StatusOK {
		t.Fatalf("SP metadata: %d", r.status)
	}
	idp.Register(t, "globex", []byte(r.raw))
	idp.AddUser(t, "gina", "gina-pw", "gina@globex.test", nil)
	return h, idp, conn
}

// samlStart is POST /sso/start for org; it fails the test unless the
// answer is want (and, for 200, a redirect to prefix).
func samlStart(t *testing.T, h *ssoHarness, org string, want int, prefix string) response {
	t.Helper()
	r := h.do(http.MethodPost, "/sso/start", map[string]string{"organization": org})
	if r.status != want || (want == http.StatusOK && !strings.HasPrefix(r.str("redirect_url"), prefix+"/sso?SAMLRequest=")) {
		t.Fatalf("start %s: %d %s, want %d", org, r.status, r.raw, want)
	}
	return r
}

func jsonRequest(method, u, body string) *http.Request {
	req, _ := http.NewRequest(method, u, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return req
}

func wantGETs(t *testing.T, idp *samltest.IdP, want int64, when string) {
	t.Helper()
	if got := idp.MetadataGETs(); got != want {
		t.Fatalf("%s: the IdP's metadata was fetched %d times, want %d", when, got, want)
	}
}

func TestSAMLProvidersKeptPerConnection(t *testing.T) {
	h, idp, conn := newSAMLCacheHarness(t)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := h.do(http.MethodPost, "/sso/start", map[string]string{"organization": "globex"}); r.status != http.StatusOK {
				t.Errorf("start: %d %s", r.status, r.raw)
			}
		}()
	}
	wg.Wait()
	wantGETs(t, idp, 1, "8 starts at once")
	if status, body := h.browser().samlSignIn("globex", "gina", "gina-pw"); status != http.StatusOK || body["access_token"] == nil {
		t.Fatalf("sign-in: %d %v", status, body)
	}
	wantGETs(t, idp, 1, "a whole sign-in after")

	// Each change of the connection builds its SP again; an unchanged
	// copy of it (an informer resync) does not.
	same := *conn
	h.dir.PutSSOConnection(&same)
	samlStart(t, h, "globex", http.StatusOK, idp.Srv.URL)
	wantGETs(t, idp, 1, "the same connection again")
	changes := []struct {
		name   string
		change func(c *directory.SSOConnection)
	}{
		{"claims.groups", func(c *directory.SSOConnection) { c.ClaimGroups = "eduPersonAffiliation" }},
		{"claims.email", func(c *directory.SSOConnection) { c.ClaimEmail = "mail" }},
		{"re-made with a new UID", func(c *directory.SSOConnection) { c.UID = "uid-globex-saml-2" }},
	}
	for i, tc := range changes {
		next := *conn
		tc.change(&next)
		h.dir.PutSSOConnection(&next)
		conn = &next
		samlStart(t, h, "globex", http.StatusOK, idp.Srv.URL)
		wantGETs(t, idp, int64(2+i), tc.name)
	}
	// Another IdP: its metadata, its sign-on URL, and the first IdP's
	// never again.
	other := samltest.New(t)
	moved := *conn
	moved.SAMLMetadataURL = other.Srv.URL + "/metadata"
	h.dir.PutSSOConnection(&moved)
	samlStart(t, h, "globex", http.StatusOK, other.Srv.URL)
	samlStart(t, h, "globex", http.StatusOK, other.Srv.URL)
	wantGETs(t, other, 1, "the new IdP")
	wantGETs(t, idp, int64(1+len(changes)), "the old IdP")
	// Inline metadata is parsed once and never fetched.
	inline := moved
	inline.SAMLMetadataURL, inline.SAMLMetadataXML = "", string(idp.Metadata(t))
	h.dir.PutSSOConnection(&inline)
	before := idp.MetadataGETs()
	for range 3 {
		samlStart(t, h, "globex", http.StatusOK, idp.Srv.URL)
	}
	wantGETs(t, idp, before, "inline metadata")
	wantGETs(t, other, 1, "the IdP no longer named")
}

func TestSAMLProvidersRefetchAfterTTL(t *testing.T) {
	h, idp, _ := newSAMLCacheHarness(t)
	samlStart(t, h, "globex", http.StatusOK, idp.Srv.URL)
	h.clock.Add(samlMetadataTTL - time.Second)
	samlStart(t, h, "globex", http.StatusOK, idp.Srv.URL)
	wantGETs(t, idp, 1, "within the TTL")
	h.clock.Add(time.Second)
	samlStart(t, h, "globex", http.StatusOK, idp.Srv.URL)
	wantGETs(t, idp, 2, "at the TTL")
	fetched := h.clock.Now()

	// The metadata endpoint goes down: the metadata fetched before serves
	// on, fetched again at most once a minute, for samlMetadataMaxStale.
	idp.FailMetadata(http.StatusServiceUnavailable)
	h.clock.Add(samlMetadataTTL)
	samlStart(t, h, "globex", http.StatusOK, idp.Srv.URL)
	samlStart(t, h, "globex", http.StatusOK, idp.Srv.URL)
	wantGETs(t, idp, 3, "down, past the TTL")
	h.clock.Add(samlMetadataRetry)
	samlStart(t, h, "globex", http.StatusOK, idp.Srv.URL)
	wantGETs(t, idp, 4, "down, a minute later")
	h.clock.Add(fetched.Add(samlMetadataTTL + samlMetadataMaxStale).Sub(h.clock.Now()))
	r := samlStart(t, h, "globex", http.StatusServiceUnavailable, "")
	if r.errCode() != "sso_unavailable" || r.header.Get("Retry-After") == "" || len(r.cookies) != 0 {
		t.Fatalf("down past the stale bound: %d %s %v", r.status, r.raw, r.header)
	}
	wantGETs(t, idp, 5, "down past the stale bound")
	idp.FailMetadata(0)
	samlStart(t, h, "globex", http.StatusServiceUnavailable, "")
	wantGETs(t, idp, 5, "up again, within the failure's wait")
	h.clock.Add(samlMetadataFailWait)
	samlStart(t, h, "globex", http.StatusOK, idp.Srv.URL)
	wantGETs(t, idp, 6, "up again")
}

// TestSAMLProvidersFailClosed: with nothing built for the connection as
// it is, a metadata fetch or parse that fails answers 503, at start and
// at the ACS, and makes no session.
func TestSAMLProvidersFailClosed(t *testing.T) {
	h, idp, conn := newSAMLCacheHarness(t)
	idp.FailMetadata(http.StatusInternalServerError)
	for range 2 {
		r := samlStart(t, h, "globex", http.StatusServiceUnavailable, "")
		if r.errCode() != "sso_unavailable" || len(r.cookies) != 0 {
			t.Fatalf("start, metadata down: %d %s %v", r.status, r.raw, r.cookies)
		}
	}
	wantGETs(t, idp, 1, "a failure is the answer for a few seconds, without a fetch per request")
	h.clock.Add(samlMetadataFailWait)
	samlStart(t, h, "globex", http.StatusServiceUnavailable, "")
	wantGETs(t, idp, 2, "a failure is not kept past its wait")
	idp.FailMetadata(0)
	h.clock.Add(samlMetadataFailWait)

	// A flow begun, the IdP's genuine response, and then the connection
	// changes and its metadata cannot be fetched: the ACS must not use
	// the SP of the connection as it was.
	b := h.browser()
	resp := do(t, b, jsonRequest(http.MethodPost, "http://auth.test/sso/start", `{"organization":"globex"}`))
	status, out := decodeResp(t, resp)
	if status != http.StatusOK {
		t.Fatalf("start: %d %v", status, out)
	}
	samlResponse := idp.SignIn(t, out["redirect_url"].(string), "gina", "gina-pw")
	changed := *conn
	changed.ClaimGroups = "eduPersonAffiliation"
	h.dir.PutSSOConnection(&changed)
	idp.FailMetadata(http.StatusBadGateway)
	resp, err := b.c.PostForm("http://auth.test/sso/saml/acs", url.Values{"SAMLResponse": {samlResponse}})
	if err != nil {
		t.Fatal(err)
	}
	if status, body := decodeResp(t, resp); status != http.StatusServiceUnavailable || errCode(body) != "sso_unavailable" || body["access_token"] != nil {
		t.Fatalf("ACS, metadata down: %d %v", status, body)
	}
	if _, ok := h.dir.MemberAnyState("gina@globex.test", "demo/globex"); ok {
		t.Fatal("a Membership was made without the IdP's metadata")
	}

	// Metadata that does not parse answers 503 too.
	broken := changed
	broken.SAMLMetadataURL, broken.SAMLMetadataXML = "", "<EntityDescriptor/>"
	h.dir.PutSSOConnection(&broken)
	if r := samlStart(t, h, "globex", http.StatusServiceUnavailable, ""); r.errCode() != "sso_unavailable" {
		t.Fatalf("start, metadata unusable: %s", r.raw)
	}
}

// TestSAMLProvidersRotatedCertificate: the IdP rotates its signing
// certificate; the next response it signs does not verify with the kept
// metadata, so the ACS fetches it again and signs the user in. A second
// rotation within a minute is not fetched for; a minute later it is.
func TestSAMLProvidersRotatedCertificate(t *testing.T) {
	h, idp, _ := newSAMLCacheHarness(t)
	signIn := func(want int, code string) {
		t.Helper()
		status, body := h.browser().samlSignIn("globex", "gina", "gina-pw")
		if status != want || (code != "" && errCode(body) != code) || (want == http.StatusOK) != (body["access_token"] != nil) {
			t.Fatalf("sign-in: %d %v, want %d %s", status, body, want, code)
		}
	}
	signIn(http.StatusOK, "")
	wantGETs(t, idp, 1, "first sign-in")
	idp.Rotate(t)
	signIn(http.StatusOK, "")
	wantGETs(t, idp, 2, "sign-in after a rotation")
	idp.Rotate(t)
	signIn(http.StatusUnauthorized, "saml_response_invalid")
	wantGETs(t, idp, 2, "a second rotation within a minute")
	h.clock.Add(samlMetadataRetry)
	signIn(http.StatusOK, "")
	wantGETs(t, idp, 3, "a minute later")
}

// TestSAMLProvidersBounded: entries of connections gone or changed are
// dropped, and at the bound the least recently used.
func TestSAMLProvidersBounded(t *testing.T) {
	h, idp, _ := newSAMLCacheHarness(t)
	h.srv.samlSPs.max = 2
	md := string(idp.Metadata(t)) // one GET
	for _, org := range []string{"initech", "umbrella", "hooli"} {
		h.addOrg("demo/"+org, "org_"+org, org, org, "ES256")
		h.dir.PutSSOConnection(&directory.SSOConnection{Ref: "demo/" + org + "-saml", UID: "uid-" + org, OrgRef: "demo/" + org,
			Protocol: "saml", SAMLMetadataXML: md, DefaultRole: "member"})
	}
	samlStart(t, h, "globex", http.StatusOK, idp.Srv.URL)
	samlStart(t, h, "initech", http.StatusOK, idp.Srv.URL)
	samlStart(t, h, "globex", http.StatusOK, idp.Srv.URL) // initech is now the least recently used
	samlStart(t, h, "umbrella", http.StatusOK, idp.Srv.URL)
	if n := h.srv.samlSPs.len(); n != 2 {
		t.Fatalf("%d entries, want 2", n)
	}
	samlStart(t, h, "globex", http.StatusOK, idp.Srv.URL)
	wantGETs(t, idp, 2, "globex kept, initech dropped")
	h.dir.DeleteSSOConnection("demo/globex-saml")
	samlStart(t, h, "hooli", http.StatusOK, idp.Srv.URL)
	h.srv.samlSPs.mu.Lock()
	_, globex := h.srv.samlSPs.entries["demo/globex-saml"]
	_, umbrella := h.srv.samlSPs.entries["demo/umbrella-saml"]
	h.srv.samlSPs.mu.Unlock()
	if globex || !umbrella {
		t.Fatalf("after globex's connection was deleted: globex kept %v, umbrella kept %v", globex, umbrella)
	}
}
