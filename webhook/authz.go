package webhook

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	tenantauthv1alpha1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/internal/identity"
)

// Authorization by admission: who inside an organization may create,
// change or delete its Organization, Memberships and APIKeys.
//
// Kubernetes RBAC decides who may touch tenantauth objects in a namespace at
// all; these rules then decide, inside one organization, by the requester's
// Membership:
//
//   - bypass groups, bypass users and the operator pass;
//   - owner may do anything;
//   - admin may manage Memberships up to admin and any APIKey, and edit the
//     Organization, but not grant, change or remove owner nor delete it;
//   - manager may create, edit and delete APIKeys with scopes up to write;
//   - member and viewer may change nothing;
//   - nobody may raise their own role;
//   - custom roles act by rank: rank 80 and above as admin, 60 and above as
//     manager, and nobody but an owner may give a role above their own;
//   - rank is not enough to give a role: a person may grant a role, built-in
//     or custom, or make it the self-signup role, only if they hold every
//     permission it carries. Else a custom role ranked as admin but holding
//     little could hand out the built-in admin role and its permissions;
//   - a custom role may carry only permissions the person defining or
//     assigning it holds, and org:delete and org:transfer belong to owners
//     alone (no custom role carries them);
//   - the auth server's service account may only create, at verified
//     signup, an enabled Membership with the organization's self-signup
//     role, never owner, for an email on an allowed domain;
//   - an organization without an owner Membership is governed by Kubernetes
//     RBAC alone: anyone it lets through may create the Organization, its
//     first owner Membership, edit or delete it. That is the bootstrap path:
//     create the Organization, then its first owner.
//
// A disabled Membership, or one whose role no longer exists, grants nothing.

// ownerOnlyPermissions are never carried by a custom role.
var ownerOnlyPermissions = sets.New(tenantauthv1alpha1.PermOrgDelete, tenantauthv1alpha1.PermOwnershipMove)

var (
	rankOwner   = builtinRank(tenantauthv1alpha1.RoleOwner)
	rankAdmin   = builtinRank(tenantauthv1alpha1.RoleAdmin)
	rankManager = builtinRank(tenantauthv1alpha1.RoleManager)
)

func builtinRank(name string) int32 {
	r, ok := (&tenantauthv1alpha1.Organization{}).LookupRole(name)
	if !ok {
		panic("built-in role " + name + " missing from the role table")
	}
	return r.Rank
}

// authorizer applies the role table to admission requests.
type authorizer struct {
	audit        bool
	bypassGroups sets.Set[string]
	bypassUsers  sets.Set[string]
	// signupUser is the auth server's user name: it passes only the
	// signup rule, never the role table.
	signupUser string
	lookup     *lookup
}

// actor is the requester as the role table sees them.
type actor struct {
	user   string
	email  string
	bypass bool
	// signup is the auth server creating a Membership at verified signup.
	signup bool
	// member is the requester's Membership in the target organization, nil
	// when they have none.
	member *tenantauthv1alpha1.Membership
	// role is the role the Membership grants; zero when it grants none.
	role tenantauthv1alpha1.Role
}

// actor identifies the requester of the admission request in ctx and finds
// their Membership in org (which may be nil for a missing organization).
func (a *authorizer) actor(ctx context.Context, org *tenantauthv1alpha1.Organization) (actor, error) {
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return actor{}, fmt.Errorf("identify requester: %w", err)
	}
	u := req.UserInfo
	act := actor{user: u.Username, email: identity.NormalizeEmail(u.Username)}
	if a.bypassUsers.Has(u.Username) || slices.ContainsFunc(u.Groups, a.bypassGroups.Has) {
		act.bypass = true
		return act, nil
	}
	if a.signupUser != "" && u.Username == a.signupUser {
		act.signup = true
		return act, nil
	}
	if org == nil {
		return act, nil
	}
	m, err := a.lookup.membershipOf(ctx, org.Namespace, org.Name, act.email)
	if err != nil {
		return actor{}, err
	}
	act.member = m
	if m != nil && !m.Spec.Disabled {
		if r, ok := org.LookupRole(roleOf(m)); ok {
			act.role = r
		}
	}
	return act, nil
}

func (act actor) isOwner() bool { return act.role.Name == tenantauthv1alpha1.RoleOwner }

// standing says who the requester is in the organization, so a denial tells
// them what they have as well as what they need.
func (act actor) standing(org string) string {
	switch {
	case act.member == nil:
		return fmt.Sprintf("you (%s) have no Membership in organization %q", act.user, org)
	case act.member.Spec.Disabled:
		return fmt.Sprintf("your Membership %q in organization %q is disabled", act.member.Name, org)
	case act.role.Name == "":
		return fmt.Sprintf("your Membership %q in organization %q has role %q, which the organization does not define",
			act.member.Name, org, act.member.Spec.Role)
	}
	return fmt.Sprintf("you (%s) have role %q (rank %d) in organization %q", act.user, act.role.Name, act.role.Rank, org)
}

