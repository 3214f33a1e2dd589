package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/internal/domains"
	"github.com/tenantauth/tenantauth/internal/samltest"
)

// TestSSOSAML runs a SAML sign-in end to end, as an administrator sets it
// up: an Organization with a domain proven by a TXT record, this service
// provider's metadata registered at a real IdP (crewjam's samlidp on
// 127.0.0.1), an SSOConnection naming the IdP's metadataURL applied with a
// kubectl-like client and checked Ready by the operator, and a browser
// that follows redirects, keeps cookies and posts the IdP's auto-posting
// form to the ACS. The first sign-in makes the Membership just in time,
// as a real object, with the connection's role mapping; the token passes
// /verify. The exact POST replayed, flow cookie and all, is refused by
// the replay cache on the Kubernetes store, and sign-in goes on working.
func TestSSOSAML(t *testing.T) {
	ctx := context.Background()
	const domain = "saml-corp.test"
	tn := newTenant(t, "samlcorp", tav1.OrganizationSpec{Domains: []tav1.Domain{{Name: domain}}})
	var token string
	eventually(t, "verification token", func() bool {
		o := &tav1.Organization{}
		if k8s.Get(ctx, client.ObjectKey{Namespace: tn.ns, Name: tn.name}, o) != nil {
			return false
		}
		for _, d := range o.Status.Domains {
			if d.Name == domain && d.VerificationToken != "" {
				token = d.VerificationToken
			}
		}
		return token != ""
	})
	dnsSrv.SetTXT(domains.ChallengeName(domain), token)
	eventually(t, "domain verified for the organization in the auth server", func() bool {
		return srv.Directory().DomainVerifiedFor(domain, tn.ns+"/"+tn.name)
	})
	org, _ := srv.Directory().Org(tn.slug)

	// The administrator registers this SP at the IdP first: its metadata
	// needs no IdP.
	idp := samltest.New(t)
	resp, err := http.Get(publicURL + "/orgs/" + tn.slug + "/saml/metadata")
	if err != nil {
		t.Fatal(err)
	}
	spMetadata, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(spMetadata), publicURL+"/orgs/"+org.ID+"/saml/metadata") {
		t.Fatalf("SP metadata: %d %s", resp.StatusCode, spMetadata)
	}
	idp.Register(t, tn.slug, spMetadata)
	const samPassword, valPassword = "sam-idp-pw-5c1e", "val-idp-pw-90ab"
	idp.AddUser(t, "sam", samPassword, "sam@"+domain, []string{"admins"})
	idp.AddUser(t, "val", valPassword, "val@"+domain, []string{"staff"})

	applied := time.Now()
	conn := &tav1.SSOConnection{ObjectMeta: metav1.ObjectMeta{Namespace: tn.ns, Name: "corp-saml"}, Spec: tav1.SSOConnectionSpec{
		Organization: tn.name, Protocol: tav1.ProtocolSAML,
		SAML:         &tav1.SAMLConnection{MetadataURL: idp.Srv.URL + "/metadata"},
		Claims:       tav1.SSOClaims{Groups: "eduPersonAffiliation"},
		DefaultRole:  tav1.RoleViewer,
		RoleMappings: []tav1.RoleMapping{{Group: "admins", Role: tav1.RoleAdmin}},
	}}
	if err := k8s.Create(ctx, conn); err != nil {
		t.Fatal(err)
	}
	// The operator read the metadata and its certificate.
	eventually(t, "connection Ready", func() bool {
		c := &tav1.SSOConnection{}
		if k8s.Get(ctx, client.ObjectKeyFromObject(conn), c) != nil {
			return false
		}
		ready := meta.FindStatusCondition(c.Status.Conditions, tav1.ConditionReady)
		if ready == nil || ready.Status != metav1.ConditionTrue || c.Status.ObservedGeneration != c.Generation {
			return false
		}
		if exp := c.Status.IDPCertificateExpiresAt; exp == nil || !exp.Time.Equal(idp.Cert.NotAfter.Truncate(time.Second)) {
			t.Fatalf("idpCertificateExpiresAt = %v, want %v", exp, idp.Cert.NotAfter)
		}
		return true
	})
	ready := time.Since(applied)
	// Ready is the operator's word; the auth server serves what its
	// informer has seen.
	eventually(t, "connection served by the auth server", func() bool {
		_, ok := srv.Directory().SSOConnection(tn.ns + "/" + conn.Name)
		return ok
	})

	// sam is in the IdP group admins, which roleMappings makes admin.
	sess, captured := samlSignIn(t, `{"email":"sam@`+domain+`"}`, "sam", samPassword)
	firstSignIn := time.Since(applied)
	if sess.User.Email != "sam@"+domain || sess.Organization.ID != org.ID || sess.Organization.Slug != tn.slug || sess.Role != tav1.RoleAdmin {
		t.Fatalf("session: %+v", sess)
	}
	if amr := jwtAMR(t, sess.AccessToken); len(amr) != 1 || amr[0] != "sso" {
		t.Fatalf("amr = %v, want [sso]", amr)
	}
	t.Logf("kubectl apply of the SSOConnection to Ready: %v; to the first signed-in session: %v",
		ready.Round(time.Millisecond), firstSignIn.Round(time.Millisecond))
	assertJITMembership(t, tn, "sam@"+domain, tav1.RoleAdmin, conn.Name)

	v, _ := http.NewRequest(http.MethodGet, publicURL+"/verify", nil)
	v.Header.Set("Authorization", "Bearer "+sess.AccessToken)
	vr, err := http.DefaultClient.Do(v)
	if err != nil {
		t.Fatal(err)
	}
	_ = vr.Body.Close()
	if vr.StatusCode != http.StatusOK || vr.Header.Get("X-Auth-Org-Id") != org.ID || vr.Header.Get("X-Auth-Email") != "sam@"+domain {
		t.Fatalf("/verify: %d %v", vr.StatusCode, vr.Header)
	}
	if r := call(t, http.MethodGet, "/verify", nil); r.status != http.StatusUnauthorized || r.code() == "" {
		t.Fatalf("/verify without a token: %d %s", r.status, r.raw)
	}

	// The same POST again, with the flow cookie it carried: only the
	// replay cache (a record in the Kubernetes store) can refuse it.
	replay := postACS(t, captured)
	if replay.status != http.StatusUnauthorized || replay.code() != "saml_assertion_replayed" || replay.str("error.message") == "" ||
		replay.str("access_token") != "" {
		t.Fatalf("a replayed SAML response: %d %s", replay.status, replay.raw)
	}

	// Fresh sign-ins still work: sam again (the Membership is found, not
	// made twice), and val, whose group maps to nothing: defaultRole.
	if again, _ := samlSignIn(t, `{"organization":"`+tn.slug+`"}`, "sam", samPassword); again.Role != tav1.RoleAdmin || again.AccessToken == sess.AccessToken {
		t.Fatalf("sam's second session: %+v", again)
	}
	val, _ := samlSignIn(t, `{"email":"val@`+domain+`"}`, "val", valPassword)
	if val.Role != tav1.RoleViewer {
		t.Fatalf("val's session: %+v", val)
	}
	assertJITMembership(t, tn, "val@"+domain, tav1.RoleViewer, conn.Name)
	assertLogsHide(t, sess.AccessToken, sess.RefreshToken, val.AccessToken, captured.samlResponse, samPassword, valPassword)

	// Deleting the connection ends SAML sign-in for the organization.
	if err := k8s.Delete(ctx, conn); err != nil {
		t.Fatal(err)
	}
	eventually(t, "connection gone from the auth server", func() bool {
		_, served := srv.Directory().SSOConnection(tn.ns + "/" + conn.Name)
		return !served
	})
	if r := post(t, "/sso/start", map[string]string{"organization": tn.slug}); r.status != http.StatusNotFound || r.code() != "sso_not_configured" {
		t.Fatalf("start after the connection was deleted: %d %s", r.status, r.raw)
	}
}

