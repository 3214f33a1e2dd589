package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tenantauth/tenantauth/api/consts"
)

// SigningAlgorithm is a JWS algorithm an Organization signs access tokens with.
// +kubebuilder:validation:Enum=ES256;EdDSA;RS256
type SigningAlgorithm string

// Signing algorithms.
const (
	AlgES256 SigningAlgorithm = "ES256"
	AlgEdDSA SigningAlgorithm = "EdDSA"
	AlgRS256 SigningAlgorithm = "RS256"
)

// OrganizationSpec declares a tenant: who it is, how its members sign in and
// how its tokens are made.
type OrganizationSpec struct {
	// displayName is the human name, shown in responses as "name".
	// Defaults to metadata.name.
	// +optional
	// +kubebuilder:validation:MaxLength=200
	DisplayName string `json:"displayName,omitempty"`

	// slug is the organization's URL name: a DNS label, unique across the
	// cluster and immutable. Defaults to metadata.name.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Slug string `json:"slug,omitempty"`

	// sessions sets token and session lifetimes.
	// +optional
	// +kubebuilder:default={}
	Sessions SessionsSpec `json:"sessions,omitempty"`

	// signing chooses the access-token signing algorithm and key rotation.
	// +optional
	// +kubebuilder:default={}
	Signing SigningSpec `json:"signing,omitempty"`

	// authMethods says which ways in are allowed. All are on by default.
	// +optional
	// +kubebuilder:default={}
	AuthMethods AuthMethodsSpec `json:"authMethods,omitempty"`

	// mfa sets multi-factor requirements.
	// +optional
	MFA MFASpec `json:"mfa,omitempty"`

	// selfSignup lets people with verified emails on listed domains join.
	// +optional
	// +kubebuilder:default={}
	SelfSignup SelfSignupSpec `json:"selfSignup,omitempty"`

	// audience is the "aud" claim of access tokens. Defaults to the
	// organization's issuer URL.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Audience string `json:"audience,omitempty"`

	// roles adds custom roles beside the built-ins (owner, admin, manager,
	// member, viewer).
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=50
	Roles []Role `json:"roles,omitempty"`

	// domains lists the email domains the organization claims as its own.
	// The operator verifies each through the DNS TXT record
	// _tenantauth-challenge.<name>, which must hold the domain's
	// status.domains[].verificationToken. A domain is verified for at most
	// one Organization: the first to prove it keeps it. Public mail
	// domains (gmail.com, outlook.com, ...) are refused.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=50
	Domains []Domain `json:"domains,omitempty"`
}

// Domain is an email domain an Organization claims.
type Domain struct {
	// name is a lower-case DNS name such as acme.com.
	// +required
	// +kubebuilder:validation:MinLength=4
	// +kubebuilder:validation:MaxLength=231
	// +kubebuilder:validation:Pattern=`^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$`
	Name string `json:"name"`
}

// SessionsSpec sets token and session lifetimes.
// +kubebuilder:validation:XValidation:rule="!has(self.refreshTokenAbsoluteTTL) || !has(self.refreshTokenIdleTTL) || duration(self.refreshTokenAbsoluteTTL) >= duration(self.refreshTokenIdleTTL)",message="refreshTokenAbsoluteTTL must be at least refreshTokenIdleTTL"
type SessionsSpec struct {
	// accessTokenTTL is the access token (JWT) lifetime.
	// +optional
	// +kubebuilder:default="15m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="must be a duration of at least 1s, such as 15m or 720h"
	AccessTokenTTL *metav1.Duration `json:"accessTokenTTL,omitempty"`

	// refreshTokenIdleTTL ends a session after this much inactivity; each
	// refresh slides it.
	// +optional
	// +kubebuilder:default="720h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="must be a duration of at least 1s, such as 15m or 720h"
	RefreshTokenIdleTTL *metav1.Duration `json:"refreshTokenIdleTTL,omitempty"`

	// refreshTokenAbsoluteTTL is the longest any session lives.
	// +optional
	// +kubebuilder:default="2160h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="must be a duration of at least 1s, such as 15m or 720h"
	RefreshTokenAbsoluteTTL *metav1.Duration `json:"refreshTokenAbsoluteTTL,omitempty"`
}

