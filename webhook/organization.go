package webhook

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/tenantauth/tenantauth/api/consts"
	tenantauthv1alpha1 "github.com/tenantauth/tenantauth/api/v1alpha1"
)

// +kubebuilder:webhook:path=/mutate-tenantauth-io-v1alpha1-organization,mutating=true,failurePolicy=fail,sideEffects=None,groups=tenantauth.io,resources=organizations,verbs=create;update,versions=v1alpha1,name=morganization.tenantauth.io,admissionReviewVersions=v1
// +kubebuilder:webhook:path=/validate-tenantauth-io-v1alpha1-organization,mutating=false,failurePolicy=fail,sideEffects=None,groups=tenantauth.io,resources=organizations,verbs=create;update;delete,versions=v1alpha1,name=vorganization.tenantauth.io,admissionReviewVersions=v1

var organizationsGR = tenantauthv1alpha1.GroupVersion.WithResource("organizations").GroupResource()

const kindOrganization = "Organization"

// OrganizationDefaulter fills in the defaults of an Organization, from
// package consts. The CRD schema declares the same defaults; the webhook
// repeats them so an object admitted under an older CRD still comes out
// complete.
type OrganizationDefaulter struct{}

var _ admission.Defaulter[*tenantauthv1alpha1.Organization] = &OrganizationDefaulter{}

// Default sets displayName and slug to metadata.name and every unset
// session, signing, auth-method and self-signup field to its default.
func (d *OrganizationDefaulter) Default(_ context.Context, org *tenantauthv1alpha1.Organization) error {
	s := &org.Spec
	if s.DisplayName == "" {
		s.DisplayName = org.Name
	}
	if s.Slug == "" {
		s.Slug = org.Name
	}
	setDuration(&s.Sessions.AccessTokenTTL, consts.DefaultAccessTokenTTL)
	setDuration(&s.Sessions.RefreshTokenIdleTTL, consts.DefaultRefreshTokenIdleTTL)
	setDuration(&s.Sessions.RefreshTokenAbsoluteTTL, consts.DefaultRefreshTokenAbsoluteTTL)
	setDuration(&s.Signing.RotationInterval, consts.DefaultRotationInterval)
	if s.Signing.Algorithm == "" {
		s.Signing.Algorithm = tenantauthv1alpha1.AlgES256
	}
	for _, b := range []**bool{&s.AuthMethods.Password, &s.AuthMethods.MagicLink, &s.AuthMethods.APIKeys} {
		if *b == nil {
			*b = ptr.To(true)
		}
	}
	if s.SelfSignup.DefaultRole == "" {
		s.SelfSignup.DefaultRole = consts.DefaultRole
	}
	return nil
}

func setDuration(d **metav1.Duration, def time.Duration) {
	if *d == nil {
		*d = &metav1.Duration{Duration: def}
	}
}

// OrganizationValidator validates Organizations and authorizes changes to
// them.
type OrganizationValidator struct {
	lookup *lookup
	authz  *authorizer
}

var _ admission.Validator[*tenantauthv1alpha1.Organization] = &OrganizationValidator{}

// ValidateCreate checks the slug, its uniqueness across the cluster, the
// role settings and the email domains (see domains.go). Anyone Kubernetes RBAC lets create an Organization may:
// a new Organization has no owner yet, and its creator makes the first
// owner Membership next.
func (v *OrganizationValidator) ValidateCreate(ctx context.Context, org *tenantauthv1alpha1.Organization) (admission.Warnings, error) {
	errs := validateOrganizationSpec(org)
	if len(errs) > 0 {
		return nil, invalid(kindOrganization, org.Name, errs)
	}
	dup, err := v.slugTaken(ctx, org)
	if err != nil {
		return nil, err
	}
	act, err := v.authz.actor(ctx, nil)
	if err != nil {
		return nil, err
	}
	unverified, warnings, err := v.checkSignupDomains(ctx, act, nil, org)
	if err != nil {
		return nil, err
	}
	return warnings, invalid(kindOrganization, org.Name, append(dup, unverified...))
}

