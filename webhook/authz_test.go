package webhook

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	tenantauthv1alpha1 "github.com/tenantauth/tenantauth/api/v1alpha1"
)

var builtinRoleNames = []string{"owner", "admin", "manager", "member", "viewer"}

// team is an organization with one Membership per built-in role, named
// after the role, for the email "<role>@<namespace>.test".
type team struct{ ns, org string }

func newTeam(t *testing.T, mutate ...func(*tenantauthv1alpha1.Organization)) team {
	t.Helper()
	ns := newNamespace(t)
	tm := team{ns: ns, org: ns + "-acme"}
	mustCreate(t, admin, org(ns, tm.org, mutate...))
	for _, r := range builtinRoleNames {
		mustCreate(t, admin, membership(ns, r, tm.org, tm.email(r), r))
	}
	return tm
}

func (tm team) email(who string) string { return who + "@" + tm.ns + ".test" }

func (tm team) as(t *testing.T, who string) client.Client { return as(t, tm.email(who)) }

func TestRoleMatrix(t *testing.T) {
	tm := newTeam(t)
	higher := map[string]string{"admin": "owner", "manager": "admin", "member": "manager", "viewer": "member"}

	type action struct {
		name string
		do   func(c client.Client, who string) error
	}
	raiseOwnRole := action{"raise own role", func(c client.Client, who string) error {
		return update(c, membership(tm.ns, who, tm.org, "", ""), func(m *tenantauthv1alpha1.Membership) { m.Spec.Role = higher[who] })
	}}
	createMembership := func(role string) action {
		return action{"create " + role + " membership", func(c client.Client, who string) error {
			name := fmt.Sprintf("new-%s-by-%s", role, who)
			return c.Create(testCtx, membership(tm.ns, name, tm.org, name+"@example.com", role))
		}}
	}
	createKey := func(scope tenantauthv1alpha1.APIKeyScope) action {
		return action{"create " + string(scope) + "-scoped key", func(c client.Client, who string) error {
			return c.Create(testCtx, apiKey(tm.ns, fmt.Sprintf("key-%s-by-%s", scope, who), tm.org, scope))
		}}
	}
	updateOrg := action{"update organization", func(c client.Client, who string) error {
		return update(c, org(tm.ns, tm.org), func(o *tenantauthv1alpha1.Organization) { o.Spec.DisplayName = "Renamed by " + who })
	}}
	deleteOrg := action{"delete organization", func(c client.Client, _ string) error {
		return c.Delete(testCtx, org(tm.ns, tm.org))
	}}
	demoteOwner := action{"demote the owner", func(c client.Client, _ string) error {
		return update(c, membership(tm.ns, "owner", tm.org, "", ""), func(m *tenantauthv1alpha1.Membership) { m.Spec.Role = "admin" })
	}}
	demoteAdmin := action{"demote the admin", func(c client.Client, _ string) error {
		return update(c, membership(tm.ns, "admin", tm.org, "", ""), func(m *tenantauthv1alpha1.Membership) { m.Spec.Disabled = !m.Spec.Disabled })
	}}

	has := func(role string) string { return fmt.Sprintf("have role %q", role) }
	needs := func(role string) string { return fmt.Sprintf("needs role %q", role) }
	raise := "nobody may raise their own role"

	tests := []struct {
		who    string
		action action
		want   outcome
	}{
		// An owner holds the top role: there is nothing to raise to.
		{"owner", createMembership("owner"), allowed},
		{"owner", createMembership("admin"), allowed},
		{"owner", createKey(tenantauthv1alpha1.ScopeAdmin), allowed},
		{"owner", updateOrg, allowed},
		{"owner", deleteOrg, invalidField("metadata.name", "Membership(s)", "delete them first")},

		{"admin", raiseOwnRole, forbidden(raise, `from "admin" to "owner"`)},
		{"admin", createMembership("owner"), forbidden(needs("owner"), has("admin"))},
		{"admin", createMembership("admin"), allowed},
		{"admin", demoteOwner, forbidden(needs("owner"), has("admin"))},
		{"admin", createKey(tenantauthv1alpha1.ScopeAdmin), allowed},
		{"admin", updateOrg, allowed},
		{"admin", deleteOrg, forbidden(`deleting an Organization needs role "owner"`, has("admin"))},

		{"manager", raiseOwnRole, forbidden(raise, `from "manager" to "admin"`)},
		{"manager", createMembership("owner"), forbidden(needs("owner"), has("manager"))},
		{"manager", createMembership("member"), forbidden(`changing Memberships needs role "admin" or higher`, has("manager"))},
		{"manager", demoteAdmin, forbidden(needs("admin"), has("manager"))},
		{"manager", createKey(tenantauthv1alpha1.ScopeAdmin), forbidden(`scope "admin"`, needs("admin"), has("manager"))},
		{"manager", createKey(tenantauthv1alpha1.ScopeDelete), forbidden(`scope "delete"`, has("manager"))},
		{"manager", createKey(tenantauthv1alpha1.ScopeWrite), allowed},
		{"manager", updateOrg, forbidden(needs("admin"), has("manager"))},
		{"manager", deleteOrg, forbidden(needs("owner"), has("manager"))},

		{"member", raiseOwnRole, forbidden(raise, `from "member" to "manager"`)},
		{"member", createMembership("owner"), forbidden(needs("owner"), has("member"))},
		{"member", createMembership("viewer"), forbidden(needs("admin"), has("member"))},
		{"member", createKey(tenantauthv1alpha1.ScopeAdmin), forbidden(`changing APIKeys needs role "manager"`, has("member"))},
		{"member", createKey(tenantauthv1alpha1.ScopeRead), forbidden(needs("manager"), has("member"))},
		{"member", updateOrg, forbidden(needs("admin"), has("member"))},
		{"member", deleteOrg, forbidden(needs("owner"), has("member"))},

		{"viewer", raiseOwnRole, forbidden(raise, `from "viewer" to "member"`)},
		{"viewer", createMembership("owner"), forbidden(needs("owner"), has("viewer"))},
		{"viewer", createKey(tenantauthv1alpha1.ScopeAdmin), forbidden(needs("manager"), has("viewer"))},
		{"viewer", updateOrg, forbidden(needs("admin"), has("viewer"))},
		{"viewer", deleteOrg, forbidden(needs("owner"), has("viewer"))},

		{"stranger", createMembership("member"), forbidden(needs("admin"), "have no Membership")},
		{"stranger", createMembership("owner"), forbidden(needs("owner"), "have no Membership")},
		{"stranger", createKey(tenantauthv1alpha1.ScopeRead), forbidden(needs("manager"), "have no Membership")},
		{"stranger", updateOrg, forbidden(needs("admin"), "have no Membership")},
		{"stranger", deleteOrg, forbidden(needs("owner"), "have no Membership")},
	}
	for _, tt := range tests {
		t.Run(tt.who+" "+tt.action.name, func(t *testing.T) {
			check(t, tt.action.do(tm.as(t, tt.who), tt.who), tt.want)
		})
	}
}

