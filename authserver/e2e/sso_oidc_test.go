package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/internal/oidctest"
	"github.com/tenantauth/tenantauth/internal/trust"
)

// TestSSOOIDC runs an OIDC sign-in end to end, as an administrator sets it
// up: an Organization with a domain proven by a TXT record (a real DNS
// server on 127.0.0.1), a client Secret and an SSOConnection applied with
// a kubectl-like client, a real OpenID Provider, and a browser that
// follows redirects and keeps cookies. The first sign-in makes the
// Membership just in time, as a real object; the token passes /verify.
func TestSSOOIDC(t *testing.T) {
	ctx := context.Background()
	const domain = "sso-corp.test"
	const clientSecret = "e2e-oidc-client-secret-7f3a"
	tn := newTenant(t, "ssocorp", tav1.OrganizationSpec{Domains: []tav1.Domain{{Name: domain}}})
	tn.verifyDomain(t, domain)

	op := oidctest.Start(t, oidctest.Client{ID: "tenantauth-e2e", Secret: clientSecret, RedirectURI: publicURL + "/sso/oidc/callback"})
	dana := oidctest.User{Email: "dana@" + domain, Password: "dana-idp-pw"} // email_verified false: the domain vouches
	op.AddUser(dana)

	applied := time.Now()
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: tn.ns, Name: "idp-client"},
		StringData: map[string]string{"client-secret": clientSecret}}
	conn := &tav1.SSOConnection{ObjectMeta: metav1.ObjectMeta{Namespace: tn.ns, Name: "corp-idp"}, Spec: tav1.SSOConnectionSpec{
		Organization: tn.name, Protocol: tav1.ProtocolOIDC,
		OIDC: &tav1.OIDCConnection{Issuer: op.Issuer, ClientID: "tenantauth-e2e",
			ClientSecretRef: &tav1.SecretKeyRef{Name: "idp-client", Key: "client-secret"}},
	}}
	for _, o := range []client.Object{sec, conn} {
		if err := k8s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	// The operator copies the secret into its record in the system
	// namespace; the auth server serves the connection only with it.
	eventually(t, "connection served with its client secret", func() bool {
		c, ok := srv.Directory().SSOConnection(tn.ns + "/corp-idp")
		return ok && c.ClientSecret == clientSecret
	})
	rec := &corev1.Secret{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: serverNamespace, Name: trust.SSOClientSecretName(conn.UID)}, rec); err != nil {
		t.Fatalf("client-secret record: %v", err)
	}

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	req, _ := http.NewRequest(http.MethodPost, publicURL+"/sso/start", strings.NewReader(`{"email":"dana@`+domain+`"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	resp, err := browser.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp, err = oidctest.Login(browser, resp, dana.Email, dana.Password)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	firstSignIn := time.Since(applied)
	var body struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		User         struct{ Email string }
		Organization struct{ ID, Slug string }
		Role         string
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &body) != nil || body.AccessToken == "" {
		t.Fatalf("callback: %d %s", resp.StatusCode, raw)
	}
	if body.User.Email != dana.Email || body.Organization.Slug != tn.slug || body.Role != "member" {
		t.Fatalf("session: %s", raw)
	}
	t.Logf("kubectl apply of the SSOConnection to the first signed-in session: %v", firstSignIn.Round(time.Millisecond))

	var ms tav1.MembershipList
	if err := k8s.List(ctx, &ms, client.InNamespace(tn.ns)); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range ms.Items {
		if m.Spec.Email == dana.Email {
			found = m.Spec.Role == "member" && m.Annotations[tav1.AnnotationSSOConnection] == "corp-idp"
		}
	}
	if !found {
		t.Fatalf("no JIT Membership object for %s: %+v", dana.Email, ms.Items)
	}

	v, _ := http.NewRequest(http.MethodGet, publicURL+"/verify", nil)
	v.Header.Set("Authorization", "Bearer "+body.AccessToken)
	vr, err := http.DefaultClient.Do(v)
	if err != nil {
		t.Fatal(err)
	}
	_ = vr.Body.Close()
	if vr.StatusCode != http.StatusOK || vr.Header.Get("X-Auth-Org-Id") != body.Organization.ID || vr.Header.Get("X-Auth-Email") != dana.Email {
		t.Fatalf("/verify: %d %v", vr.StatusCode, vr.Header)
	}
	assertLogsHide(t, clientSecret, body.AccessToken, body.RefreshToken)

	// Deleting the connection removes the record and the connection.
	if err := k8s.Delete(ctx, conn); err != nil {
		t.Fatal(err)
	}
	eventually(t, "record and connection gone", func() bool {
		_, served := srv.Directory().SSOConnection(tn.ns + "/corp-idp")
		err := k8s.Get(ctx, client.ObjectKeyFromObject(rec), &corev1.Secret{})
		return !served && err != nil
	})
}

// TestSSOConnectionNotReady: the operator finds a connection's provider
// down and says so on Ready; the auth server, through its informer, turns
// /sso/start away with 503 sso_unavailable, without contacting the
// provider (the message is the not-ready one, not that of a failed
// discovery). Editing the connection to a working provider lets start
// redirect again (the old verdict is about an older generation, and the
// operator re-reads the provider on the edit; TestSourceSSOReadiness
// covers the generation on its own).
func TestSSOConnectionNotReady(t *testing.T) {
	ctx := context.Background()
	tn := newTenant(t, "ssodown", tav1.OrganizationSpec{})
	down := oidctest.Start(t, oidctest.Client{ID: "tenantauth-e2e", RedirectURI: publicURL + "/sso/oidc/callback"})
	down.Stop()
	conn := &tav1.SSOConnection{ObjectMeta: metav1.ObjectMeta{Namespace: tn.ns, Name: "idp"}, Spec: tav1.SSOConnectionSpec{
		Organization: tn.name, Protocol: tav1.ProtocolOIDC, OIDC: &tav1.OIDCConnection{Issuer: down.Issuer, ClientID: "tenantauth-e2e"},
	}}
	if err := k8s.Create(ctx, conn); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the operator's DiscoveryFailed in the auth server", func() bool {
		c, ok := srv.Directory().SSOConnection(tn.ns + "/idp")
		return ok && c.NotReady == tav1.ReasonDiscoveryFailed
	})
	r := post(t, "/sso/start", map[string]string{"organization": tn.slug})
	if r.status != http.StatusServiceUnavailable || r.code() != "sso_unavailable" || !strings.Contains(r.str("error.message"), "not ready") {
		t.Fatalf("start on a connection reported not ready: %d %s", r.status, r.raw)
	}

	up := oidctest.Start(t, oidctest.Client{ID: "tenantauth-e2e", RedirectURI: publicURL + "/sso/oidc/callback"})
	// The operator writes the connection's status meanwhile.
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(conn), conn); err != nil {
			return err
		}
		conn.Spec.OIDC.Issuer = up.Issuer
		return k8s.Update(ctx, conn)
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "start redirecting to the fixed provider", func() bool {
		r = post(t, "/sso/start", map[string]string{"organization": tn.slug})
		return r.status == http.StatusOK && strings.HasPrefix(r.str("redirect_url"), up.Issuer+"/")
	})
}
