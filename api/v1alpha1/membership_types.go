package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MembershipSpec puts one person, by email, into one Organization with a role.
type MembershipSpec struct {
	// organization is the name of the Organization in this namespace.
	// Immutable: move a member by making a new Membership.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.organization is immutable"
	Organization string `json:"organization"`

	// email is the member's email address, stored lower-case.
	// +required
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=254
	// +kubebuilder:validation:Pattern=`^[^@\s]+@[^@\s]+\.[^@\s]+$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.email is immutable: make a new Membership"
	Email string `json:"email"`

	// role is a built-in role (owner, admin, manager, member, viewer) or one
	// of the organization's custom roles.
	// +optional
	// +kubebuilder:default=member
	// +kubebuilder:validation:Pattern=`^[a-z][-a-z0-9]{0,62}$`
	Role string `json:"role,omitempty"`

	// disabled blocks login and new tokens at once; existing access and
	// refresh tokens stop working.
	// +optional
	Disabled bool `json:"disabled,omitempty"`
}

// MembershipStatus is what the operator observed.
type MembershipStatus struct {
	// userID is the member's stable user ID, "usr_" and 26 base32
	// characters: the same for one email in every organization, forever.
	// +optional
	UserID string `json:"userID,omitempty"`
	// observedGeneration is the generation last reconciled successfully.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// conditions hold Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Membership grants one email a role in one Organization.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=mbr,categories=tenantauth
// +kubebuilder:printcolumn:name="Organization",type=string,JSONPath=`.spec.organization`
// +kubebuilder:printcolumn:name="Email",type=string,JSONPath=`.spec.email`
// +kubebuilder:printcolumn:name="Role",type=string,JSONPath=`.spec.role`
// +kubebuilder:printcolumn:name="Disabled",type=boolean,JSONPath=`.spec.disabled`,priority=1
// +kubebuilder:printcolumn:name="User",type=string,JSONPath=`.status.userID`,priority=1
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Membership struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares the membership.
	// +required
	Spec MembershipSpec `json:"spec"`
	// status is what the operator observed.
	// +optional
	Status MembershipStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// MembershipList is a list of Memberships.
type MembershipList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Membership `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Membership{}, &MembershipList{})
}