// samlSession is the part of the session response the SAML test reads.
type samlSession struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	User         struct{ Email string }
	Organization struct{ ID, Slug string }
	Role         string
}

// acsPost is what the browser posted to the ACS: the SAMLResponse and
// the flow cookie it carried.
type acsPost struct {
	samlResponse string
	flowCookie   *http.Cookie
}

// samlSignIn plays a new browser from POST /sso/start (start is its body)
// through the IdP's login form and auto-posting form to the ACS, and
// returns the session and what the browser posted to the ACS.
func samlSignIn(t *testing.T, start, user, password string) (samlSession, acsPost) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	req, _ := http.NewRequest(http.MethodPost, publicURL+"/sso/start", strings.NewReader(start))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	resp, err := browser.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	acsURL, _ := url.Parse(publicURL + "/sso/saml/acs")
	var sent acsPost
	for _, c := range jar.Cookies(acsURL) {
		if c.Name == "tenantauth_sso" {
			sent.flowCookie = c
		}
	}
	if sent.flowCookie == nil {
		t.Fatalf("start set no flow cookie for the ACS (%s, status %d)", resp.Request.URL, resp.StatusCode)
	}
	resp, sent.samlResponse, err = samltest.Login(browser, resp, user, password)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	var s samlSession
	if resp.StatusCode != http.StatusOK || resp.Request.URL.String() != acsURL.String() || json.Unmarshal(raw, &s) != nil || s.AccessToken == "" {
		t.Fatalf("ACS: %d %s", resp.StatusCode, raw)
	}
	return s, sent
}

// postACS posts p again, as someone who captured the whole request would.
func postACS(t *testing.T, p acsPost) reply {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, publicURL+"/sso/saml/acs", strings.NewReader(url.Values{"SAMLResponse": {p.samlResponse}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(p.flowCookie)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, raw: string(raw), cookies: resp.Cookies()}
	if err := json.Unmarshal(raw, &r.body); err != nil || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("ACS answer is not the JSON error shape: %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), raw)
	}
	return r
}

// assertJITMembership checks that a Membership object for email exists in
// the tenant's namespace, made by the connection with role.
func assertJITMembership(t *testing.T, tn *tenant, email, role, connection string) {
	t.Helper()
	var ms tav1.MembershipList
	if err := k8s.List(context.Background(), &ms, client.InNamespace(tn.ns)); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range ms.Items {
		if m.Spec.Email != email {
			continue
		}
		n++
		if m.Spec.Organization != tn.name || m.Spec.Role != role || m.Annotations[tav1.AnnotationSSOConnection] != connection {
			t.Fatalf("JIT Membership for %s: %+v", email, m)
		}
	}
	if n != 1 {
		t.Fatalf("%d Membership objects for %s, want 1: %+v", n, email, ms.Items)
	}
}

// jwtAMR is the amr claim of a JWT, read without checking the signature
// (/verify checks the token).
func jwtAMR(t *testing.T, jwt string) []string {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", jwt)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct{ AMR []string }
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	return claims.AMR
}
