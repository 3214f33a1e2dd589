package kube

import (
	"testing"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/authserver/directory"
	"github.com/tenantauth/tenantauth/internal/trust"
)

// TestSourceSSOJoin: the source serves a verified domain only with the
// operator's claim naming the live Organization by UID, and a connection
// that names a client secret only with the operator's record of it.
// Status, tenant Secrets and stale records count for nothing.
func TestSourceSSOJoin(t *testing.T) {
	const sys = "tenantauth-system"
	dir := directory.NewDirectory()
	s := &Source{Dir: dir, Log: logr.Discard(), SystemNamespace: sys}
	s.init()
	putOrg, _ := joined(s, s.orgs, s.syncOrg)
	putConn, deleteConn := joined(s, s.sso.conns, s.syncSSO)

	org := &tav1.Organization{ObjectMeta: metav1.ObjectMeta{Namespace: "acme", Name: "acme", UID: "org-uid"}}
	// status says verified: ignored.
	org.Status.Domains = []tav1.DomainStatus{{Name: "planted.test", Verified: true}}
	putOrg(org)
	dir.PutOrg(&directory.Org{Ref: "acme/acme", ID: "org_acme", Slug: "acme"}) // served, as its record would make it

	claim := func(ns, domain string, owner trust.Owner) {
		c := trust.New(ns, trust.DomainClaimName(domain), trust.ComponentDomainClaim, owner)
		c.Annotations[trust.AnnotationDomain] = domain
		s.putSecret(c)
	}
	claim(sys, "acme.test", trust.OwnerOf(org))
	claim(sys, "stale.test", trust.Owner{Namespace: "acme", Name: "acme", UID: "old-uid"})
	claim("acme", "tenant.test", trust.OwnerOf(org)) // a tenant's own "claim"
	for domain, want := range map[string]bool{"acme.test": true, "stale.test": false, "tenant.test": false, "planted.test": false} {
		if got := dir.DomainVerifiedFor(domain, "acme/acme"); got != want {
			t.Errorf("domain %s verified = %v, want %v", domain, got, want)
		}
	}

	conn := &tav1.SSOConnection{ObjectMeta: metav1.ObjectMeta{Namespace: "acme", Name: "idp", UID: "conn-uid"},
		Spec: tav1.SSOConnectionSpec{Organization: "acme", Protocol: tav1.ProtocolOIDC, OIDC: &tav1.OIDCConnection{
			Issuer: "https://idp.example.com", ClientID: "c", ClientSecretRef: &tav1.SecretKeyRef{Name: "x", Key: "y"}}}}
	putConn(conn)
	served := func() (*directory.SSOConnection, bool) { return dir.SSOConnection("acme/idp") }
	if _, ok := served(); ok {
		t.Fatal("served without the operator's client-secret record")
	}
	record := func(ns string, owner trust.Owner, value string) {
		r := trust.New(ns, trust.SSOClientSecretName(owner.UID), trust.ComponentSSOClientSecret, owner)
		r.Data = map[string][]byte{trust.SSOClientSecretDataKey: []byte(value)}
		s.putSecret(r)
	}
	record("acme", trust.OwnerOf(conn), "tenant-planted")                                      // not the system namespace
	record(sys, trust.Owner{Namespace: "acme", Name: "idp", UID: "other-uid"}, "someone-else") // another object's
	if _, ok := served(); ok {
		t.Fatal("served with a planted or foreign record")
	}
	record(sys, trust.OwnerOf(conn), "the-secret")
	c, ok := served()
	if !ok || c.ClientSecret != "the-secret" || c.OrgRef != "acme/acme" || c.DefaultRole != "member" {
		t.Fatalf("served = %v %+v", ok, c)
	}
	if got := dir.SSOConnectionsOf("acme/acme"); len(got) != 1 {
		t.Fatalf("connections of acme: %v", got)
	}
	deleteConn(conn)
	if _, ok := served(); ok {
		t.Fatal("still served after delete")
	}
}
