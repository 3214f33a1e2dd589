// Package consts holds the names and defaults of the tenantauth API that
// carry no Kubernetes types: built-in role names, API-key scopes, and the
// defaults of an Organization's fields. It imports only the standard
// library, so the auth server can speak the API's vocabulary without
// linking apimachinery; api/v1alpha1 re-exports the names on its types.
//
// The CRD schema repeats each default in a +kubebuilder:default marker on
// its field (markers cannot name Go constants); TestCRDDefaults in
// api/v1alpha1 checks the generated CRD against these values.
package consts

import "time"

// Built-in role names, highest first.
const (
	RoleOwner   = "owner"
	RoleAdmin   = "admin"
	RoleManager = "manager"
	RoleMember  = "member"
	RoleViewer  = "viewer"
)

// API-key scopes, lowest first.
const (
	ScopeRead   = "read"
	ScopeWrite  = "write"
	ScopeDelete = "delete"
	ScopeAdmin  = "admin"
)

// Defaults of an Organization's spec.
const (
	// DefaultRole is spec.selfSignup.defaultRole's default: the role a
	// self-signed-up member gets.
	DefaultRole = RoleMember
	// DefaultAccessTokenTTL is spec.sessions.accessTokenTTL's default.
	DefaultAccessTokenTTL = 15 * time.Minute
	// DefaultRefreshTokenIdleTTL is spec.sessions.refreshTokenIdleTTL's default.
	DefaultRefreshTokenIdleTTL = 720 * time.Hour
	// DefaultRefreshTokenAbsoluteTTL is spec.sessions.refreshTokenAbsoluteTTL's default.
	DefaultRefreshTokenAbsoluteTTL = 2160 * time.Hour
	// DefaultRotationInterval is spec.signing.rotationInterval's default.
	DefaultRotationInterval = 720 * time.Hour
)
