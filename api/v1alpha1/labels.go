package v1alpha1

// Labels and values on the Secrets the operator and auth server write. The
// auth server's cache selects Secrets by LabelComponent, so Secrets without
// it (such as the plaintext API key a user reads) never enter its memory.
const (
	// LabelManagedBy marks every object tenantauth writes.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedByValue is the value of LabelManagedBy.
	ManagedByValue = "tenantauth"
	// LabelComponent says what a tenantauth Secret holds.
	LabelComponent = "tenantauth.io/component"

	// ComponentSigningKeys: an Organization's private JWK set.
	ComponentSigningKeys = "signing-keys"
	// ComponentAPIKey: an API key's plaintext, for its owner to read.
	ComponentAPIKey = "api-key"
	// ComponentAPIKeyHash: the hash the auth server checks an API key with.
	ComponentAPIKeyHash = "api-key-hash"
	// ComponentStore: an auth server store record.
	ComponentStore = "store"
	// ComponentInstallation: the installation key that keys user IDs.
	ComponentInstallation = "installation"

	// LabelOrganization names the Organization a Secret belongs to.
	LabelOrganization = "tenantauth.io/organization"
	// LabelAPIKey names the APIKey a hash Secret belongs to.
	LabelAPIKey = "tenantauth.io/apikey"
	// LabelKeyID is the key ID of an API key hash Secret.
	LabelKeyID = "tenantauth.io/key-id"

	// AnnotationOrganizationID records the Organization's permanent ID on
	// its signing-key Secret, so the ID survives a lost status.
	AnnotationOrganizationID = "tenantauth.io/organization-id"

	// AnnotationSSOConnection, on a Membership, names the SSOConnection
	// whose first sign-in made it just in time. Admission reads it to
	// allow the auth server that connection's roles, never owner.
	AnnotationSSOConnection = "tenantauth.io/sso-connection"

	// APIKeyDataKey is the data key of the plaintext API key.
	APIKeyDataKey = "api-key"
	// APIKeyHashDataKey is the data key of an API key's hash.
	APIKeyHashDataKey = "hash"
)

// APIKeyHashSecretName is the name of the Secret holding an API key's hash.
// Key IDs are lower-case base32, so the name is always valid.
func APIKeyHashSecretName(keyID string) string {
	return "apikey-" + keyID
}
