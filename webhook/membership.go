package webhook

import (
	"context"
	"fmt"
	"net/mail"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	tenantauthv1alpha1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/internal/identity"
)

// +kubebuilder:webhook:path=/mutate-tenantauth-io-v1alpha1-membership,mutating=true,failurePolicy=fail,sideEffects=None,groups=tenantauth.io,resources=memberships,verbs=create;update,versions=v1alpha1,name=mmembership.tenantauth.io,admissionReviewVersions=v1
// +kubebuilder:webhook:path=/validate-tenantauth-io-v1alpha1-membership,mutating=false,failurePolicy=fail,sideEffects=None,groups=tenantauth.io,resources=memberships,verbs=create;update;delete,versions=v1alpha1,name=vmembership.tenantauth.io,admissionReviewVersions=v1

var membershipsGR = tenantauthv1alpha1.GroupVersion.WithResource("memberships").GroupResource()

const kindMembership = "Membership"

// MembershipDefaulter fills in the defaults of a Membership.
type MembershipDefaulter struct{}

var _ admission.Defaulter[*tenantauthv1alpha1.Membership] = &MembershipDefaulter{}

// Default trims and lower-cases the email, so one person is one Membership
// and one user ID whatever case they were invited with, and sets the role
// to member when unset. Doing it on updates too lets a manifest written
// with "Alice@Example.com" be re-applied against the stored lower-case
// email without tripping the email's immutability rule.
func (d *MembershipDefaulter) Default(_ context.Context, m *tenantauthv1alpha1.Membership) error {
	m.Spec.Email = identity.NormalizeEmail(m.Spec.Email)
	if m.Spec.Role == "" {
		m.Spec.Role = tenantauthv1alpha1.RoleMember
	}
	return nil
}

// MembershipValidator validates Memberships and authorizes changes to them.
type MembershipValidator struct {
	lookup *lookup
	authz  *authorizer
}

var _ admission.Validator[*tenantauthv1alpha1.Membership] = &MembershipValidator{}

// ValidateCreate checks the organization exists, the email and role, that
// the email has no other Membership in the organization, and the
// requester's role.
func (v *MembershipValidator) ValidateCreate(ctx context.Context, m *tenantauthv1alpha1.Membership) (admission.Warnings, error) {
	org, err := v.lookup.organization(ctx, m.Namespace, m.Spec.Organization)
	if err != nil {
		return nil, err
	}
	if errs := organizationRef(m.Namespace, m.Spec.Organization, org); errs != nil {
		return nil, invalid(kindMembership, m.Name, errs)
	}
	warnings, err := v.authorize(ctx, org, nil, m)
	if err != nil {
		return warnings, err
	}
	errs := validateMembershipSpec(org, m)
	others, err := v.lookup.memberships(ctx, m.Namespace, IndexOrgEmail, orgEmailKey(org.Name, m.Spec.Email))
	if err != nil {
		return warnings, err
	}
	for _, o := range others {
		if o.Name != m.Name {
			errs = append(errs, duplicate(field.NewPath("spec", "email"), m.Spec.Email,
				fmt.Sprintf("Membership %q already gives this email a role in organization %q: edit that one instead", o.Name, org.Name)))
			break
		}
	}
	return warnings, invalid(kindMembership, m.Name, errs)
}

// ValidateUpdate keeps the organization and email, checks the role, keeps
// at least one active owner, and checks the requester's role.
func (v *MembershipValidator) ValidateUpdate(ctx context.Context, old, m *tenantauthv1alpha1.Membership) (admission.Warnings, error) {
	spec := field.NewPath("spec")
	var errs field.ErrorList
	if m.Spec.Organization != old.Spec.Organization {
		errs = append(errs, field.Invalid(spec.Child("organization"), m.Spec.Organization,
			"is immutable: make a new Membership in the other organization and delete this one"))
	}
	if identity.NormalizeEmail(m.Spec.Email) != identity.NormalizeEmail(old.Spec.Email) {
		errs = append(errs, field.Invalid(spec.Child("email"), m.Spec.Email,
			"is immutable: make a new Membership for the new email and delete this one"))
	}
	if len(errs) > 0 {
		return nil, invalid(kindMembership, m.Name, errs)
	}
	org, err := v.lookup.organization(ctx, m.Namespace, m.Spec.Organization)
	if err != nil {
		return nil, err
	}
	if org == nil {
		if equality.Semantic.DeepEqual(old.Spec, m.Spec) {
			return nil, nil // metadata-only edits, e.g. finalizers, of an orphan
		}
		return nil, invalid(kindMembership, m.Name, organizationRef(m.Namespace, m.Spec.Organization, nil))
	}
	warnings, err := v.authorize(ctx, org, old, m)
	if err != nil {
		return warnings, err
	}
	errs = validateMembershipSpec(org, m)
	if activeOwner(old) && !activeOwner(m) {
		others, err := v.otherActiveOwners(ctx, m)
		if err != nil {
			return warnings, err
		}
		if others == 0 {
			p, verb := spec.Child("role"), "demote"
			if m.Spec.Disabled && roleOf(m) == tenantauthv1alpha1.RoleOwner {
				p, verb = spec.Child("disabled"), "disable"
			}
			errs = append(errs, field.Forbidden(p, fmt.Sprintf(
				"cannot %s the last owner of organization %q: make another Membership owner first", verb, org.Name)))
		}
	}
	return warnings, invalid(kindMembership, m.Name, errs)
}

