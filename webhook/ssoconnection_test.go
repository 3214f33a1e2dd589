package webhook

import (
	"fmt"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	tenantauthv1alpha1 "github.com/tenantauth/tenantauth/api/v1alpha1"
)

func oidcConnection(ns, name, orgName string, mutate ...func(*tenantauthv1alpha1.SSOConnection)) *tenantauthv1alpha1.SSOConnection {
	c := &tenantauthv1alpha1.SSOConnection{}
	c.Namespace, c.Name = ns, name
	c.Spec = tenantauthv1alpha1.SSOConnectionSpec{
		Organization: orgName, Protocol: tenantauthv1alpha1.ProtocolOIDC,
		OIDC: &tenantauthv1alpha1.OIDCConnection{Issuer: "https://idp.example.com", ClientID: "tenantauth"},
	}
	for _, f := range mutate {
		f(c)
	}
	return c
}

func mapGroup(group, role string) func(*tenantauthv1alpha1.SSOConnection) {
	return func(c *tenantauthv1alpha1.SSOConnection) {
		c.Spec.RoleMappings = append(c.Spec.RoleMappings, tenantauthv1alpha1.RoleMapping{Group: group, Role: role})
	}
}

// TestSSOConnectionAuthorization plays each role of an organization at its
// SSOConnections: a connection decides who signs in and as what, so only
// owners and admins may make, change or delete one.
func TestSSOConnectionAuthorization(t *testing.T) {
	tm := newTeam(t)
	tests := []struct {
		who  string
		want outcome
	}{
		{"viewer", forbidden(`needs role "admin"`)},
		{"member", forbidden(`needs role "admin"`)},
		{"manager", forbidden(`needs role "admin"`, `you (manager@`)},
		{"admin", allowed},
		{"owner", allowed},
	}
	for _, tt := range tests {
		t.Run(tt.who, func(t *testing.T) {
			c := tm.as(t, tt.who)
			conn := oidcConnection(tm.ns, "by-"+tt.who, tm.org)
			check(t, c.Create(testCtx, conn), tt.want)
			if !tt.want.allowed {
				// Nor may they change or delete one an admin made.
				mine := oidcConnection(tm.ns, "for-"+tt.who, tm.org)
				mustCreate(t, tm.as(t, "admin"), mine)
				check(t, update(c, mine, func(s *tenantauthv1alpha1.SSOConnection) { s.Spec.OIDC.ClientID = "mine" }), tt.want)
				check(t, update(c, mine, mapGroup("everyone", "admin")), tt.want)
				check(t, c.Delete(testCtx, mine), tt.want)
				return
			}
			waitCached(t, conn)
			check(t, update(c, conn, func(s *tenantauthv1alpha1.SSOConnection) { s.Spec.OIDC.ClientID = "changed" }), allowed)
			check(t, c.Delete(testCtx, conn), allowed)
		})
	}
	t.Run("someone without a Membership", func(t *testing.T) {
		check(t, as(t, "stranger@example.com").Create(testCtx, oidcConnection(tm.ns, "by-stranger", tm.org)), forbidden("no Membership"))
	})
	t.Run("the auth server", func(t *testing.T) {
		check(t, as(t, authServerUser, "system:serviceaccounts").Create(testCtx, oidcConnection(tm.ns, "by-srv", tm.org)),
			forbidden("may not change SSOConnections"))
	})
	t.Run("a cluster admin", func(t *testing.T) {
		check(t, admin.Create(testCtx, oidcConnection(tm.ns, "by-cluster-admin", tm.org)), allowed)
	})
}

// TestSSOConnectionRoles: the roles a connection gives members made just
// in time are real roles of the organization, never owner, and never more
// than the requester holds.
func TestSSOConnectionRoles(t *testing.T) {
	tm := newTeam(t, func(o *tenantauthv1alpha1.Organization) {
		o.Spec.Roles = []tenantauthv1alpha1.Role{
			{Name: "billing", Rank: 50, Permissions: []string{"billing:refund"}},
			{Name: "support", Rank: 30, Permissions: []string{tenantauthv1alpha1.PermOrgRead}},
		}
	})
	adminC, ownerC := tm.as(t, "admin"), tm.as(t, "owner")
	n := 0
	conn := func(mutate ...func(*tenantauthv1alpha1.SSOConnection)) *tenantauthv1alpha1.SSOConnection {
		n++
		return oidcConnection(tm.ns, fmt.Sprintf("roles-%d", n), tm.org, mutate...)
	}
	defaultRole := func(r string) func(*tenantauthv1alpha1.SSOConnection) {
		return func(c *tenantauthv1alpha1.SSOConnection) { c.Spec.DefaultRole = r }
	}
	tests := []struct {
		name string
		c    client.Client
		conn *tenantauthv1alpha1.SSOConnection
		want outcome
	}{
		// The schema refuses owner before any webhook runs.
		{"default role owner", ownerC, conn(defaultRole("owner")), outcome{contains: []string{"may not become owners"}}},
		{"a group mapped to owner", ownerC, conn(mapGroup("founders", "owner")), outcome{contains: []string{"may not grant owner"}}},
		{"an unknown default role", ownerC, conn(defaultRole("ghost")), invalidField("spec.defaultRole", "unknown role")},
		{"a group mapped to an unknown role", ownerC, conn(mapGroup("g", "ghost")), invalidField("spec.roleMappings[0].role", "unknown role")},
		{"an admin mapping a group to admin", adminC, conn(mapGroup("it", "admin")), allowed},
		{"an admin mapping a group to a custom role", adminC, conn(mapGroup("support", "support")), allowed},
		{"an admin giving a role with permissions they lack", adminC, conn(mapGroup("finance", "billing")),
			forbidden(`role "billing" carries permissions you do not hold`)},
		{"an owner giving that role", ownerC, conn(mapGroup("finance", "billing")), allowed},
		{"a missing organization", ownerC, oidcConnection(tm.ns, "orphan", "no-such-org"), invalidField("spec.organization", "no Organization")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { check(t, tt.c.Create(testCtx, tt.conn), tt.want) })
	}
}

