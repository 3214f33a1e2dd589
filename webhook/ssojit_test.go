package webhook

import (
	"fmt"
	"testing"

	tenantauthv1alpha1 "github.com/tenantauth/tenantauth/api/v1alpha1"
)

// TestSSOJITMembership plays the auth server creating Memberships at a
// first SSO sign-in: only with a role of the annotated connection (never
// owner), of that connection's organization, for an email on a domain
// verified for it by the operator's claim.
func TestSSOJITMembership(t *testing.T) {
	tm := newTeam(t)
	other := newTeam(t)
	o := &tenantauthv1alpha1.Organization{}
	o.Namespace, o.Name = tm.ns, tm.org
	verified := tm.ns + "-corp.test"
	claimDomain(t, o, verified)
	mustCreate(t, admin, oidcConnection(tm.ns, "idp", tm.org, mapGroup("admins", "admin"), func(c *tenantauthv1alpha1.SSOConnection) {
		c.Spec.DefaultRole = "viewer"
	}))
	// A connection of another organization in the same namespace.
	mustCreate(t, admin, org(tm.ns, "second", nil...))
	mustCreate(t, admin, oidcConnection(tm.ns, "second-idp", "second"))
	srv := as(t, authServerUser, "system:serviceaccounts")
	jit := func(name, conn, email, role string) *tenantauthv1alpha1.Membership {
		m := membership(tm.ns, name, tm.org, email, role)
		m.Annotations = map[string]string{tenantauthv1alpha1.AnnotationSSOConnection: conn}
		return m
	}
	tests := []struct {
		name string
		m    *tenantauthv1alpha1.Membership
		want outcome
	}{
		{"default role, verified domain", jit("a", "idp", "a@"+verified, "viewer"), allowed},
		{"mapped role", jit("b", "idp", "b@"+verified, "admin"), allowed},
		{"owner", jit("c", "idp", "c@"+verified, "owner"), forbidden("never owner")},
		{"a role the connection does not give", jit("d", "idp", "d@"+verified, "manager"), forbidden(`not "manager"`)},
		{"unverified domain", jit("e", "idp", "e@"+tm.ns+"-other.test", "viewer"), forbidden("verified for organization")},
		{"a domain verified for nobody but listed nowhere", jit("f", "idp", "f@example.com", "viewer"), forbidden("verified for organization")},
		{"another organization's connection", jit("g", "second-idp", "g@"+verified, "member"), forbidden("SSOConnection of organization")},
		{"no such connection", jit("h", "missing", "h@"+verified, "viewer"), forbidden("SSOConnection of organization")},
		{"disabled", func() *tenantauthv1alpha1.Membership {
			m := jit("i", "idp", "i@"+verified, "viewer")
			m.Spec.Disabled = true
			return m
		}(), forbidden("enabled")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check(t, srv.Create(testCtx, tt.m), tt.want)
		})
	}
	t.Run("another organization's domain claim does not count", func(t *testing.T) {
		oo := &tenantauthv1alpha1.Organization{}
		oo.Namespace, oo.Name = other.ns, other.org
		theirs := other.ns + "-corp.test"
		claimDomain(t, oo, theirs)
		check(t, srv.Create(testCtx, jit("j", "idp", "j@"+theirs, "viewer")), forbidden("verified for organization"))
	})
	t.Run("the annotation gives people nothing", func(t *testing.T) {
		check(t, tm.as(t, "member").Create(testCtx, jit("k", "idp", fmt.Sprintf("k@%s", verified), "viewer")), forbidden(`needs role "admin"`))
	})
}
