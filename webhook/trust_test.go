package webhook

import (
	"slices"
	"testing"

	tenantauthv1alpha1 "github.com/tenantauth/tenantauth/api/v1alpha1"
)

// TestAuthServerSignupRule plays an attacker who controls the auth server's
// credentials (or tricks it): it may create only what a verified signup
// needs, and the real members keep working.
func TestAuthServerSignupRule(t *testing.T) {
	tm := newTeam(t, func(o *tenantauthv1alpha1.Organization) {
		o.Spec.SelfSignup = tenantauthv1alpha1.SelfSignupSpec{AllowedEmailDomains: []string{"acme.test"}, DefaultRole: "viewer"}
	})
	srv := as(t, authServerUser, "system:serviceaccounts")
	disabled := membership(tm.ns, "s-disabled", tm.org, "d@acme.test", "viewer")
	disabled.Spec.Disabled = true
	tests := []struct {
		name string
		m    *tenantauthv1alpha1.Membership
		want outcome
	}{
		{"default role on an allowed domain", membership(tm.ns, "s-ok", tm.org, "carol@acme.test", "viewer"), allowed},
		{"owner", membership(tm.ns, "s-owner", tm.org, "eve@acme.test", "owner"), forbidden(`not "owner"`)},
		{"admin", membership(tm.ns, "s-admin", tm.org, "eve2@acme.test", "admin"), forbidden(`not "admin"`)},
		{"a role other than the default", membership(tm.ns, "s-member", tm.org, "eve3@acme.test", "member"), forbidden(`not "member"`)},
		{"a domain not allowed", membership(tm.ns, "s-domain", tm.org, "eve@evil.test", "viewer"), forbidden(`domain "evil.test"`)},
		{"disabled", disabled, forbidden("enabled Memberships")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { check(t, srv.Create(testCtx, tt.m), tt.want) })
	}
	// It may not edit or delete what exists: the owner stays owner.
	check(t, update(srv, membership(tm.ns, "viewer", tm.org, "", ""), func(m *tenantauthv1alpha1.Membership) { m.Spec.Role = "owner" }),
		forbidden("may only create Memberships"))
	check(t, srv.Delete(testCtx, membership(tm.ns, "owner", tm.org, tm.email("owner"), "owner")), forbidden("may only create Memberships"))
	check(t, srv.Create(testCtx, apiKey(tm.ns, "s-key", tm.org, tenantauthv1alpha1.ScopeRead)), forbidden("may not change APIKeys"))
	// The victim keeps working: the owner still manages the organization.
	check(t, tm.as(t, "owner").Create(testCtx, membership(tm.ns, "by-owner", tm.org, "dave@example.com", "admin")), allowed)
}

// TestCustomRolesCarryOnlyHeldPermissions plays the admin who defines a
// role of their own rank with owner-only permissions and moves into it.
func TestCustomRolesCarryOnlyHeldPermissions(t *testing.T) {
	tm := newTeam(t, func(o *tenantauthv1alpha1.Organization) {
		o.Spec.Roles = []tenantauthv1alpha1.Role{{Name: "auditor", Rank: 30, Permissions: []string{tenantauthv1alpha1.PermOrgRead}}}
	})
	addRole := func(r tenantauthv1alpha1.Role) func(*tenantauthv1alpha1.Organization) {
		return func(o *tenantauthv1alpha1.Organization) { o.Spec.Roles = append(o.Spec.Roles, r) }
	}
	adminC, ownerC := tm.as(t, "admin"), tm.as(t, "owner")
	o := org(tm.ns, tm.org)

	check(t, update(adminC, o, addRole(tenantauthv1alpha1.Role{Name: "shadow", Rank: 80,
		Permissions: []string{tenantauthv1alpha1.PermOrgDelete, tenantauthv1alpha1.PermOwnershipMove}})),
		forbidden("permissions you do not hold ([org:delete org:transfer])"))
	check(t, update(ownerC, o, addRole(tenantauthv1alpha1.Role{Name: "shadow", Rank: 80,
		Permissions: []string{tenantauthv1alpha1.PermOrgDelete}})),
		invalidField("spec.roles[1].permissions[0]", "belongs to owners only"))
	check(t, update(tm.as(t, "manager"), o, addRole(tenantauthv1alpha1.Role{Name: "x", Rank: 10})), forbidden(`needs role "admin"`))

	// An admin may define a role within their own permissions, not beyond.
	check(t, update(adminC, o, addRole(tenantauthv1alpha1.Role{Name: "ops", Rank: 70,
		Permissions: []string{tenantauthv1alpha1.PermMembersManage}})), allowed)
	waitCached(t, o)
	check(t, update(adminC, o, addRole(tenantauthv1alpha1.Role{Name: "weird", Rank: 10, Permissions: []string{"billing:refund"}})),
		forbidden(`permissions you do not hold ([billing:refund])`))
	check(t, update(ownerC, o, addRole(tenantauthv1alpha1.Role{Name: "billing", Rank: 50, Permissions: []string{"billing:refund"}})), allowed)
	waitCached(t, o)

	// Assigning: an admin may not hand out a role carrying a permission
	// they lack, nor move themselves into one.
	check(t, adminC.Create(testCtx, membership(tm.ns, "b1", tm.org, "b1@example.com", "billing")),
		forbidden(`role "billing" carries permissions you do not hold`))
	check(t, update(adminC, membership(tm.ns, "admin", tm.org, "", ""), func(m *tenantauthv1alpha1.Membership) { m.Spec.Role = "billing" }),
		forbidden("nobody may raise their own role"))
	check(t, adminC.Create(testCtx, membership(tm.ns, "o1", tm.org, "o1@example.com", "ops")), allowed)
	// The owner, who holds everything, may.
	check(t, ownerC.Create(testCtx, membership(tm.ns, "b2", tm.org, "b2@example.com", "billing")), allowed)
}