// TestSSOConnectionDefaultsAreJITSafe: a connection made with the least
// spec gives members made just in time the member role, never more, and
// asks the provider only for identity scopes.
func TestSSOConnectionDefaultsAreJITSafe(t *testing.T) {
	tm := newTeam(t)
	c := oidcConnection(tm.ns, "minimal", tm.org)
	mustCreate(t, tm.as(t, "admin"), c)
	if c.Spec.DefaultRole != tenantauthv1alpha1.RoleMember {
		t.Fatalf("defaultRole %q, want member", c.Spec.DefaultRole)
	}
	if fmt.Sprint(c.Spec.OIDC.Scopes) != "[openid email profile]" {
		t.Fatalf("scopes %v", c.Spec.OIDC.Scopes)
	}
	if len(c.Spec.RoleMappings) != 0 || c.Spec.Claims.Groups != "" {
		t.Fatalf("a minimal connection maps groups: %+v", c.Spec)
	}
	check(t, update(tm.as(t, "admin"), c, func(s *tenantauthv1alpha1.SSOConnection) { s.Spec.Organization = "other" }),
		outcome{contains: []string{"spec.organization is immutable"}})
}

// TestSSOConnectionSchema: the protocol's own block is required, and a
// SAML connection names its metadata exactly once.
func TestSSOConnectionSchema(t *testing.T) {
	tm := newTeam(t)
	saml := func(name string, s *tenantauthv1alpha1.SAMLConnection) *tenantauthv1alpha1.SSOConnection {
		return oidcConnection(tm.ns, name, tm.org, func(c *tenantauthv1alpha1.SSOConnection) {
			c.Spec.Protocol, c.Spec.OIDC, c.Spec.SAML = tenantauthv1alpha1.ProtocolSAML, nil, s
		})
	}
	owner := tm.as(t, "owner")
	tests := []struct {
		name string
		conn *tenantauthv1alpha1.SSOConnection
		want outcome
	}{
		{"oidc without its block", oidcConnection(tm.ns, "s1", tm.org, func(c *tenantauthv1alpha1.SSOConnection) { c.Spec.OIDC = nil }),
			outcome{contains: []string{"protocol oidc needs spec.oidc"}}},
		{"saml without its block", saml("s2", nil), outcome{contains: []string{"protocol saml needs spec.saml"}}},
		{"saml with both metadata sources", saml("s3", &tenantauthv1alpha1.SAMLConnection{MetadataURL: "https://idp.example.com/md", MetadataXML: "<x/>"}),
			outcome{contains: []string{"exactly one of metadataURL and metadataXML"}}},
		{"saml with neither", saml("s4", &tenantauthv1alpha1.SAMLConnection{}), outcome{contains: []string{"exactly one of metadataURL and metadataXML"}}},
		{"an http issuer", oidcConnection(tm.ns, "s5", tm.org, func(c *tenantauthv1alpha1.SSOConnection) { c.Spec.OIDC.Issuer = "http://idp.example.com" }),
			outcome{contains: []string{"must be an https URL"}}},
		{"scopes without openid", oidcConnection(tm.ns, "s6", tm.org, func(c *tenantauthv1alpha1.SSOConnection) { c.Spec.OIDC.Scopes = []string{"email"} }),
			outcome{contains: []string{"must include openid"}}},
		{"saml by URL", saml("s7", &tenantauthv1alpha1.SAMLConnection{MetadataURL: "https://idp.example.com/md"}), allowed},
		{"oidc on loopback http", oidcConnection(tm.ns, "s8", tm.org, func(c *tenantauthv1alpha1.SSOConnection) { c.Spec.OIDC.Issuer = "http://127.0.0.1:5556/dex" }), allowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { check(t, owner.Create(testCtx, tt.conn), tt.want) })
	}
}