func TestManagerKeysUpToWrite(t *testing.T) {
	tm := newTeam(t)
	adminKey := apiKey(tm.ns, "admin-key", tm.org, tenantauthv1alpha1.ScopeAdmin)
	writeKey := apiKey(tm.ns, "write-key", tm.org, tenantauthv1alpha1.ScopeWrite)
	mustCreate(t, admin, adminKey)
	mustCreate(t, admin, writeKey)
	mgrClient := tm.as(t, "manager")

	check(t, update(mgrClient, adminKey, func(k *tenantauthv1alpha1.APIKey) { k.Spec.Revoked = true }),
		forbidden(`scope "admin"`, `needs role "admin"`))
	check(t, mgrClient.Delete(testCtx, adminKey.DeepCopy()), forbidden(`scope "admin"`))
	check(t, update(mgrClient, writeKey, func(k *tenantauthv1alpha1.APIKey) {
		k.Spec.Scopes = append(k.Spec.Scopes, tenantauthv1alpha1.ScopeDelete)
	}), forbidden(`scope "delete"`))
	check(t, update(mgrClient, writeKey, func(k *tenantauthv1alpha1.APIKey) { k.Spec.Revoked = true }), allowed)
	check(t, mgrClient.Delete(testCtx, writeKey.DeepCopy()), allowed)
}