// ValidateUpdate keeps the slug, refuses to drop custom roles still in use,
// and checks the requester's role.
func (v *OrganizationValidator) ValidateUpdate(ctx context.Context, old, org *tenantauthv1alpha1.Organization) (admission.Warnings, error) {
	var warnings admission.Warnings
	ownerExists, err := v.ownerExists(ctx, old)
	if err != nil {
		return nil, err
	}
	act, err := v.authz.actor(ctx, old)
	if err != nil {
		return nil, err
	}
	if err := v.authz.decide(organizationsGR, org.Name, organizationDenial(act, old, org, ownerExists), &warnings); err != nil {
		return warnings, err
	}
	errs := validateOrganizationSpec(org)
	if old.EffectiveSlug() != org.EffectiveSlug() {
		errs = append(errs, field.Invalid(field.NewPath("spec", "slug"), org.Spec.Slug,
			fmt.Sprintf("is immutable (it is %q): URLs and issued tokens use it; make a new Organization to change it", old.EffectiveSlug())))
	}
	inUse, err := v.removedRolesInUse(ctx, old, org)
	if err != nil {
		return warnings, err
	}
	errs = append(errs, inUse...)
	unverified, more, err := v.checkSignupDomains(ctx, act, old, org)
	if err != nil {
		return warnings, err
	}
	errs = append(errs, unverified...)
	return append(warnings, more...), invalid(kindOrganization, org.Name, errs)
}

// ValidateDelete lets only an owner delete an Organization, and only once
// it has no Memberships and no APIKeys left.
//
// Deletion policy: refuse while Memberships or APIKeys exist, rather than
// cascade. Deleting an Organization revokes every token and key of the
// tenant at once; making that a deliberate sequence (delete the keys and
// members, the owner's own Membership last, then the Organization) keeps a
// stray `kubectl delete` from wiping a tenant, and leaves no Membership
// behind that would grant its role again to a new Organization of the same
// name. Deletions in a terminating namespace are always allowed.
func (v *OrganizationValidator) ValidateDelete(ctx context.Context, org *tenantauthv1alpha1.Organization) (admission.Warnings, error) {
	warnings, err := v.validateDelete(ctx, org)
	if err != nil && v.lookup.namespaceTerminating(ctx, org.Namespace) {
		return warnings, nil
	}
	return warnings, err
}

func (v *OrganizationValidator) validateDelete(ctx context.Context, org *tenantauthv1alpha1.Organization) (admission.Warnings, error) {
	var warnings admission.Warnings
	ownerExists, err := v.ownerExists(ctx, org)
	if err != nil {
		return nil, err
	}
	act, err := v.authz.actor(ctx, org)
	if err != nil {
		return nil, err
	}
	if err := v.authz.decide(organizationsGR, org.Name, organizationDenial(act, org, nil, ownerExists), &warnings); err != nil {
		return warnings, err
	}
	members, keys, err := v.lookup.dependents(ctx, org.Namespace, org.Name)
	if err != nil {
		return warnings, err
	}
	if members+keys > 0 {
		return warnings, invalid(kindOrganization, org.Name, field.ErrorList{field.Forbidden(field.NewPath("metadata", "name"),
			fmt.Sprintf("Organization %q still has %d Membership(s) and %d APIKey(s): delete them first, the owners' Memberships last",
				org.Name, members, keys))})
	}
	return warnings, nil
}

func (v *OrganizationValidator) ownerExists(ctx context.Context, org *tenantauthv1alpha1.Organization) (bool, error) {
	owners, err := v.lookup.owners(ctx, org.Namespace, org.Name)
	return len(owners) > 0, err
}

func (v *OrganizationValidator) slugTaken(ctx context.Context, org *tenantauthv1alpha1.Organization) (field.ErrorList, error) {
	slug := org.EffectiveSlug()
	others, err := v.lookup.organizationsWithSlug(ctx, slug)
	if err != nil {
		return nil, err
	}
	for _, o := range others {
		if o.Namespace != org.Namespace || o.Name != org.Name {
			return field.ErrorList{duplicate(field.NewPath("spec", "slug"), slug,
				fmt.Sprintf("Organization %s/%s already uses it and slugs are unique across the cluster: choose another", o.Namespace, o.Name))}, nil
		}
	}
	return nil, nil
}

