package webhook

import (
	"context"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenantauthv1alpha1 "github.com/tenantauth/tenantauth/api/v1alpha1"
)

func TestMembershipDefaults(t *testing.T) {
	ns := newNamespace(t)
	o := org(ns, ns+"-acme")
	mustCreate(t, admin, o)
	m := membership(ns, "alice", o.Name, "  Alice@Example.COM ", "")
	mustCreate(t, admin, m)
	if m.Spec.Email != "alice@example.com" || m.Spec.Role != tenantauthv1alpha1.RoleMember {
		t.Errorf("email %q role %q: want alice@example.com and member", m.Spec.Email, m.Spec.Role)
	}
	// Re-sending the invitation's original spelling must not trip the
	// email's immutability rule.
	mustUpdate(t, admin, m, func(m *tenantauthv1alpha1.Membership) { m.Spec.Email = "Alice@Example.com" })
	if m.Spec.Email != "alice@example.com" {
		t.Errorf("email after update %q", m.Spec.Email)
	}
}

func TestMembershipValidation(t *testing.T) {
	ns := newNamespace(t)
	o := org(ns, ns+"-acme", func(o *tenantauthv1alpha1.Organization) {
		o.Spec.Roles = []tenantauthv1alpha1.Role{{Name: "lead", Rank: 85}}
	})
	mustCreate(t, admin, o)
	existing := membership(ns, "dup", o.Name, "dup@example.com", "member")
	mustCreate(t, admin, existing)

	tests := []struct {
		name string
		m    *tenantauthv1alpha1.Membership
		want outcome
	}{
		{"missing organization", membership(ns, "a", "nope", "a@example.com", "member"),
			invalidField("spec.organization", `no Organization "nope" in namespace`, "create it first")},
		{"unknown role", membership(ns, "b", o.Name, "b@example.com", "ghost"),
			invalidField("spec.role", "unknown role", "lead")},
		{"custom role", membership(ns, "c", o.Name, "c@example.com", "lead"), allowed},
		{"second membership for an email, other case", membership(ns, "d", o.Name, "DUP@example.com", "viewer"),
			invalidField("spec.email", `Membership "dup" already gives this email a role`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { check(t, admin.Create(testCtx, tt.m), tt.want) })
	}

	t.Run("same email in a second organization", func(t *testing.T) {
		o2 := org(ns, ns+"-beta")
		mustCreate(t, admin, o2)
		check(t, admin.Create(testCtx, membership(ns, "f", o2.Name, "dup@example.com", "member")), allowed)
	})
	t.Run("organization change (CRD rule)", func(t *testing.T) {
		check(t, update(admin, existing.DeepCopy(), func(m *tenantauthv1alpha1.Membership) { m.Spec.Organization = ns + "-beta" }),
			invalidField("", "immutable"))
	})
	t.Run("organization change (webhook)", func(t *testing.T) {
		moved := existing.DeepCopy()
		moved.Spec.Organization = ns + "-beta"
		_, err := testValidators(t, Options{}).membership.ValidateUpdate(requestContext(admissionv1.Update, "root", "system:masters"), existing, moved)
		checkDirect(t, err, invalidField("spec.organization", "is immutable"))
	})
}

func TestLastOwner(t *testing.T) {
	ns := newNamespace(t)
	o := org(ns, ns+"-acme")
	mustCreate(t, admin, o)
	alice := membership(ns, "alice", o.Name, "alice@example.com", "owner")
	mustCreate(t, admin, alice)
	mustCreate(t, admin, membership(ns, "bob", o.Name, "bob@example.com", "admin"))
	mustCreate(t, admin, apiKey(ns, "ci", o.Name))
	asAlice := as(t, "alice@example.com")

	steps := []struct {
		name string
		do   func() error
		want outcome
	}{
		{"owner deletes herself", func() error { return asAlice.Delete(testCtx, alice.DeepCopy()) },
			invalidField("spec.role", "cannot delete the last owner", "make another Membership owner first")},
		{"cluster admin deletes the last owner", func() error { return admin.Delete(testCtx, alice.DeepCopy()) },
			invalidField("spec.role", "cannot delete the last owner")},
		{"owner demotes herself", func() error {
			return update(asAlice, alice, func(m *tenantauthv1alpha1.Membership) { m.Spec.Role = "admin" })
		}, invalidField("spec.role", "cannot demote the last owner")},
		{"owner disables herself", func() error {
			return update(asAlice, alice, func(m *tenantauthv1alpha1.Membership) { m.Spec.Disabled = true })
		}, invalidField("spec.disabled", "cannot disable the last owner")},
		{"owner adds a disabled owner", func() error {
			m := membership(ns, "dora", o.Name, "dora@example.com", "owner")
			m.Spec.Disabled = true
			return asAlice.Create(testCtx, m)
		}, allowed},
		{"a disabled owner does not count", func() error {
			return update(asAlice, alice, func(m *tenantauthv1alpha1.Membership) { m.Spec.Role = "admin" })
		}, invalidField("spec.role", "cannot demote the last owner")},
		{"owner adds a second owner", func() error {
			c := membership(ns, "carol", o.Name, "carol@example.com", "owner")
			if err := asAlice.Create(testCtx, c); err != nil {
				return err
			}
			waitCached(t, c)
			return nil
		}, allowed},
		{"now she may step down", func() error {
			return update(asAlice, alice, func(m *tenantauthv1alpha1.Membership) { m.Spec.Role = "admin" })
		}, allowed},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) { check(t, s.do(), s.want) })
	}

	carol := membership(ns, "carol", o.Name, "carol@example.com", "owner")
	waitCached(t, alice) // picks up alice's demotion before carol's checks
	t.Run("the new last owner cannot disable herself", func(t *testing.T) {
		check(t, update(as(t, "carol@example.com"), carol, func(m *tenantauthv1alpha1.Membership) { m.Spec.Disabled = true }),
			invalidField("spec.disabled", "cannot disable the last owner"))
	})
}