func TestDisabledMembershipGrantsNothing(t *testing.T) {
	tm := newTeam(t)
	mustUpdate(t, admin, membership(tm.ns, "admin", tm.org, "", ""), func(m *tenantauthv1alpha1.Membership) { m.Spec.Disabled = true })
	check(t, tm.as(t, "admin").Create(testCtx, membership(tm.ns, "x", tm.org, "x@example.com", "member")),
		forbidden(`needs role "admin"`, `Membership "admin" in organization`, "is disabled"))
}

func TestBootstrapFirstOwner(t *testing.T) {
	ns := newNamespace(t)
	founder, other := as(t, "founder@example.com"), as(t, "other@example.com")
	o := org(ns, ns+"-startup")

	check(t, founder.Create(testCtx, o), allowed)
	waitCached(t, o)
	check(t, update(founder, o, func(o *tenantauthv1alpha1.Organization) { o.Spec.DisplayName = "Startup" }), allowed)
	check(t, other.Create(testCtx, membership(ns, "other", o.Name, "other@example.com", "member")),
		forbidden(`needs role "admin"`, "have no Membership"))

	first := membership(ns, "founder", o.Name, "founder@example.com", "owner")
	check(t, founder.Create(testCtx, first), allowed)
	waitCached(t, first)

	check(t, other.Create(testCtx, membership(ns, "other", o.Name, "other@example.com", "owner")),
		forbidden(`needs role "owner"`, "have no Membership"))
	check(t, update(other, o, func(o *tenantauthv1alpha1.Organization) { o.Spec.DisplayName = "Mine" }),
		forbidden(`needs role "admin"`))
	check(t, founder.Create(testCtx, membership(ns, "other", o.Name, "other@example.com", "admin")), allowed)
}

func TestBypass(t *testing.T) {
	tm := newTeam(t)
	tests := []struct {
		name   string
		client client.Client
		want   outcome
	}{
		{"auth server (signup rule only)", as(t, authServerUser, "system:serviceaccounts"), forbidden(`self-signup role "member", not "owner"`)},
		{"operator service account", as(t, operatorUser, "system:serviceaccounts"), allowed},
		{"member of system:masters", as(t, "root@example.com", "system:masters"), allowed},
		{"another service account", as(t, "system:serviceaccount:default:ci", "system:serviceaccounts"), forbidden("have no Membership")},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check(t, tt.client.Create(testCtx, membership(tm.ns, fmt.Sprintf("signup-%d", i), tm.org, fmt.Sprintf("signup-%d@example.com", i), "owner")), tt.want)
		})
	}
}

