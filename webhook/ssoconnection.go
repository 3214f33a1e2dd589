package webhook

import (
	"context"
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	tenantauthv1alpha1 "github.com/tenantauth/tenantauth/api/v1alpha1"
)

// +kubebuilder:webhook:path=/mutate-tenantauth-io-v1alpha1-ssoconnection,mutating=true,failurePolicy=fail,sideEffects=None,groups=tenantauth.io,resources=ssoconnections,verbs=create;update,versions=v1alpha1,name=mssoconnection.tenantauth.io,admissionReviewVersions=v1
// +kubebuilder:webhook:path=/validate-tenantauth-io-v1alpha1-ssoconnection,mutating=false,failurePolicy=fail,sideEffects=None,groups=tenantauth.io,resources=ssoconnections,verbs=create;update;delete,versions=v1alpha1,name=vssoconnection.tenantauth.io,admissionReviewVersions=v1

// Authorization of SSOConnections: a connection decides who signs in to an
// organization and with which role its members are made just in time, so
//
//   - bypass groups, bypass users and the operator pass;
//   - only owners and admins (or custom roles of admin rank) may create,
//     change or delete one; an organization without an owner gets none
//     from anyone else, unlike its first owner Membership;
//   - the roles it gives (defaultRole, roleMappings) are never owner, must
//     exist in the organization, and may not rank above the requester's
//     role nor carry permissions the requester lacks (owners excepted), so
//     nobody grants through the IdP what they could not grant by hand;
//   - the auth server may change none.

var ssoConnectionsGR = tenantauthv1alpha1.GroupVersion.WithResource("ssoconnections").GroupResource()

const kindSSOConnection = "SSOConnection"

// defaultOIDCScopes are requested when spec.oidc.scopes is unset.
var defaultOIDCScopes = []string{"openid", "email", "profile"}

// SSOConnectionDefaulter fills in the defaults of an SSOConnection.
type SSOConnectionDefaulter struct{}

var _ admission.Defaulter[*tenantauthv1alpha1.SSOConnection] = &SSOConnectionDefaulter{}

// Default sets defaultRole to member, and the OIDC scopes to openid, email
// and profile when unset: the safe choices for members made just in time.
func (d *SSOConnectionDefaulter) Default(_ context.Context, c *tenantauthv1alpha1.SSOConnection) error {
	if c.Spec.DefaultRole == "" {
		c.Spec.DefaultRole = tenantauthv1alpha1.RoleMember
	}
	if c.Spec.OIDC != nil && len(c.Spec.OIDC.Scopes) == 0 {
		c.Spec.OIDC.Scopes = slices.Clone(defaultOIDCScopes)
	}
	return nil
}

// SSOConnectionValidator validates SSOConnections and authorizes changes
// to them.
type SSOConnectionValidator struct {
	lookup *lookup
	authz  *authorizer
}

var _ admission.Validator[*tenantauthv1alpha1.SSOConnection] = &SSOConnectionValidator{}

// ValidateCreate checks the organization exists, the requester is its
// owner or admin, and the roles the connection gives.
func (v *SSOConnectionValidator) ValidateCreate(ctx context.Context, c *tenantauthv1alpha1.SSOConnection) (admission.Warnings, error) {
	return v.validate(ctx, nil, c)
}

// ValidateUpdate keeps the organization and checks as ValidateCreate does.
func (v *SSOConnectionValidator) ValidateUpdate(ctx context.Context, old, c *tenantauthv1alpha1.SSOConnection) (admission.Warnings, error) {
	if c.Spec.Organization != old.Spec.Organization {
		return nil, invalid(kindSSOConnection, c.Name, field.ErrorList{field.Invalid(field.NewPath("spec", "organization"),
			c.Spec.Organization, "is immutable: make a new SSOConnection for the other organization and delete this one")})
	}
	if equality.Semantic.DeepEqual(old.Spec, c.Spec) {
		// Metadata-only edits (finalizers, labels) of an orphan: there
		// is no role table to apply, and nothing new is granted.
		org, err := v.lookup.organization(ctx, c.Namespace, c.Spec.Organization)
		if err != nil || org == nil {
			return nil, err
		}
	}
	return v.validate(ctx, old, c)
}

// ValidateDelete lets only owners and admins delete a connection, except
// in a terminating namespace and for an orphan.
func (v *SSOConnectionValidator) ValidateDelete(ctx context.Context, c *tenantauthv1alpha1.SSOConnection) (admission.Warnings, error) {
	org, err := v.lookup.organization(ctx, c.Namespace, c.Spec.Organization)
	if err != nil || org == nil {
		return nil, err
	}
	var warnings admission.Warnings
	act, err := v.authz.actor(ctx, org)
	if err != nil {
		return nil, err
	}
	err = v.authz.decide(ssoConnectionsGR, c.Name, ssoConnectionDenial(act, org, c, nil), &warnings)
	if err != nil && v.lookup.namespaceTerminating(ctx, c.Namespace) {
		return warnings, nil
	}
	return warnings, err
}

