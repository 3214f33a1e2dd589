// Package webhook holds the admission webhooks of tenantauth.io: defaulting,
// validation and role-based authorization of Organizations, Memberships,
// APIKeys and SSOConnections (the defaults and limits of those objects,
// and who inside an organization may change them), and the rotation of
// the webhook serving certificate.
//
// Every lookup a request needs is answered from the manager's informer cache
// through the field indexes registered here, so admission costs no API call
// and no List of everything, whatever the size of the cluster. The price is
// that the cache may lag a write by a few milliseconds: two conflicting
// objects created in the same instant (a duplicate slug, a second Membership
// for one email) can both be admitted. The controllers report such
// conflicts; the webhooks keep the common case clear and fast.
package webhook

import (
	"context"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenantauthv1alpha1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/internal/identity"
)

// +kubebuilder:rbac:groups=tenantauth.io,resources=organizations;memberships;apikeys,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get

// Admission modes.
const (
	// ModeEnforce denies requests the role table does not allow.
	ModeEnforce = "enforce"
	// ModeAudit admits such requests and returns a warning saying what
	// enforce mode would have denied.
	ModeAudit = "audit"
)

// DefaultBypassGroup is the group whose members always pass authorization
// when Options.BypassGroups is empty.
const DefaultBypassGroup = "system:masters"

// Field index names. They are prefixed with "webhook." so they never collide
// with the indexes the controllers register on the same shared cache.
const (
	// IndexSlug indexes Organizations by effective slug.
	IndexSlug = "webhook.slug"
	// IndexOrganization indexes Memberships and APIKeys by spec.organization.
	IndexOrganization = "webhook.organization"
	// IndexOrgEmail indexes Memberships by "<organization>/<normalized email>".
	IndexOrgEmail = "webhook.orgEmail"
	// IndexOrgRole indexes Memberships by "<organization>/<role>".
	IndexOrgRole = "webhook.orgRole"
)

// Options configure admission authorization.
type Options struct {
	// Mode is ModeEnforce (the default when empty) or ModeAudit.
	Mode string
	// BypassGroups pass authorization. Empty entries are ignored; with
	// none left, DefaultBypassGroup applies.
	BypassGroups []string
	// BypassUsers pass authorization.
	BypassUsers []string
	// SignupUsername is the auth server's service account user name. It
	// passes only the self-signup rule: an enabled Membership with the
	// organization's self-signup role, never owner, on an allowed domain.
	SignupUsername string
	// OperatorUsername is the operator's own service account user name
	// (system:serviceaccount:<ns>:<name>); it passes authorization.
	OperatorUsername string
	// SystemNamespace is the operator's namespace, where its domain claims
	// say which Organization each verified domain belongs to. Empty, no
	// domain counts as verified.
	SystemNamespace string
}

// SetupWithManager registers the field indexes and the defaulting and
// validating webhooks of every kind with mgr.
//
// When the serving certificate comes from webhookcert.SetupRotation, call
// it only after the rotator's ready channel is closed: the manager starts
// its webhook server when the first webhook is registered, and that server
// needs the certificate files. Indexes may be added to a running cache.
func SetupWithManager(mgr ctrl.Manager, opts Options) error {
	if err := setupIndexes(context.Background(), mgr); err != nil {
		return err
	}
	v, err := newValidators(mgr, opts)
	if err != nil {
		return err
	}
	if err := ctrl.NewWebhookManagedBy(mgr, &tenantauthv1alpha1.Organization{}).
		WithDefaulter(&OrganizationDefaulter{}).
		WithValidator(v.org).
		Complete(); err != nil {
		return fmt.Errorf("register Organization webhooks: %w", err)
	}
	if err := ctrl.NewWebhookManagedBy(mgr, &tenantauthv1alpha1.Membership{}).
		WithDefaulter(&MembershipDefaulter{}).
		WithValidator(v.membership).
		Complete(); err != nil {
		return fmt.Errorf("register Membership webhooks: %w", err)
	}
	if err := ctrl.NewWebhookManagedBy(mgr, &tenantauthv1alpha1.APIKey{}).
		WithDefaulter(&APIKeyDefaulter{}).
		WithValidator(v.apiKey).
		Complete(); err != nil {
		return fmt.Errorf("register APIKey webhooks: %w", err)
	}
	if err := ctrl.NewWebhookManagedBy(mgr, &tenantauthv1alpha1.SSOConnection{}).
		WithDefaulter(&SSOConnectionDefaulter{}).
		WithValidator(v.sso).
		Complete(); err != nil {
		return fmt.Errorf("register SSOConnection webhooks: %w", err)
	}
	return nil
}