func TestCustomRolesCompareByRank(t *testing.T) {
	tm := newTeam(t, func(o *tenantauthv1alpha1.Organization) {
		// lead holds admin's permissions: rank decides what it may give
		// only among roles within them.
		o.Spec.Roles = []tenantauthv1alpha1.Role{{Name: "lead", Rank: 85, Permissions: adminPermissions()}, {Name: "ops", Rank: 65}, {Name: "analyst", Rank: 50}}
	})
	for _, r := range []string{"lead", "ops", "analyst"} {
		mustCreate(t, admin, membership(tm.ns, r, tm.org, tm.email(r), r))
	}
	newMember := func(name, role string) *tenantauthv1alpha1.Membership {
		return membership(tm.ns, name, tm.org, name+"@example.com", role)
	}
	setRank := func(role string, rank int32) func(*tenantauthv1alpha1.Organization) {
		return func(o *tenantauthv1alpha1.Organization) {
			for i := range o.Spec.Roles {
				if o.Spec.Roles[i].Name == role {
					o.Spec.Roles[i].Rank = rank
				}
			}
		}
	}
	tests := []struct {
		name string
		do   func() error
		want outcome
	}{
		{"lead (85) grants admin", func() error { return tm.as(t, "lead").Create(testCtx, newMember("a1", "admin")) }, allowed},
		{"lead (85) grants lead", func() error { return tm.as(t, "lead").Create(testCtx, newMember("a2", "lead")) }, allowed},
		{"lead (85) grants owner", func() error { return tm.as(t, "lead").Create(testCtx, newMember("a3", "owner")) },
			forbidden(`needs role "owner"`, `have role "lead" (rank 85)`)},
		{"admin (80) grants lead (85)", func() error { return tm.as(t, "admin").Create(testCtx, newMember("a4", "lead")) },
			forbidden(`role "lead" (rank 85) is above your own`)},
		{"ops (65) makes a write key", func() error {
			return tm.as(t, "ops").Create(testCtx, apiKey(tm.ns, "k1", tm.org, tenantauthv1alpha1.ScopeWrite))
		}, allowed},
		{"ops (65) makes an admin key", func() error {
			return tm.as(t, "ops").Create(testCtx, apiKey(tm.ns, "k2", tm.org, tenantauthv1alpha1.ScopeAdmin))
		}, forbidden(`scope "admin"`, `have role "ops" (rank 65)`)},
		{"analyst (50) makes a read key", func() error {
			return tm.as(t, "analyst").Create(testCtx, apiKey(tm.ns, "k3", tm.org))
		}, forbidden(`needs role "manager" or higher (rank 60)`, `have role "analyst" (rank 50)`)},
		{"lead raises the rank of lead", func() error { return update(tm.as(t, "lead"), org(tm.ns, tm.org), setRank("lead", 95)) },
			forbidden("nobody may raise their own role", "from 85 to 95")},
		{"admin re-ranks ops below its own rank", func() error { return update(tm.as(t, "admin"), org(tm.ns, tm.org), setRank("ops", 70)) },
			allowed},
		{"admin adds a role above its own", func() error {
			return update(tm.as(t, "admin"), org(tm.ns, tm.org), func(o *tenantauthv1alpha1.Organization) {
				o.Spec.Roles = append(o.Spec.Roles, tenantauthv1alpha1.Role{Name: "chief", Rank: 90})
			})
		}, forbidden(`custom role "chief" (rank 90)`)},
		{"owner adds a role above admin", func() error {
			return update(tm.as(t, "owner"), org(tm.ns, tm.org), func(o *tenantauthv1alpha1.Organization) {
				o.Spec.Roles = append(o.Spec.Roles, tenantauthv1alpha1.Role{Name: "chief", Rank: 90})
			})
		}, allowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { check(t, tt.do(), tt.want) })
	}
}

