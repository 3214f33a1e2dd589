package webhook

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	tenantauthv1alpha1 "github.com/tenantauth/tenantauth/api/v1alpha1"
)

// +kubebuilder:webhook:path=/mutate-tenantauth-io-v1alpha1-apikey,mutating=true,failurePolicy=fail,sideEffects=None,groups=tenantauth.io,resources=apikeys,verbs=create;update,versions=v1alpha1,name=mapikey.tenantauth.io,admissionReviewVersions=v1
// +kubebuilder:webhook:path=/validate-tenantauth-io-v1alpha1-apikey,mutating=false,failurePolicy=fail,sideEffects=None,groups=tenantauth.io,resources=apikeys,verbs=create;update;delete,versions=v1alpha1,name=vapikey.tenantauth.io,admissionReviewVersions=v1

var apiKeysGR = tenantauthv1alpha1.GroupVersion.WithResource("apikeys").GroupResource()

const kindAPIKey = "APIKey"

var knownScopes = []tenantauthv1alpha1.APIKeyScope{
	tenantauthv1alpha1.ScopeRead, tenantauthv1alpha1.ScopeWrite,
	tenantauthv1alpha1.ScopeDelete, tenantauthv1alpha1.ScopeAdmin,
}

// APIKeyDefaulter fills in the defaults of an APIKey.
type APIKeyDefaulter struct{}

var _ admission.Defaulter[*tenantauthv1alpha1.APIKey] = &APIKeyDefaulter{}

// Default sets environment live, scopes [read] and secretName to
// metadata.name when they are unset.
func (d *APIKeyDefaulter) Default(_ context.Context, k *tenantauthv1alpha1.APIKey) error {
	if k.Spec.Environment == "" {
		k.Spec.Environment = tenantauthv1alpha1.EnvironmentLive
	}
	if len(k.Spec.Scopes) == 0 {
		k.Spec.Scopes = []tenantauthv1alpha1.APIKeyScope{tenantauthv1alpha1.ScopeRead}
	}
	if k.Spec.SecretName == "" {
		k.Spec.SecretName = k.Name
	}
	return nil
}

// APIKeyValidator validates APIKeys and authorizes changes to them.
type APIKeyValidator struct {
	lookup *lookup
	authz  *authorizer
	// now is the clock expiresAt is checked against; tests replace it.
	now func() time.Time
}

var _ admission.Validator[*tenantauthv1alpha1.APIKey] = &APIKeyValidator{}

// ValidateCreate checks the organization exists, the environment, scopes,
// Secret name and expiry, and the requester's role.
func (v *APIKeyValidator) ValidateCreate(ctx context.Context, k *tenantauthv1alpha1.APIKey) (admission.Warnings, error) {
	org, err := v.lookup.organization(ctx, k.Namespace, k.Spec.Organization)
	if err != nil {
		return nil, err
	}
	if errs := organizationRef(k.Namespace, k.Spec.Organization, org); errs != nil {
		return nil, invalid(kindAPIKey, k.Name, errs)
	}
	warnings, err := v.authorize(ctx, org, nil, k)
	if err != nil {
		return warnings, err
	}
	errs := validateAPIKeySpec(k)
	if exp := k.Spec.ExpiresAt; exp != nil {
		if now := v.clock(); !exp.After(now) {
			errs = append(errs, field.Invalid(field.NewPath("spec", "expiresAt"), exp.UTC().Format(time.RFC3339),
				fmt.Sprintf("must be in the future (now is %s): set a later time, or leave it unset for a key that does not expire",
					now.UTC().Format(time.RFC3339))))
		}
	}
	return warnings, invalid(kindAPIKey, k.Name, errs)
}