// needs is the denial for an action that takes at least role (of rank).
func (act actor) needs(action, role string, rank int32, org string) string {
	if rank >= rankOwner {
		return fmt.Sprintf("%s needs role %q; %s", action, role, act.standing(org))
	}
	return fmt.Sprintf("%s needs role %q or higher (rank %d); %s", action, role, rank, act.standing(org))
}

// decide turns a denial reason into the webhook's answer: a Forbidden error
// in enforce mode, a warning in audit mode.
func (a *authorizer) decide(gr schema.GroupResource, name, reason string, warnings *admission.Warnings) error {
	if reason == "" {
		return nil
	}
	if a.audit {
		*warnings = append(*warnings, "tenantauth admission audit: enforce mode would deny this request: "+reason)
		return nil
	}
	return apierrors.NewForbidden(gr, name, errors.New(reason))
}

// rankIn is the rank of role in org, 0 when the organization does not
// define it.
func rankIn(org *tenantauthv1alpha1.Organization, role string) int32 {
	r, _ := org.LookupRole(role)
	return r.Rank
}

// organizationDenial decides an update (cur set) or delete (cur nil) of org.
func organizationDenial(act actor, old, cur *tenantauthv1alpha1.Organization, ownerExists bool) string {
	if act.signup {
		return "the auth server may not change Organizations"
	}
	if act.bypass || !ownerExists || act.isOwner() {
		return ""
	}
	if cur == nil {
		return act.needs("deleting an Organization", tenantauthv1alpha1.RoleOwner, rankOwner, old.Name)
	}
	if act.role.Rank < rankAdmin {
		return act.needs("changing an Organization", tenantauthv1alpha1.RoleAdmin, rankAdmin, old.Name)
	}
	for _, name := range changedRoles(old, cur) {
		oldRank, newRank := rankIn(old, name), rankIn(cur, name)
		if name == act.role.Name && newRank > oldRank {
			return fmt.Sprintf("nobody may raise their own role: you hold custom role %q and may not raise its rank from %d to %d",
				name, oldRank, newRank)
		}
		if max(oldRank, newRank) > act.role.Rank {
			return fmt.Sprintf("changing custom role %q (rank %d) takes a rank of at least %d or role %q; %s",
				name, max(oldRank, newRank), max(oldRank, newRank), tenantauthv1alpha1.RoleOwner, act.standing(old.Name))
		}
		if r, ok := cur.LookupRole(name); ok {
			if missing := permissionsBeyond(r, act.role); len(missing) > 0 {
				return fmt.Sprintf("custom role %q carries permissions you do not hold (%v): a role may carry only permissions its author holds; %s",
					name, missing, act.standing(old.Name))
			}
		}
	}
	if d := selfSignupRole(cur); d != selfSignupRole(old) {
		// Every self-signed-up member gets this role, so choosing it is
		// granting it: the same rank and permission rules apply.
		// validateOrganizationSpec refuses owner and unknown roles.
		r, _ := cur.LookupRole(d)
		if r.Rank > act.role.Rank {
			return fmt.Sprintf("making %q the self-signup role takes a rank of at least %d; %s",
				d, r.Rank, act.standing(old.Name))
		}
		if missing := permissionsBeyond(r, act.role); len(missing) > 0 {
			return fmt.Sprintf("the self-signup role %q carries permissions you do not hold (%v): every self-signed-up member would get them; %s",
				d, missing, act.standing(old.Name))
		}
	}
	return ""
}

// changedRoles names the custom roles added, removed or changed by an update.
func changedRoles(old, cur *tenantauthv1alpha1.Organization) []string {
	before := map[string]tenantauthv1alpha1.Role{}
	for _, r := range old.Spec.Roles {
		before[r.Name] = r
	}
	var changed []string
	seen := sets.New[string]()
	for _, r := range cur.Spec.Roles {
		seen.Insert(r.Name)
		if b, ok := before[r.Name]; !ok || b.Rank != r.Rank || !slices.Equal(b.Permissions, r.Permissions) {
			changed = append(changed, r.Name)
		}
	}
	for _, r := range old.Spec.Roles {
		if !seen.Has(r.Name) {
			changed = append(changed, r.Name)
		}
	}
	return changed
}

