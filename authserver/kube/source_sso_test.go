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

// TestSourceSSOReadiness: the source passes on a connection's Ready=False
// only while it is about the current spec, and every status update
// re-joins it. Ready=True, no condition or a verdict on an older
// generation serve the connection as usable: status is tenant-writable,
// so it may turn sign-ins away (its own), never be needed to let one in.
func TestSourceSSOReadiness(t *testing.T) {
	dir := directory.NewDirectory()
	s := &Source{Dir: dir, Log: logr.Discard(), SystemNamespace: "tenantauth-system"}
	s.init()
	putOrg, _ := joined(s, s.orgs, s.syncOrg)
	putConn, _ := joined(s, s.sso.conns, s.syncSSO)
	putOrg(&tav1.Organization{ObjectMeta: metav1.ObjectMeta{Namespace: "acme", Name: "acme", UID: "org-uid"}})
	dir.PutOrg(&directory.Org{Ref: "acme/acme", ID: "org_acme", Slug: "acme"})

	ready := func(status metav1.ConditionStatus, reason string, observed int64) []metav1.Condition {
		return []metav1.Condition{{Type: tav1.ConditionReady, Status: status, Reason: reason, ObservedGeneration: observed}}
	}
	tests := []struct {
		name       string
		conditions []metav1.Condition
		want       string
	}{
		{"no condition yet", nil, ""},
		{"ready", ready(metav1.ConditionTrue, tav1.ReasonReady, 3), ""},
		{"certificate expiring is still ready", ready(metav1.ConditionTrue, tav1.ReasonCertificateExpiring, 3), ""},
		{"discovery failed", ready(metav1.ConditionFalse, tav1.ReasonDiscoveryFailed, 3), tav1.ReasonDiscoveryFailed},
		{"metadata invalid", ready(metav1.ConditionFalse, tav1.ReasonMetadataInvalid, 3), tav1.ReasonMetadataInvalid},
		{"a verdict on the spec before the last edit", ready(metav1.ConditionFalse, tav1.ReasonDiscoveryFailed, 2), ""},
		{"unknown", ready(metav1.ConditionUnknown, "Reconciling", 3), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := &tav1.SSOConnection{ObjectMeta: metav1.ObjectMeta{Namespace: "acme", Name: "idp", UID: "conn-uid", Generation: 3},
				Spec: tav1.SSOConnectionSpec{Organization: "acme", Protocol: tav1.ProtocolOIDC,
					OIDC: &tav1.OIDCConnection{Issuer: "https://idp.example.com", ClientID: "c"}},
				Status: tav1.SSOConnectionStatus{Conditions: tt.conditions}}
			putConn(conn) // an update of the same object, as the informer sends it
			c, ok := dir.SSOConnection("acme/idp")
			if !ok {
				t.Fatal("not served: readiness never keeps a connection out of the directory")
			}
			if c.NotReady != tt.want {
				t.Fatalf("NotReady = %q, want %q", c.NotReady, tt.want)
			}
		})
	}
}