// TestGrantingTakesEveryPermissionOfTheRole plays a member whose custom
// role ranks as admin but carries almost nothing: rank alone must not let
// them hand out the built-in admin role, whose permissions they lack, to a
// new Membership or an existing one. Those who hold the permissions still
// may.
func TestGrantingTakesEveryPermissionOfTheRole(t *testing.T) {
	tm := newTeam(t, func(o *tenantauthv1alpha1.Organization) {
		o.Spec.Roles = []tenantauthv1alpha1.Role{
			{Name: "figurehead", Rank: 80, Permissions: []string{tenantauthv1alpha1.PermOrgRead}},
			{Name: "deputy", Rank: 80, Permissions: adminPermissions()},
			{Name: "reader", Rank: 10, Permissions: []string{tenantauthv1alpha1.PermOrgRead}},
		}
	})
	for _, r := range []string{"figurehead", "deputy"} {
		mustCreate(t, admin, membership(tm.ns, r, tm.org, tm.email(r), r))
	}
	newMember := func(name, role string) *tenantauthv1alpha1.Membership {
		return membership(tm.ns, name, tm.org, name+"@example.com", role)
	}
	setRole := func(role string) func(*tenantauthv1alpha1.Membership) {
		return func(m *tenantauthv1alpha1.Membership) { m.Spec.Role = role }
	}
	fig := tm.as(t, "figurehead")
	lacks := `role "admin" carries permissions you do not hold`
	tests := []struct {
		name string
		do   func() error
		want outcome
	}{
		{"figurehead creates an admin", func() error { return fig.Create(testCtx, newMember("f1", "admin")) },
			forbidden(lacks, `have role "figurehead" (rank 80)`)},
		{"figurehead promotes the viewer to admin", func() error { return update(fig, membership(tm.ns, "viewer", tm.org, "", ""), setRole("admin")) },
			forbidden(lacks)},
		{"figurehead creates a manager", func() error { return fig.Create(testCtx, newMember("f2", "manager")) },
			forbidden(`role "manager" carries permissions you do not hold`)},
		{"figurehead creates a reader (within its permissions)", func() error { return fig.Create(testCtx, newMember("f3", "reader")) }, allowed},
		{"deputy (admin's permissions) creates an admin", func() error { return tm.as(t, "deputy").Create(testCtx, newMember("d1", "admin")) }, allowed},
		{"admin creates an admin", func() error { return tm.as(t, "admin").Create(testCtx, newMember("a1", "admin")) }, allowed},
		{"admin promotes the viewer to manager", func() error {
			return update(tm.as(t, "admin"), membership(tm.ns, "viewer", tm.org, "", ""), setRole("manager"))
		}, allowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { check(t, tt.do(), tt.want) })
	}
}

// TestSelfSignupRoleTakesEveryPermission plays the same figurehead making
// the built-in admin role the self-signup role, so that anyone on an
// allowed domain would join as admin. The rule is the one for granting: the
// self-signup role hands its permissions to every newcomer.
func TestSelfSignupRoleTakesEveryPermission(t *testing.T) {
	tm := newTeam(t, func(o *tenantauthv1alpha1.Organization) {
		o.Spec.SelfSignup.AllowedEmailDomains = []string{"acme.test"}
		o.Spec.Roles = []tenantauthv1alpha1.Role{
			{Name: "figurehead", Rank: 80, Permissions: []string{tenantauthv1alpha1.PermOrgRead, tenantauthv1alpha1.PermOrgUpdate}},
			{Name: "reader", Rank: 10, Permissions: []string{tenantauthv1alpha1.PermOrgRead}},
		}
	})
	mustCreate(t, admin, membership(tm.ns, "figurehead", tm.org, tm.email("figurehead"), "figurehead"))
	setDefault := func(role string) func(*tenantauthv1alpha1.Organization) {
		return func(o *tenantauthv1alpha1.Organization) { o.Spec.SelfSignup.DefaultRole = role }
	}
	o := org(tm.ns, tm.org)
	tests := []struct {
		who, role string
		want      outcome
	}{
		{"figurehead", "admin", forbidden(`self-signup role "admin" carries permissions you do not hold`, `have role "figurehead" (rank 80)`)},
		{"figurehead", "manager", forbidden(`self-signup role "manager" carries permissions you do not hold`)},
		{"figurehead", "reader", allowed},
		{"admin", "manager", allowed},
		{"admin", "admin", allowed},
		{"admin", "owner", forbidden(`making "owner" the self-signup role takes a rank of at least 100`)},
		{"owner", "owner", invalidField("spec.selfSignup.defaultRole", "may not become owners")},
		{"owner", "member", allowed},
	}
	for _, tt := range tests {
		t.Run(tt.who+" sets "+tt.role, func(t *testing.T) {
			err := update(tm.as(t, tt.who), o, setDefault(tt.role))
			check(t, err, tt.want)
			if err == nil {
				waitCached(t, o)
			}
		})
	}
}

// adminPermissions are the built-in admin role's permissions, copied: the
// role table's own slice must not end up in an object under test.
func adminPermissions() []string {
	r, _ := (&tenantauthv1alpha1.Organization{}).LookupRole(tenantauthv1alpha1.RoleAdmin)
	return slices.Clone(r.Permissions)
}