// SigningSpec chooses the signing algorithm and how often keys rotate.
type SigningSpec struct {
	// algorithm is ES256, EdDSA or RS256. Changing it rotates to a new key
	// of the new algorithm; tokens signed before keep verifying.
	// +optional
	// +kubebuilder:default=ES256
	Algorithm SigningAlgorithm `json:"algorithm,omitempty"`

	// rotationInterval is how often a new active signing key is made.
	// +optional
	// +kubebuilder:default="720h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="must be a duration of at least 1s, such as 15m or 720h"
	RotationInterval *metav1.Duration `json:"rotationInterval,omitempty"`
}

// AuthMethodsSpec switches the ways into an organization on and off.
type AuthMethodsSpec struct {
	// password allows email and password login.
	// +optional
	// +kubebuilder:default=true
	Password *bool `json:"password,omitempty"`

	// magicLink allows passwordless email links.
	// +optional
	// +kubebuilder:default=true
	MagicLink *bool `json:"magicLink,omitempty"`

	// apiKeys allows APIKeys of this organization to authenticate.
	// +optional
	// +kubebuilder:default=true
	APIKeys *bool `json:"apiKeys,omitempty"`

	// ssoRequired makes members sign in through the organization's
	// SSOConnection: password and magic-link sign-in answer 403
	// sso_required, except for owners, who keep their password as a
	// break-glass way in. Defaults to false.
	// +optional
	SSORequired bool `json:"ssoRequired,omitempty"`
}

// MFASpec sets multi-factor requirements.
type MFASpec struct {
	// required makes every member pass TOTP before getting a session.
	// Members without TOTP are sent to set it up first.
	// +optional
	Required bool `json:"required,omitempty"`
}

// SelfSignupSpec lets verified emails on listed domains join.
type SelfSignupSpec struct {
	// allowedEmailDomains lists email domains whose verified owners may join.
	// Each must be one of this organization's verified spec.domains.
	// Empty means nobody may self-sign-up.
	// +optional
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:items:Pattern=`^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z]{2,63}$`
	AllowedEmailDomains []string `json:"allowedEmailDomains,omitempty"`

	// defaultRole is the role given to self-signed-up members.
	// +optional
	// +kubebuilder:default=member
	// +kubebuilder:validation:Pattern=`^[a-z][-a-z0-9]{0,62}$`
	DefaultRole string `json:"defaultRole,omitempty"`
}

// Role is a named set of permissions with a rank used to compare roles.
type Role struct {
	// name is the role name used in Memberships and tokens.
	// +required
	// +kubebuilder:validation:Pattern=`^[a-z][-a-z0-9]{0,62}$`
	// +kubebuilder:validation:XValidation:rule="!(self in ['owner','admin','manager','member','viewer'])",message="custom roles may not reuse a built-in role name"
	Name string `json:"name"`

	// rank orders roles: a higher rank may do what a lower one may. The
	// built-ins rank owner 100, admin 80, manager 60, member 40, viewer 20.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=99
	Rank int32 `json:"rank"`

	// permissions are the strings copied into the "permissions" claim.
	// +optional
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:items:MaxLength=100
	Permissions []string `json:"permissions,omitempty"`
}

// SigningKeyStatus describes one signing key held in the signing-key Secret.
type SigningKeyStatus struct {
	// kid is the key ID in the JWT header and the JWKS.
	KID string `json:"kid"`
	// algorithm is the key's JWS algorithm.
	Algorithm SigningAlgorithm `json:"algorithm"`
	// createdAt is when the key was made.
	CreatedAt metav1.Time `json:"createdAt"`
	// retiresAt is when a retired key stops verifying and is pruned.
	// Unset on the active key.
	// +optional
	RetiresAt *metav1.Time `json:"retiresAt,omitempty"`
}

// DomainStatus is the verification state of one of spec.domains. It
// mirrors what the operator recorded in the system namespace; nothing
// reads it back as proof.
type DomainStatus struct {
	// name is the domain.
	Name string `json:"name"`
	// verificationToken is the value the TXT record
	// _tenantauth-challenge.<name> must hold. It stays the same for the
	// life of the Organization.
	// +optional
	VerificationToken string `json:"verificationToken,omitempty"`
	// verified is true while the domain is verified for this organization.
	Verified bool `json:"verified"`
	// verifiedAt is when this organization first proved the domain (since
	// it last lost it).
	// +optional
	VerifiedAt *metav1.Time `json:"verifiedAt,omitempty"`
}

