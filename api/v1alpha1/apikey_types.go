package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tenantauth/tenantauth/api/consts"
)

// APIKeyEnvironment is the environment a key is for; it is visible in the
// key's prefix.
// +kubebuilder:validation:Enum=live;test
type APIKeyEnvironment string

// API key environments.
const (
	EnvironmentLive APIKeyEnvironment = "live"
	EnvironmentTest APIKeyEnvironment = "test"
)

// APIKeyScope is one permission an API key holds.
// +kubebuilder:validation:Enum=read;write;delete;admin
type APIKeyScope string

// API key scopes, lowest first (see package consts).
const (
	ScopeRead   APIKeyScope = consts.ScopeRead
	ScopeWrite  APIKeyScope = consts.ScopeWrite
	ScopeDelete APIKeyScope = consts.ScopeDelete
	ScopeAdmin  APIKeyScope = consts.ScopeAdmin
)

// APIKeySpec declares a machine credential of one Organization.
type APIKeySpec struct {
	// organization is the name of the Organization in this namespace.
	// Immutable.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.organization is immutable"
	Organization string `json:"organization"`

	// environment is live or test; the key starts with osk_live_ or
	// osk_test_. Immutable.
	// +optional
	// +kubebuilder:default=live
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.environment is immutable: make a new APIKey"
	Environment APIKeyEnvironment `json:"environment,omitempty"`

	// scopes are what the key may do: a subset of read, write, delete, admin.
	// +optional
	// +kubebuilder:default={read}
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=4
	// +listType=set
	Scopes []APIKeyScope `json:"scopes,omitempty"`

	// secretName is the Secret in this namespace that receives the
	// plaintext key under data key "api-key". Defaults to metadata.name.
	// Immutable.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.secretName is immutable"
	SecretName string `json:"secretName,omitempty"`

	// expiresAt ends the key's validity. Keys never expire when unset.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`

	// revoked stops the key within seconds. Deleting the APIKey does too.
	// +optional
	Revoked bool `json:"revoked,omitempty"`

	// description is free text for humans.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Description string `json:"description,omitempty"`
}

// APIKeyStatus is what the operator made. It never holds the key.
type APIKeyStatus struct {
	// keyID identifies the key; it is embedded in the key itself so the
	// auth server finds it without a scan.
	// +optional
	KeyID string `json:"keyID,omitempty"`
	// displayPrefix is the start of the key, safe to show, e.g. osk_live_ab12…
	// +optional
	DisplayPrefix string `json:"displayPrefix,omitempty"`
	// observedGeneration is the generation last reconciled successfully.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// conditions hold Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// APIKey is a scoped machine credential of one Organization. The operator
// writes the plaintext once into spec.secretName; rotate by making a new
// APIKey.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=apikey;apikeys,categories=tenantauth
// +kubebuilder:printcolumn:name="Organization",type=string,JSONPath=`.spec.organization`
// +kubebuilder:printcolumn:name="Env",type=string,JSONPath=`.spec.environment`
// +kubebuilder:printcolumn:name="Scopes",type=string,JSONPath=`.spec.scopes`
// +kubebuilder:printcolumn:name="Prefix",type=string,JSONPath=`.status.displayPrefix`
// +kubebuilder:printcolumn:name="Revoked",type=boolean,JSONPath=`.spec.revoked`,priority=1
// +kubebuilder:printcolumn:name="Expires",type=date,JSONPath=`.spec.expiresAt`,priority=1
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type APIKey struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares the key.
	// +required
	Spec APIKeySpec `json:"spec"`
	// status is what the operator made.
	// +optional
	Status APIKeyStatus `json:"status,omitempty"`
}

// EffectiveSecretName is spec.secretName, or metadata.name when unset.
func (k *APIKey) EffectiveSecretName() string {
	if k.Spec.SecretName != "" {
		return k.Spec.SecretName
	}
	return k.Name
}

// +kubebuilder:object:root=true

// APIKeyList is a list of APIKeys.
type APIKeyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []APIKey `json:"items"`
}

func init() {
	SchemeBuilder.Register(&APIKey{}, &APIKeyList{})
}
