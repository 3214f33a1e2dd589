package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SSOProtocol is how an SSOConnection talks to the identity provider.
// +kubebuilder:validation:Enum=oidc;saml
type SSOProtocol string

// SSO protocols.
const (
	ProtocolOIDC SSOProtocol = "oidc"
	ProtocolSAML SSOProtocol = "saml"
)

// SSOConnectionSpec connects one Organization to its identity provider.
// +kubebuilder:validation:XValidation:rule="self.protocol == 'oidc' ? (has(self.oidc) && !has(self.saml)) : (has(self.saml) && !has(self.oidc))",message="protocol oidc needs spec.oidc and no spec.saml; protocol saml needs spec.saml and no spec.oidc"
type SSOConnectionSpec struct {
	// organization is the name of the Organization in this namespace.
	// Immutable: connect another organization with a new SSOConnection.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.organization is immutable"
	Organization string `json:"organization"`

	// protocol is oidc (OpenID Connect) or saml (SAML 2.0). The block of the
	// same name (spec.oidc or spec.saml) configures it.
	// +required
	Protocol SSOProtocol `json:"protocol"`

	// oidc configures an OpenID Connect authorization-code flow with PKCE.
	// Required when protocol is oidc.
	// +optional
	OIDC *OIDCConnection `json:"oidc,omitempty"`

	// saml configures SAML 2.0 with the identity provider's metadata.
	// Required when protocol is saml.
	// +optional
	SAML *SAMLConnection `json:"saml,omitempty"`

	// claims names the ID-token claims (OIDC) or assertion attributes
	// (SAML) that carry the user's email and groups.
	// +optional
	// +kubebuilder:default={}
	Claims SSOClaims `json:"claims,omitempty"`

	// defaultRole is the role of members made just in time, at their first
	// sign-in, when no roleMappings entry matches. Never owner.
	// +optional
	// +kubebuilder:default=member
	// +kubebuilder:validation:Pattern=`^[a-z][-a-z0-9]{0,62}$`
	// +kubebuilder:validation:XValidation:rule="self != 'owner'",message="members made at SSO sign-in may not become owners: use a lower role such as member"
	DefaultRole string `json:"defaultRole,omitempty"`

	// roleMappings give a role to members of an IdP group: the highest
	// role among the user's groups applies. Never owner.
	// +optional
	// +listType=map
	// +listMapKey=group
	// +kubebuilder:validation:MaxItems=100
	RoleMappings []RoleMapping `json:"roleMappings,omitempty"`
}

// OIDCConnection is an OpenID Provider and this service's client there.
type OIDCConnection struct {
	// issuer is the OpenID Provider's issuer URL; its discovery document is
	// read from <issuer>/.well-known/openid-configuration. https, or http
	// on a loopback address for local tests.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (url(self).getScheme() == 'https' || (url(self).getScheme() == 'http' && url(self).getHostname() in ['127.0.0.1', '::1', 'localhost']))",message="must be an https URL (http only on a loopback address)"
	Issuer string `json:"issuer"`

	// clientID is this service's client ID at the provider.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	ClientID string `json:"clientID"`

	// clientSecretRef names the Secret in this namespace, and its data key,
	// that holds the client secret. Omit it for a public client, which
	// PKCE alone protects. The secret is never logged, mirrored to status
	// or written to an event.
	// +optional
	ClientSecretRef *SecretKeyRef `json:"clientSecretRef,omitempty"`

	// scopes are requested at the provider; openid is required.
	// +optional
	// +kubebuilder:default={openid,email,profile}
	// +listType=set
	// +kubebuilder:validation:MaxItems=20
	// +kubebuilder:validation:items:MaxLength=256
	// +kubebuilder:validation:items:Pattern=`^[\x21\x23-\x5B\x5D-\x7E]+$`
	// +kubebuilder:validation:XValidation:rule="'openid' in self",message="must include openid"
	Scopes []string `json:"scopes,omitempty"`
}

// SecretKeyRef names one data key of a Secret in the object's namespace.
type SecretKeyRef struct {
	// name is the Secret's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`

	// key is the data key within the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key"`
}