// ValidateUpdate keeps the organization, environment and Secret name, and
// checks the scopes and the requester's role. An expiry in the past is
// allowed here: it is how a key is made to expire now.
func (v *APIKeyValidator) ValidateUpdate(ctx context.Context, old, k *tenantauthv1alpha1.APIKey) (admission.Warnings, error) {
	spec := field.NewPath("spec")
	var errs field.ErrorList
	if k.Spec.Organization != old.Spec.Organization {
		errs = append(errs, field.Invalid(spec.Child("organization"), k.Spec.Organization,
			fmt.Sprintf("is immutable (it is %q): make a new APIKey in the other organization and delete this one", old.Spec.Organization)))
	}
	if k.Spec.Environment != old.Spec.Environment && old.Spec.Environment != "" {
		errs = append(errs, field.Invalid(spec.Child("environment"), k.Spec.Environment,
			"is immutable: the key's prefix carries it; make a new APIKey"))
	}
	if k.EffectiveSecretName() != old.EffectiveSecretName() {
		errs = append(errs, field.Invalid(spec.Child("secretName"), k.Spec.SecretName,
			fmt.Sprintf("is immutable (it is %q): the key is written once; make a new APIKey", old.EffectiveSecretName())))
	}
	if len(errs) > 0 {
		return nil, invalid(kindAPIKey, k.Name, errs)
	}
	org, err := v.lookup.organization(ctx, k.Namespace, k.Spec.Organization)
	if err != nil {
		return nil, err
	}
	if org == nil {
		if equality.Semantic.DeepEqual(old.Spec, k.Spec) {
			return nil, nil // metadata-only edits, e.g. finalizers, of an orphan
		}
		return nil, invalid(kindAPIKey, k.Name, organizationRef(k.Namespace, k.Spec.Organization, nil))
	}
	warnings, err := v.authorize(ctx, org, old, k)
	if err != nil {
		return warnings, err
	}
	return warnings, invalid(kindAPIKey, k.Name, validateAPIKeySpec(k))
}

// ValidateDelete checks the requester's role. Keys of a missing
// organization may be deleted by anyone Kubernetes RBAC lets through.
func (v *APIKeyValidator) ValidateDelete(ctx context.Context, k *tenantauthv1alpha1.APIKey) (admission.Warnings, error) {
	org, err := v.lookup.organization(ctx, k.Namespace, k.Spec.Organization)
	if err != nil || org == nil || org.DeletionTimestamp != nil {
		return nil, err
	}
	warnings, err := v.authorize(ctx, org, k, nil)
	if err != nil && v.lookup.namespaceTerminating(ctx, k.Namespace) {
		return warnings, nil
	}
	return warnings, err
}

func (v *APIKeyValidator) authorize(ctx context.Context, org *tenantauthv1alpha1.Organization, old, cur *tenantauthv1alpha1.APIKey) (admission.Warnings, error) {
	var warnings admission.Warnings
	act, err := v.authz.actor(ctx, org)
	if err != nil {
		return nil, err
	}
	target := cur
	if target == nil {
		target = old
	}
	return warnings, v.authz.decide(apiKeysGR, target.Name, apiKeyDenial(act, org, old, cur), &warnings)
}

func (v *APIKeyValidator) clock() time.Time {
	if v.now != nil {
		return v.now()
	}
	return time.Now()
}

func validateAPIKeySpec(k *tenantauthv1alpha1.APIKey) field.ErrorList {
	spec := field.NewPath("spec")
	var errs field.ErrorList
	switch k.Spec.Environment {
	case "", tenantauthv1alpha1.EnvironmentLive, tenantauthv1alpha1.EnvironmentTest:
	default:
		errs = append(errs, field.NotSupported(spec.Child("environment"), k.Spec.Environment,
			[]tenantauthv1alpha1.APIKeyEnvironment{tenantauthv1alpha1.EnvironmentLive, tenantauthv1alpha1.EnvironmentTest}))
	}
	seen := sets.New[tenantauthv1alpha1.APIKeyScope]()
	for i, s := range k.Spec.Scopes {
		p := spec.Child("scopes").Index(i)
		switch {
		case tenantauthv1alpha1.ScopeRank(s) == 0:
			errs = append(errs, field.NotSupported(p, s, knownScopes))
		case seen.Has(s):
			errs = append(errs, field.Duplicate(p, s))
		}
		seen.Insert(s)
	}
	if n := k.Spec.SecretName; n != "" {
		for _, msg := range validation.IsDNS1123Subdomain(n) {
			errs = append(errs, field.Invalid(spec.Child("secretName"), n, msg))
		}
	}
	return errs
}