// removedRolesInUse refuses to drop a custom role a Membership still holds:
// that member would silently lose every right.
func (v *OrganizationValidator) removedRolesInUse(ctx context.Context, old, org *tenantauthv1alpha1.Organization) (field.ErrorList, error) {
	var errs field.ErrorList
	for _, r := range old.Spec.Roles {
		if _, kept := org.LookupRole(r.Name); kept {
			continue
		}
		holders, err := v.lookup.memberships(ctx, org.Namespace, IndexOrgRole, orgRoleKey(org.Name, r.Name))
		if err != nil {
			return nil, err
		}
		if len(holders) > 0 {
			errs = append(errs, field.Forbidden(field.NewPath("spec", "roles"),
				fmt.Sprintf("custom role %q is still held by %d Membership(s) (e.g. %q): give them another role first",
					r.Name, len(holders), holders[0].Name)))
		}
	}
	return errs, nil
}

// validateOrganizationSpec checks what needs no other object. The CRD
// schema checks most of it too; repeating it here keeps one clear message
// per field whatever version of the CRD is installed.
func validateOrganizationSpec(org *tenantauthv1alpha1.Organization) field.ErrorList {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	slug := org.EffectiveSlug()
	for _, msg := range validation.IsDNS1123Label(slug) {
		errs = append(errs, field.Invalid(spec.Child("slug"), slug, msg+": use lower-case letters, digits and '-', e.g. acme-inc"))
	}
	switch org.Spec.Signing.Algorithm {
	case "", tenantauthv1alpha1.AlgES256, tenantauthv1alpha1.AlgEdDSA, tenantauthv1alpha1.AlgRS256:
	default:
		errs = append(errs, field.NotSupported(spec.Child("signing", "algorithm"), org.Spec.Signing.Algorithm,
			[]tenantauthv1alpha1.SigningAlgorithm{tenantauthv1alpha1.AlgES256, tenantauthv1alpha1.AlgEdDSA, tenantauthv1alpha1.AlgRS256}))
	}
	builtins := tenantauthv1alpha1.BuiltinRoles()
	for i, r := range org.Spec.Roles {
		p := spec.Child("roles").Index(i)
		if slices.ContainsFunc(builtins, func(b tenantauthv1alpha1.Role) bool { return b.Name == r.Name }) {
			errs = append(errs, field.Invalid(p.Child("name"), r.Name, "is a built-in role: give the custom role another name"))
		}
		if r.Rank < 1 || r.Rank >= rankOwner {
			errs = append(errs, field.Invalid(p.Child("rank"), r.Rank, fmt.Sprintf("must be between 1 and %d: only owner ranks %d", rankOwner-1, rankOwner)))
		}
		for j, perm := range r.Permissions {
			if ownerOnlyPermissions.Has(perm) {
				errs = append(errs, field.Forbidden(p.Child("permissions").Index(j),
					fmt.Sprintf("%q belongs to owners only: a custom role may not carry it", perm)))
			}
		}
	}
	errs = append(errs, validateDomainNames(org)...)
	if d := org.Spec.SelfSignup.DefaultRole; d != "" {
		p := spec.Child("selfSignup", "defaultRole")
		if _, ok := org.LookupRole(d); !ok {
			errs = append(errs, field.Invalid(p, d, "unknown role: use "+knownRoles(org)))
		} else if d == tenantauthv1alpha1.RoleOwner {
			errs = append(errs, field.Forbidden(p, "self-signed-up members may not become owners: use a lower role such as member"))
		}
	}
	return errs
}

// knownRoles lists the roles an organization defines, for error messages.
func knownRoles(org *tenantauthv1alpha1.Organization) string {
	var names []string
	for _, r := range tenantauthv1alpha1.BuiltinRoles() {
		names = append(names, r.Name)
	}
	for _, r := range org.Spec.Roles {
		names = append(names, r.Name)
	}
	return "one of " + strings.Join(names, ", ")
}
