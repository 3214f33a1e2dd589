package v1alpha1

// ConditionReady is the one condition every kind reports.
const ConditionReady = "Ready"

// ConditionDomainsVerified reports an Organization's spec.domains: True
// when every one is verified for it, False naming those that are not and
// why. It is absent when spec.domains is empty.
const ConditionDomainsVerified = "DomainsVerified"

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

// Reasons for the DomainsVerified condition and the domain events.
const (
	// ReasonDomainsVerified means every one of spec.domains is verified.
	ReasonDomainsVerified = "DomainsVerified"
	// ReasonDomainsPending means a domain's TXT record does not hold its
	// token (yet, or any more).
	ReasonDomainsPending = "DomainsPending"
	// ReasonDomainClaimed means another Organization verified the domain
	// first; it keeps it.
	ReasonDomainClaimed = "DomainClaimed"
	// ReasonPublicMailDomain means the domain is a public mail provider's
	// (gmail.com, outlook.com, ...), which no organization may claim.
	ReasonPublicMailDomain = "PublicMailDomain"
	// ReasonDNSLookupFailed means the TXT lookup failed (timeout, server
	// failure); a verified domain stays verified until a lookup answers.
	ReasonDNSLookupFailed = "DNSLookupFailed"
	// ReasonUnverifiedSignupDomain means selfSignup.allowedEmailDomains
	// lists a domain not verified for this organization.
	ReasonUnverifiedSignupDomain = "UnverifiedSignupDomain"
)

// Reasons for an SSOConnection's Ready condition.
const (
	// ReasonDiscoveryFailed means the OpenID Provider's discovery document
	// could not be fetched or does not describe the configured issuer.
	ReasonDiscoveryFailed = "DiscoveryFailed"
	// ReasonMetadataInvalid means the SAML metadata could not be fetched or
	// parsed, or carries no usable signing certificate.
	ReasonMetadataInvalid = "MetadataInvalid"
	// ReasonCertificateExpiring means the identity provider's signing
	// certificate expires within 30 days; the connection still works.
	ReasonCertificateExpiring = "CertificateExpiring"
	// ReasonCertificateExpired means the identity provider's signing
	// certificate has expired or is not valid yet.
	ReasonCertificateExpired = "CertificateExpired"
	// ReasonClientSecretMissing means the Secret or data key named by
	// spec.oidc.clientSecretRef does not exist.
	ReasonClientSecretMissing = "ClientSecretMissing"
)

// Finalizer lets the operator remove what it wrote in the system
// namespace (signing keys, claims, API key records) before the object goes:
// owner references cannot cross namespaces.
const Finalizer = "tenantauth.io/cleanup"