// validators are the validating webhooks, sharing one authorizer.
type validators struct {
	org        *OrganizationValidator
	membership *MembershipValidator
	apiKey     *APIKeyValidator
	sso        *SSOConnectionValidator
}

func newValidators(mgr ctrl.Manager, opts Options) (validators, error) {
	return newValidatorsWith(mgr.GetCache(), mgr.GetAPIReader(), opts)
}

// newValidatorsWith builds the validators over an indexed cache and a live
// reader.
func newValidatorsWith(cache, live client.Reader, opts Options) (validators, error) {
	authz, err := newAuthorizer(opts)
	if err != nil {
		return validators{}, err
	}
	l := &lookup{cache: cache, live: live, systemNamespace: opts.SystemNamespace}
	authz.lookup = l
	return validators{
		org:        &OrganizationValidator{lookup: l, authz: authz},
		membership: &MembershipValidator{lookup: l, authz: authz},
		apiKey:     &APIKeyValidator{lookup: l, authz: authz},
		sso:        &SSOConnectionValidator{lookup: l, authz: authz},
	}, nil
}

func newAuthorizer(opts Options) (*authorizer, error) {
	mode := opts.Mode
	if mode == "" {
		mode = ModeEnforce
	}
	if mode != ModeEnforce && mode != ModeAudit {
		return nil, fmt.Errorf("admission mode %q: must be %s or %s", mode, ModeEnforce, ModeAudit)
	}
	// Flag values arrive split on commas, so "" and " a" are common;
	// neither may turn the default off by accident.
	groups := sets.New[string]()
	for _, g := range opts.BypassGroups {
		if g = strings.TrimSpace(g); g != "" {
			groups.Insert(g)
		}
	}
	if groups.Len() == 0 {
		groups.Insert(DefaultBypassGroup)
	}
	users := sets.New[string]()
	for _, u := range append(slices.Clone(opts.BypassUsers), opts.OperatorUsername) {
		if u = strings.TrimSpace(u); u != "" {
			users.Insert(u)
		}
	}
	return &authorizer{
		audit:        mode == ModeAudit,
		bypassGroups: groups,
		bypassUsers:  users,
		signupUser:   strings.TrimSpace(opts.SignupUsername),
	}, nil
}

func setupIndexes(ctx context.Context, mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	indexes := []struct {
		obj   client.Object
		field string
		fn    client.IndexerFunc
	}{
		{&tenantauthv1alpha1.Organization{}, IndexSlug, func(o client.Object) []string {
			return []string{o.(*tenantauthv1alpha1.Organization).EffectiveSlug()}
		}},
		{&tenantauthv1alpha1.Membership{}, IndexOrganization, func(o client.Object) []string {
			return []string{o.(*tenantauthv1alpha1.Membership).Spec.Organization}
		}},
		{&tenantauthv1alpha1.APIKey{}, IndexOrganization, func(o client.Object) []string {
			return []string{o.(*tenantauthv1alpha1.APIKey).Spec.Organization}
		}},
		{&tenantauthv1alpha1.Membership{}, IndexOrgEmail, func(o client.Object) []string {
			m := o.(*tenantauthv1alpha1.Membership)
			return []string{orgEmailKey(m.Spec.Organization, m.Spec.Email)}
		}},
		{&tenantauthv1alpha1.Membership{}, IndexOrgRole, func(o client.Object) []string {
			m := o.(*tenantauthv1alpha1.Membership)
			return []string{orgRoleKey(m.Spec.Organization, roleOf(m))}
		}},
	}
	for _, i := range indexes {
		if err := idx.IndexField(ctx, i.obj, i.field, i.fn); err != nil {
			return fmt.Errorf("index %T by %s: %w", i.obj, i.field, err)
		}
	}
	return nil
}

func orgEmailKey(org, email string) string { return org + "/" + identity.NormalizeEmail(email) }

func orgRoleKey(org, role string) string { return org + "/" + role }

// roleOf is the Membership's role, counting an unset role as the default
// the mutating webhook would have given it.
func roleOf(m *tenantauthv1alpha1.Membership) string {
	if m.Spec.Role == "" {
		return tenantauthv1alpha1.RoleMember
	}
	return m.Spec.Role
}

// invalid is the webhook's answer to a bad object: an Invalid status naming
// each field, which kubectl prints field by field. It is nil for no errors.
func invalid(kind, name string, errs field.ErrorList) error {
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(tenantauthv1alpha1.GroupVersion.WithKind(kind).GroupKind(), name, errs)
}

// duplicate is a Duplicate field error that also says what to do.
func duplicate(p *field.Path, value any, detail string) *field.Error {
	e := field.Duplicate(p, value)
	e.Detail = detail
	return e
}