// OrganizationStatus is what the operator observed and made.
type OrganizationStatus struct {
	// id is the permanent organization ID, "org_" and a ULID.
	// +optional
	ID string `json:"id,omitempty"`
	// signingKeySecret names the Secret holding the private signing keys.
	// +optional
	SigningKeySecret string `json:"signingKeySecret,omitempty"`
	// activeKeyID is the kid new tokens are signed with.
	// +optional
	ActiveKeyID string `json:"activeKeyID,omitempty"`
	// keys lists the active key and the retiring keys that still verify.
	// +optional
	Keys []SigningKeyStatus `json:"keys,omitempty"`
	// domains reports the verification of each of spec.domains.
	// +optional
	// +listType=map
	// +listMapKey=name
	Domains []DomainStatus `json:"domains,omitempty"`
	// observedGeneration is the generation last reconciled successfully.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// conditions hold Ready, and DomainsVerified when spec.domains is set.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Organization is a tenant: members, roles, signing keys and session rules.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=org;orgs,categories=tenantauth
// +kubebuilder:printcolumn:name="Slug",type=string,JSONPath=`.spec.slug`
// +kubebuilder:printcolumn:name="ID",type=string,JSONPath=`.status.id`
// +kubebuilder:printcolumn:name="Algorithm",type=string,JSONPath=`.spec.signing.algorithm`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.spec.slug) || (has(self.spec.slug) && self.spec.slug == oldSelf.spec.slug)",message="spec.slug is immutable"
// +kubebuilder:validation:XValidation:rule="has(oldSelf.spec.slug) || !has(self.spec.slug) || self.spec.slug == self.metadata.name",message="spec.slug is immutable: it defaulted to metadata.name"
type Organization struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares the organization.
	// +optional
	// +kubebuilder:default={}
	Spec OrganizationSpec `json:"spec,omitempty"`
	// status is what the operator observed and made.
	// +optional
	Status OrganizationStatus `json:"status,omitempty"`
}

// EffectiveSlug is spec.slug, or metadata.name when the slug is unset.
func (o *Organization) EffectiveSlug() string {
	if o.Spec.Slug != "" {
		return o.Spec.Slug
	}
	return o.Name
}

// EffectiveDisplayName is spec.displayName, or metadata.name when unset.
func (o *Organization) EffectiveDisplayName() string {
	if o.Spec.DisplayName != "" {
		return o.Spec.DisplayName
	}
	return o.Name
}

// LegacySigningKeySecretName is where releases before the system-namespace
// records kept the private keys, in the Organization's own namespace. The
// operator moves them and deletes this Secret.
func (o *Organization) LegacySigningKeySecretName() string {
	return o.Name + "-signing-keys"
}

// +kubebuilder:object:root=true

// OrganizationList is a list of Organizations.
type OrganizationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Organization `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Organization{}, &OrganizationList{})
}

// AccessTokenTTL is spec.sessions.accessTokenTTL or its default.
func (o *Organization) AccessTokenTTL() time.Duration {
	return durationOr(o.Spec.Sessions.AccessTokenTTL, consts.DefaultAccessTokenTTL)
}

// RefreshTokenIdleTTL is spec.sessions.refreshTokenIdleTTL or its default.
func (o *Organization) RefreshTokenIdleTTL() time.Duration {
	return durationOr(o.Spec.Sessions.RefreshTokenIdleTTL, consts.DefaultRefreshTokenIdleTTL)
}

// RefreshTokenAbsoluteTTL is spec.sessions.refreshTokenAbsoluteTTL or its
// default.
func (o *Organization) RefreshTokenAbsoluteTTL() time.Duration {
	return durationOr(o.Spec.Sessions.RefreshTokenAbsoluteTTL, consts.DefaultRefreshTokenAbsoluteTTL)
}

// RotationInterval is spec.signing.rotationInterval or its default.
func (o *Organization) RotationInterval() time.Duration {
	return durationOr(o.Spec.Signing.RotationInterval, consts.DefaultRotationInterval)
}

// Algorithm is spec.signing.algorithm or its default.
func (o *Organization) Algorithm() SigningAlgorithm {
	if o.Spec.Signing.Algorithm == "" {
		return AlgES256
	}
	return o.Spec.Signing.Algorithm
}

// MethodEnabled reports whether an auth method flag is on; unset means on.
func MethodEnabled(flag *bool) bool {
	return flag == nil || *flag
}

func durationOr(d *metav1.Duration, def time.Duration) time.Duration {
	if d == nil || d.Duration <= 0 {
		return def
	}
	return d.Duration
}