func (v *SSOConnectionValidator) validate(ctx context.Context, old, c *tenantauthv1alpha1.SSOConnection) (admission.Warnings, error) {
	org, err := v.lookup.organization(ctx, c.Namespace, c.Spec.Organization)
	if err != nil {
		return nil, err
	}
	if errs := organizationRef(c.Namespace, c.Spec.Organization, org); errs != nil {
		return nil, invalid(kindSSOConnection, c.Name, errs)
	}
	if errs := validateSSOConnectionSpec(org, c); len(errs) > 0 {
		return nil, invalid(kindSSOConnection, c.Name, errs)
	}
	var warnings admission.Warnings
	act, err := v.authz.actor(ctx, org)
	if err != nil {
		return nil, err
	}
	return warnings, v.authz.decide(ssoConnectionsGR, c.Name, ssoConnectionDenial(act, org, old, c), &warnings)
}

// ssoConnectionDenial decides a create (old nil), update, or delete (cur
// nil) of an SSOConnection of org.
func ssoConnectionDenial(act actor, org *tenantauthv1alpha1.Organization, old, cur *tenantauthv1alpha1.SSOConnection) string {
	if act.bypass {
		return ""
	}
	if act.signup {
		return "the auth server may not change SSOConnections"
	}
	if act.role.Rank < rankAdmin {
		return act.needs("changing SSOConnections", tenantauthv1alpha1.RoleAdmin, rankAdmin, org.Name)
	}
	if cur == nil || act.isOwner() {
		return ""
	}
	for _, role := range grantedRoles(cur) {
		r, ok := org.LookupRole(role)
		if !ok {
			continue // validateSSOConnectionSpec refuses it
		}
		if r.Rank > act.role.Rank {
			return fmt.Sprintf("role %q (rank %d) is above your own: an SSOConnection may give only roles up to yours; %s",
				role, r.Rank, act.standing(org.Name))
		}
		if missing := permissionsBeyond(r, act.role); len(missing) > 0 {
			return fmt.Sprintf("role %q carries permissions you do not hold (%v): an SSOConnection may give only roles within your own permissions; %s",
				role, missing, act.standing(org.Name))
		}
	}
	return ""
}

// grantedRoles are the roles a connection gives members made just in
// time.
func grantedRoles(c *tenantauthv1alpha1.SSOConnection) []string {
	roles := []string{c.EffectiveDefaultRole()}
	for _, m := range c.Spec.RoleMappings {
		roles = append(roles, m.Role)
	}
	return roles
}

// validateSSOConnectionSpec checks what needs only the organization. The
// CRD schema checks the protocol blocks too; repeating the rules here keeps
// one clear message per field whatever version of the CRD is installed.
func validateSSOConnectionSpec(org *tenantauthv1alpha1.Organization, c *tenantauthv1alpha1.SSOConnection) field.ErrorList {
	spec := field.NewPath("spec")
	var errs field.ErrorList
	switch c.Spec.Protocol {
	case tenantauthv1alpha1.ProtocolOIDC:
		if c.Spec.OIDC == nil {
			errs = append(errs, field.Required(spec.Child("oidc"), "protocol oidc needs the issuer and client ID"))
		}
		if c.Spec.SAML != nil {
			errs = append(errs, field.Forbidden(spec.Child("saml"), "protocol is oidc: remove spec.saml"))
		}
	case tenantauthv1alpha1.ProtocolSAML:
		if c.Spec.SAML == nil {
			errs = append(errs, field.Required(spec.Child("saml"), "protocol saml needs metadataURL or metadataXML"))
		} else if (c.Spec.SAML.MetadataURL == "") == (c.Spec.SAML.MetadataXML == "") {
			errs = append(errs, field.Invalid(spec.Child("saml"), "", "set exactly one of metadataURL and metadataXML"))
		}
		if c.Spec.OIDC != nil {
			errs = append(errs, field.Forbidden(spec.Child("oidc"), "protocol is saml: remove spec.oidc"))
		}
	default:
		errs = append(errs, field.NotSupported(spec.Child("protocol"), c.Spec.Protocol,
			[]tenantauthv1alpha1.SSOProtocol{tenantauthv1alpha1.ProtocolOIDC, tenantauthv1alpha1.ProtocolSAML}))
	}
	if c.Spec.OIDC != nil && len(c.Spec.OIDC.Scopes) > 0 && !slices.Contains(c.Spec.OIDC.Scopes, "openid") {
		errs = append(errs, field.Invalid(spec.Child("oidc", "scopes"), c.Spec.OIDC.Scopes, "must include openid"))
	}
	errs = append(errs, ssoRole(org, spec.Child("defaultRole"), c.EffectiveDefaultRole())...)
	for i, m := range c.Spec.RoleMappings {
		errs = append(errs, ssoRole(org, spec.Child("roleMappings").Index(i).Child("role"), m.Role)...)
	}
	return errs
}

// ssoRole checks one role an SSOConnection gives.
func ssoRole(org *tenantauthv1alpha1.Organization, p *field.Path, role string) field.ErrorList {
	if role == tenantauthv1alpha1.RoleOwner {
		return field.ErrorList{field.Forbidden(p, "members made at SSO sign-in may not become owners: make owners by hand with a Membership")}
	}
	if _, ok := org.LookupRole(role); !ok {
		return field.ErrorList{field.Invalid(p, role, fmt.Sprintf("unknown role in organization %q: use %s", org.Name, knownRoles(org)))}
	}
	return nil
}
