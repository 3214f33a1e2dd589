package v1alpha1

// ConditionReady is the one condition every kind reports.
const ConditionReady = "Ready"

// Reasons for the Ready condition. They are part of the API: tools and
// humans match on them.
const (
	// ReasonReady means the object is reconciled and usable.
	ReasonReady = "Ready"
	// ReasonOrganizationNotFound means spec.organization names no
	// Organization in this namespace.
	ReasonOrganizationNotFound = "OrganizationNotFound"
	// ReasonOrganizationNotReady means the Organization exists but has no
	// signing keys or ID yet.
	ReasonOrganizationNotReady = "OrganizationNotReady"
	// ReasonSecretConflict means the Secret the operator must write is owned
	// by something else; it is left untouched.
	ReasonSecretConflict = "SecretConflict"
	// ReasonSecretMissing means an API key's plaintext Secret was deleted
	// after the key was issued. The operator never issues a second
	// plaintext for one APIKey: make a new APIKey to rotate.
	ReasonSecretMissing = "SecretMissing"
	// ReasonRevoked means spec.revoked is true.
	ReasonRevoked = "Revoked"
	// ReasonExpired means spec.expiresAt has passed.
	ReasonExpired = "Expired"
	// ReasonDisabled means a Membership has spec.disabled set.
	ReasonDisabled = "Disabled"
	// ReasonKeyGenerationFailed means a signing key could not be made.
	ReasonKeyGenerationFailed = "KeyGenerationFailed"
	// ReasonSlugConflict means another Organization claimed the slug first;
	// this one is not served until the slug is free or changed.
	ReasonSlugConflict = "SlugConflict"
	// ReasonKeyIDConflict means an API key's ID is claimed by another
	// APIKey; the key is not served.
	ReasonKeyIDConflict = "KeyIDConflict"
	// ReasonReservedNamespace means the object lives in the system
	// namespace, where tenant objects are never served.
	ReasonReservedNamespace = "ReservedNamespace"
)

// Finalizer lets the operator remove what it wrote in the system
// namespace (signing keys, claims, API key records) before the object goes:
// owner references cannot cross namespaces.
const Finalizer = "tenantauth.io/cleanup"