// ValidateDelete checks the requester's role and keeps at least one active
// owner while the organization has anything else in it. The last owner may
// leave an organization they have emptied of other Memberships and APIKeys:
// that is the step before deleting it (see OrganizationValidator).
func (v *MembershipValidator) ValidateDelete(ctx context.Context, m *tenantauthv1alpha1.Membership) (admission.Warnings, error) {
	warnings, err := v.validateDelete(ctx, m)
	if err != nil && v.lookup.namespaceTerminating(ctx, m.Namespace) {
		return warnings, nil
	}
	return warnings, err
}

func (v *MembershipValidator) validateDelete(ctx context.Context, m *tenantauthv1alpha1.Membership) (admission.Warnings, error) {
	org, err := v.lookup.organization(ctx, m.Namespace, m.Spec.Organization)
	if err != nil || org == nil || org.DeletionTimestamp != nil {
		return nil, err // an orphan has no role table to apply
	}
	warnings, err := v.authorize(ctx, org, m, nil)
	if err != nil || !activeOwner(m) {
		return warnings, err
	}
	others, err := v.otherActiveOwners(ctx, m)
	if err != nil || others > 0 {
		return warnings, err
	}
	members, keys, err := v.lookup.dependents(ctx, m.Namespace, org.Name)
	if err != nil {
		return warnings, err
	}
	if members <= 1 && keys == 0 {
		return warnings, nil
	}
	return warnings, invalid(kindMembership, m.Name, field.ErrorList{field.Forbidden(field.NewPath("spec", "role"), fmt.Sprintf(
		"cannot delete the last owner of organization %q: make another Membership owner first (or, to dismantle the organization, delete its %d other Membership(s) and %d APIKey(s) first)",
		org.Name, members-1, keys))})
}

func (v *MembershipValidator) authorize(ctx context.Context, org *tenantauthv1alpha1.Organization, old, cur *tenantauthv1alpha1.Membership) (admission.Warnings, error) {
	var warnings admission.Warnings
	owners, err := v.lookup.owners(ctx, org.Namespace, org.Name)
	if err != nil {
		return nil, err
	}
	act, err := v.authz.actor(ctx, org)
	if err != nil {
		return nil, err
	}
	target := cur
	if target == nil {
		target = old
	}
	if act.signup && cur != nil {
		if name, ok := cur.Annotations[tenantauthv1alpha1.AnnotationSSOConnection]; ok {
			reason, err := v.ssoJIT(ctx, org, old, cur, name)
			if err != nil {
				return nil, err
			}
			return warnings, v.authz.decide(membershipsGR, target.Name, reason, &warnings)
		}
	}
	return warnings, v.authz.decide(membershipsGR, target.Name, membershipDenial(act, org, old, cur, len(owners) > 0), &warnings)
}

// otherActiveOwners counts the enabled owners of m's organization besides m.
func (v *MembershipValidator) otherActiveOwners(ctx context.Context, m *tenantauthv1alpha1.Membership) (int, error) {
	owners, err := v.lookup.owners(ctx, m.Namespace, m.Spec.Organization)
	n := 0
	for i := range owners {
		if owners[i].Name != m.Name && activeOwner(&owners[i]) {
			n++
		}
	}
	return n, err
}

func activeOwner(m *tenantauthv1alpha1.Membership) bool {
	return roleOf(m) == tenantauthv1alpha1.RoleOwner && !m.Spec.Disabled
}

// organizationRef checks that a Membership or APIKey refers to a usable
// Organization.
func organizationRef(namespace, name string, org *tenantauthv1alpha1.Organization) field.ErrorList {
	p := field.NewPath("spec", "organization")
	if org == nil {
		return field.ErrorList{field.Invalid(p, name,
			fmt.Sprintf("no Organization %q in namespace %q: create it first, or name an existing one", name, namespace))}
	}
	if org.DeletionTimestamp != nil {
		return field.ErrorList{field.Invalid(p, name, fmt.Sprintf("Organization %q is being deleted: name another one", name))}
	}
	return nil
}

func validateMembershipSpec(org *tenantauthv1alpha1.Organization, m *tenantauthv1alpha1.Membership) field.ErrorList {
	spec := field.NewPath("spec")
	var errs field.ErrorList
	if msg := emailProblem(m.Spec.Email); msg != "" {
		errs = append(errs, field.Invalid(spec.Child("email"), m.Spec.Email, msg))
	}
	if _, ok := org.LookupRole(roleOf(m)); !ok {
		errs = append(errs, field.Invalid(spec.Child("role"), m.Spec.Role,
			fmt.Sprintf("unknown role in organization %q: use %s", org.Name, knownRoles(org))))
	}
	return errs
}

// emailProblem says what is wrong with an email, or "" when nothing is.
func emailProblem(email string) string {
	canonical, err := identity.CanonicalEmail(email)
	if err != nil {
		return err.Error()
	}
	if email != canonical {
		return "must be in canonical form (lower-case, NFKC-normalised, IDNA domain, no surrounding spaces): " + canonical
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Name != "" || a.Address != email {
		return "must be a plain email address, such as alice@example.com"
	}
	at := strings.LastIndexByte(email, '@')
	if !strings.Contains(email[at+1:], ".") {
		return "must have a domain with a dot, such as example.com"
	}
	return ""
}