// Audit mode admits what enforce mode denies and says so in a warning;
// validation still denies.
func TestAuditMode(t *testing.T) {
	tm := newTeam(t)
	audit := admission.WithValidator(scheme, testValidators(t, Options{Mode: ModeAudit}).membership)
	enforce := admission.WithValidator(scheme, testValidators(t, Options{Mode: ModeEnforce}).membership)

	create := func(name, email, user string) admission.Request {
		m := membership(tm.ns, name, tm.org, email, "admin")
		m.SetGroupVersionKind(tenantauthv1alpha1.GroupVersion.WithKind("Membership"))
		raw, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			UID: "1", Operation: admissionv1.Create, Namespace: tm.ns, Name: name,
			Kind:     metav1.GroupVersionKind{Group: "tenantauth.io", Version: "v1alpha1", Kind: "Membership"},
			Resource: metav1.GroupVersionResource{Group: "tenantauth.io", Version: "v1alpha1", Resource: "memberships"},
			UserInfo: authenticationv1.UserInfo{Username: user, Groups: []string{"system:authenticated"}},
			Object:   runtime.RawExtension{Raw: raw},
		}}
	}

	byMember := create("promoted", "promoted@example.com", tm.email("member"))
	resp := enforce.Handle(testCtx, byMember)
	if resp.Allowed || resp.Result.Code != 403 {
		t.Fatalf("enforce: want 403, got allowed=%v %+v", resp.Allowed, resp.Result)
	}
	resp = audit.Handle(testCtx, byMember)
	if !resp.Allowed {
		t.Fatalf("audit: want allowed, got %+v", resp.Result)
	}
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "would deny") ||
		!strings.Contains(resp.Warnings[0], `needs role "admin" or higher`) || !strings.Contains(resp.Warnings[0], `have role "member"`) {
		t.Fatalf("audit: want one warning saying what would be denied, got %q", resp.Warnings)
	}

	resp = audit.Handle(testCtx, create("again", tm.email("viewer"), tm.email("member")))
	if resp.Allowed || resp.Result.Code != 422 || !strings.Contains(resp.Result.Message, "already gives this email a role") {
		t.Fatalf("audit: a duplicate must still be denied, got allowed=%v %+v", resp.Allowed, resp.Result)
	}
}

// Deleting a namespace makes the namespace controller delete everything in
// it, as a user with no Membership and in no particular order. The rules
// that protect a live organization must step aside.
func TestTerminatingNamespaceAllowsDeletes(t *testing.T) {
	tm := newTeam(t)
	key := apiKey(tm.ns, "ci", tm.org, tenantauthv1alpha1.ScopeAdmin)
	mustCreate(t, admin, key)
	cleaner := as(t, "system:serviceaccount:kube-system:namespace-controller", "system:serviceaccounts")
	owner := membership(tm.ns, "owner", tm.org, "", "")

	check(t, cleaner.Delete(testCtx, owner.DeepCopy()), forbidden("have no Membership"))

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: tm.ns}}
	if err := admin.Delete(testCtx, ns); err != nil {
		t.Fatal(err)
	}
	check(t, cleaner.Delete(testCtx, org(tm.ns, tm.org)), allowed)
	check(t, cleaner.Delete(testCtx, owner.DeepCopy()), allowed)
	check(t, cleaner.Delete(testCtx, key.DeepCopy()), allowed)
}

func TestNewAuthorizerOptions(t *testing.T) {
	tests := []struct {
		name       string
		opts       Options
		wantErr    bool
		wantGroups []string
		wantUsers  []string
	}{
		{"defaults", Options{}, false, []string{"system:masters"}, nil},
		{"empty flag value keeps the default", Options{BypassGroups: []string{""}}, false, []string{"system:masters"}, nil},
		{"trimmed groups replace the default", Options{BypassGroups: []string{" ops ", "sre"}}, false, []string{"ops", "sre"}, nil},
		{"operator and bypass users", Options{BypassUsers: []string{"a", ""}, OperatorUsername: "op"}, false, nil, []string{"a", "op"}},
		{"audit", Options{Mode: ModeAudit}, false, []string{"system:masters"}, nil},
		{"unknown mode", Options{Mode: "dry-run"}, true, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := newAuthorizer(tt.opts)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if tt.wantGroups != nil && !slices.Equal(sets.List(a.bypassGroups), tt.wantGroups) {
				t.Errorf("groups %v, want %v", sets.List(a.bypassGroups), tt.wantGroups)
			}
			if !slices.Equal(sets.List(a.bypassUsers), tt.wantUsers) {
				t.Errorf("users %v, want %v", sets.List(a.bypassUsers), tt.wantUsers)
			}
			if a.audit != (tt.opts.Mode == ModeAudit) {
				t.Errorf("audit = %v", a.audit)
			}
		})
	}
}