// SAMLConnection is a SAML 2.0 identity provider, known by its metadata.
// +kubebuilder:validation:XValidation:rule="has(self.metadataURL) != has(self.metadataXML)",message="set exactly one of metadataURL and metadataXML"
type SAMLConnection struct {
	// metadataURL is where the identity provider publishes its SAML
	// metadata. https, or http on a loopback address for local tests.
	// Exactly one of metadataURL and metadataXML is set.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (url(self).getScheme() == 'https' || (url(self).getScheme() == 'http' && url(self).getHostname() in ['127.0.0.1', '::1', 'localhost']))",message="must be an https URL (http only on a loopback address)"
	MetadataURL string `json:"metadataURL,omitempty"`

	// metadataXML is the identity provider's SAML metadata document itself.
	// Exactly one of metadataURL and metadataXML is set.
	// +optional
	// +kubebuilder:validation:MaxLength=262144
	MetadataXML string `json:"metadataXML,omitempty"`
}

// SSOClaims names where the identity provider puts a user's email and
// groups.
type SSOClaims struct {
	// email is the claim (OIDC) or attribute (SAML) holding the user's
	// email. When unset, OIDC reads "email" and SAML the assertion's NameID.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Email string `json:"email,omitempty"`

	// groups is the claim or attribute holding the user's groups, matched
	// against roleMappings. When unset, groups are not read and every new
	// member gets defaultRole.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Groups string `json:"groups,omitempty"`
}

// RoleMapping gives members of one identity-provider group a role.
type RoleMapping struct {
	// group is the group's name or ID, as the groups claim carries it.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Group string `json:"group"`

	// role is a built-in role below owner or one of the organization's
	// custom roles.
	// +required
	// +kubebuilder:validation:Pattern=`^[a-z][-a-z0-9]{0,62}$`
	// +kubebuilder:validation:XValidation:rule="self != 'owner'",message="an IdP group may not grant owner: use a lower role such as admin"
	Role string `json:"role"`
}

// SSOConnectionStatus is what the operator observed of the identity
// provider. It never holds the client secret.
type SSOConnectionStatus struct {
	// idpCertificateExpiresAt is when the identity provider's signing
	// certificate expires (the earliest, when it publishes several).
	// +optional
	IDPCertificateExpiresAt *metav1.Time `json:"idpCertificateExpiresAt,omitempty"`
	// observedGeneration is the generation last reconciled successfully.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// conditions hold Ready: whether the discovery document or metadata
	// was read and its certificates are valid.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// SSOConnection lets an Organization's members sign in through its own
// identity provider (OpenID Connect or SAML 2.0), and makes Memberships
// just in time for emails on the organization's verified domains.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=sso,categories=tenantauth
// +kubebuilder:printcolumn:name="Organization",type=string,JSONPath=`.spec.organization`
// +kubebuilder:printcolumn:name="Protocol",type=string,JSONPath=`.spec.protocol`
// +kubebuilder:printcolumn:name="Issuer",type=string,JSONPath=`.spec.oidc.issuer`,priority=1
// +kubebuilder:printcolumn:name="Default Role",type=string,JSONPath=`.spec.defaultRole`,priority=1
// +kubebuilder:printcolumn:name="Cert Expires",type=date,JSONPath=`.status.idpCertificateExpiresAt`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type SSOConnection struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares the connection.
	// +required
	Spec SSOConnectionSpec `json:"spec"`
	// status is what the operator observed.
	// +optional
	Status SSOConnectionStatus `json:"status,omitempty"`
}

// EffectiveDefaultRole is spec.defaultRole, or member when unset.
func (c *SSOConnection) EffectiveDefaultRole() string {
	if c.Spec.DefaultRole != "" {
		return c.Spec.DefaultRole
	}
	return RoleMember
}

// +kubebuilder:object:root=true

// SSOConnectionList is a list of SSOConnections.
type SSOConnectionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SSOConnection `json:"items"`
}

func init() {
	SchemeBuilder.Register(&SSOConnection{}, &SSOConnectionList{})
}