// membershipDenial decides a create (old nil), update, or delete (cur nil)
// of a Membership of org.
func membershipDenial(act actor, org *tenantauthv1alpha1.Organization, old, cur *tenantauthv1alpha1.Membership, ownerExists bool) string {
	if act.bypass {
		return ""
	}
	if act.signup {
		return signupDenial(org, old, cur)
	}
	if old == nil && roleOf(cur) == tenantauthv1alpha1.RoleOwner && !ownerExists {
		return "" // the bootstrap owner
	}
	var oldRole, newRole string
	var oldRank, newRank int32
	if old != nil {
		oldRole, oldRank = roleOf(old), rankIn(org, roleOf(old))
	}
	if cur != nil {
		newRole, newRank = roleOf(cur), rankIn(org, roleOf(cur))
	}
	if old != nil && cur != nil && identity.NormalizeEmail(cur.Spec.Email) == act.email && (newRank > oldRank || gainsPermissions(org, oldRole, newRole)) {
		return fmt.Sprintf("nobody may raise their own role: you may not change your role from %q to %q in organization %q",
			oldRole, newRole, org.Name)
	}
	if (oldRole == tenantauthv1alpha1.RoleOwner || newRole == tenantauthv1alpha1.RoleOwner) && !act.isOwner() {
		return act.needs("granting, changing or removing the owner role", tenantauthv1alpha1.RoleOwner, rankOwner, org.Name)
	}
	if act.role.Rank < rankAdmin {
		return act.needs("changing Memberships", tenantauthv1alpha1.RoleAdmin, rankAdmin, org.Name)
	}
	if top := max(oldRank, newRank); top > act.role.Rank {
		role := newRole
		if oldRank > newRank {
			role = oldRole
		}
		return fmt.Sprintf("role %q (rank %d) is above your own: only members of at least that rank may give, change or remove it; %s",
			role, top, act.standing(org.Name))
	}
	// Built-in roles too: rank alone would let a custom role ranked as
	// admin, with few permissions, give the built-in admin role.
	if r, ok := org.LookupRole(newRole); ok && cur != nil && !act.isOwner() {
		if missing := permissionsBeyond(r, act.role); len(missing) > 0 {
			return fmt.Sprintf("role %q carries permissions you do not hold (%v): you may assign only roles within your own permissions; %s",
				newRole, missing, act.standing(org.Name))
		}
	}
	return ""
}

// signupDenial is the one rule the auth server passes: creating, at a
// verified signup, an enabled Membership with the organization's
// self-signup role (never owner) for an email on an allowed domain.
func signupDenial(org *tenantauthv1alpha1.Organization, old, cur *tenantauthv1alpha1.Membership) string {
	if old != nil || cur == nil {
		return "the auth server may only create Memberships"
	}
	want := selfSignupRole(org)
	role := roleOf(cur)
	if role != want || role == tenantauthv1alpha1.RoleOwner || cur.Spec.Disabled {
		return fmt.Sprintf("the auth server may only create enabled Memberships with the self-signup role %q, not %q", want, role)
	}
	email := identity.NormalizeEmail(cur.Spec.Email)
	domain := email[strings.LastIndexByte(email, '@')+1:]
	// Spelled as the auth server reads the list: any case, an optional
	// leading "@".
	allowed := slices.ContainsFunc(org.Spec.SelfSignup.AllowedEmailDomains, func(d string) bool {
		return strings.EqualFold(strings.TrimPrefix(strings.TrimSpace(d), "@"), domain)
	})
	if domain == "" || !strings.Contains(email, "@") || !allowed {
		return fmt.Sprintf("organization %q does not admit self-signup from domain %q", org.Name, domain)
	}
	return ""
}

// selfSignupRole is the role self-signed-up members get: the defaulting
// webhook fills it, but an object admitted without it still means member.
func selfSignupRole(org *tenantauthv1alpha1.Organization) string {
	if d := org.Spec.SelfSignup.DefaultRole; d != "" {
		return d
	}
	return tenantauthv1alpha1.RoleMember
}

// permissionsBeyond lists the permissions of r that holder lacks.
func permissionsBeyond(r, holder tenantauthv1alpha1.Role) []string {
	have := sets.New(holder.Permissions...)
	var out []string
	for _, p := range r.Permissions {
		if !have.Has(p) {
			out = append(out, p)
		}
	}
	return out
}

// gainsPermissions reports whether moving from role from to role to adds
// any permission: a raise even at the same rank.
func gainsPermissions(org *tenantauthv1alpha1.Organization, from, to string) bool {
	f, _ := org.LookupRole(from)
	t, ok := org.LookupRole(to)
	return ok && len(permissionsBeyond(t, f)) > 0
}

// apiKeyDenial decides a create (old nil), update, or delete (cur nil) of
// an APIKey of org.
func apiKeyDenial(act actor, org *tenantauthv1alpha1.Organization, old, cur *tenantauthv1alpha1.APIKey) string {
	if act.bypass {
		return ""
	}
	if act.signup {
		return "the auth server may not change APIKeys"
	}
	if act.role.Rank < rankManager {
		return act.needs("changing APIKeys", tenantauthv1alpha1.RoleManager, rankManager, org.Name)
	}
	if act.role.Rank >= rankAdmin {
		return ""
	}
	for _, k := range []*tenantauthv1alpha1.APIKey{old, cur} {
		if k == nil {
			continue
		}
		for _, s := range k.Spec.Scopes {
			if tenantauthv1alpha1.ScopeRank(s) > tenantauthv1alpha1.ScopeRank(tenantauthv1alpha1.ScopeWrite) {
				return act.needs(fmt.Sprintf("an APIKey with scope %q (managers may use scopes up to %q)", s, tenantauthv1alpha1.ScopeWrite),
					tenantauthv1alpha1.RoleAdmin, rankAdmin, org.Name)
			}
		}
	}
	return ""
}