// An owner takes an organization apart in order: keys and other members,
// their own Membership last, then the Organization, which then has nobody
// left to authorize and falls back to Kubernetes RBAC.
func TestDismantleOrganization(t *testing.T) {
	ns := newNamespace(t)
	o := org(ns, ns+"-acme")
	mustCreate(t, admin, o)
	dana := membership(ns, "dana", o.Name, "dana@example.com", "owner")
	ed := membership(ns, "ed", o.Name, "ed@example.com", "member")
	key := apiKey(ns, "ci", o.Name)
	mustCreate(t, admin, dana)
	mustCreate(t, admin, ed)
	mustCreate(t, admin, key)
	asDana := as(t, "dana@example.com")

	check(t, asDana.Delete(testCtx, o.DeepCopy()),
		invalidField("metadata.name", "still has 2 Membership(s) and 1 APIKey(s)", "delete them first"))
	check(t, asDana.Delete(testCtx, dana.DeepCopy()),
		invalidField("spec.role", "delete its 1 other Membership(s) and 1 APIKey(s) first"))
	mustDelete(t, asDana, key)
	mustDelete(t, asDana, ed)
	mustDelete(t, asDana, dana)
	check(t, asDana.Delete(testCtx, o.DeepCopy()), allowed)
}

func TestMembershipDefaulter(t *testing.T) {
	tests := []struct{ email, role, wantEmail, wantRole string }{
		{" Bob@Example.COM\t", "", "bob@example.com", "member"},
		{"bob@example.com", "admin", "bob@example.com", "admin"},
	}
	for _, tt := range tests {
		m := membership("ns", "m", "acme", tt.email, tt.role)
		if err := (&MembershipDefaulter{}).Default(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		if m.Spec.Email != tt.wantEmail || m.Spec.Role != tt.wantRole {
			t.Errorf("Default(%q, %q) = %q, %q; want %q, %q", tt.email, tt.role, m.Spec.Email, m.Spec.Role, tt.wantEmail, tt.wantRole)
		}
	}
}

func TestEmailProblem(t *testing.T) {
	tests := []struct {
		email string
		ok    bool
	}{
		{"alice@example.com", true},
		{"a.b+tag@sub.example.co", true},
		{"Alice@example.com", false},
		{" alice@example.com", false},
		{"alice", false},
		{"alice@localhost", false},
		{"Alice <alice@example.com>", false},
		{"a@b@example.com", false},
	}
	for _, tt := range tests {
		if got := emailProblem(tt.email); (got == "") != tt.ok {
			t.Errorf("emailProblem(%q) = %q, want ok=%v", tt.email, got, tt.ok)
		}
	}
}

// A Membership held by a finalizer after its deletion is on its way out: it
// must not count as the owner that lets another owner leave.
func TestOwnerBeingDeletedDoesNotCount(t *testing.T) {
	ns := newNamespace(t)
	o := org(ns, ns+"-acme")
	mustCreate(t, admin, o)
	alice := membership(ns, "alice", o.Name, "alice@example.com", "owner")
	carol := membership(ns, "carol", o.Name, "carol@example.com", "owner")
	carol.Finalizers = []string{"test.tenantauth.io/hold"}
	mustCreate(t, admin, alice)
	mustCreate(t, admin, carol)
	asAlice := as(t, "alice@example.com")

	if err := asAlice.Delete(testCtx, carol.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	if err := admin.Get(testCtx, client.ObjectKeyFromObject(carol), carol); err != nil || carol.DeletionTimestamp == nil {
		t.Fatalf("carol should be waiting on her finalizer: %v", err)
	}
	waitCached(t, carol)
	check(t, update(asAlice, alice, func(m *tenantauthv1alpha1.Membership) { m.Spec.Role = "admin" }),
		invalidField("spec.role", "cannot demote the last owner"))
	check(t, as(t, "carol@example.com").Create(testCtx, membership(ns, "x", o.Name, "x@example.com", "member")),
		forbidden(`needs role "admin"`, "have no Membership"))

	// Releasing the finalizer completes the deletion.
	if err := update(admin, carol, func(m *tenantauthv1alpha1.Membership) { m.Finalizers = nil }); err != nil {
		t.Fatal(err)
	}
	waitGone(t, carol)
}
