// Package trust defines the records the auth server trusts: Secrets the
// operator writes in the system namespace (its own, never a tenant's), each
// naming the tenant object it belongs to by namespace, name and UID.
//
// A tenant's platform team may write Secrets, objects and even their status
// in its own namespaces. None of that is read here: a record counts only
// when it sits in the system namespace under its canonical name, and the
// auth server serves it only while a live object with the recorded UID
// exists. The names double as claims: the operator creates them with
// create-if-absent, so the first Organization to take a slug, an
// organization ID, a verified email domain or an API key ID keeps it.
//
// The controllers write these records and the auth server's informer source
// reads them; both share this package so the format lives in one place.
package trust

import (
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/internal/domains"
	"github.com/tenantauth/tenantauth/internal/signingkeys"
)

// Components of the records, as the value of tav1.LabelComponent.
const (
	// ComponentSigningKeys is an Organization's record: its permanent ID
	// and private JWK set.
	ComponentSigningKeys = tav1.ComponentSigningKeys
	// ComponentSlugClaim reserves a slug for one Organization.
	ComponentSlugClaim = "slug-claim"
	// ComponentAPIKeyRecord is an API key's verification record.
	ComponentAPIKeyRecord = "api-key-record"
	// ComponentDomainClaim makes a verified email domain one
	// Organization's.
	ComponentDomainClaim = "domain-claim"
	// ComponentSSOClientSecret is the operator's copy of an
	// SSOConnection's OIDC client secret, which the auth server may read
	// only here, in the system namespace.
	ComponentSSOClientSecret = "sso-client-secret"
)

// Components lists every record component, for cache selectors.
var Components = []string{ComponentSigningKeys, ComponentSlugClaim, ComponentAPIKeyRecord, ComponentDomainClaim, ComponentSSOClientSecret}

// Labels and annotations on the records. Object names may be longer than a
// label value allows, so namespace and name are annotations; the UID is a
// label so the operator finds an object's record through its cache.
const (
	LabelOwnerUID            = "tenantauth.io/owner-uid"
	AnnotationOwnerNamespace = "tenantauth.io/owner-namespace"
	AnnotationOwnerName      = "tenantauth.io/owner-name"
	AnnotationOrganizationID = tav1.AnnotationOrganizationID
	AnnotationSlug           = "tenantauth.io/slug"
	AnnotationOrganization   = "tenantauth.io/organization"
	AnnotationKeyID          = "tenantauth.io/key-id"
	AnnotationDomain         = "tenantauth.io/domain"
)

// Owner is the tenant object a record belongs to.
type Owner struct {
	Namespace string
	Name      string
	UID       types.UID
}

// OwnerOf names obj as a record's owner.
func OwnerOf(obj metav1.Object) Owner {
	return Owner{Namespace: obj.GetNamespace(), Name: obj.GetName(), UID: obj.GetUID()}
}

// Ref is the owner's "<namespace>/<name>".
func (o Owner) Ref() string { return o.Namespace + "/" + o.Name }

// Owns reports whether obj is the owner: same namespace, name and UID. A
// deleted and re-created object of the same name has a new UID and owns
// nothing of its predecessor's.
func (o Owner) Owns(obj metav1.Object) bool {
	return o.UID != "" && o.UID == obj.GetUID() && o.Namespace == obj.GetNamespace() && o.Name == obj.GetName()
}

// SigningKeysName is the name of an Organization's record, made from its
// permanent ID ("org_<ulid>" becomes "org-<ulid>"), so that creating it
// claims the ID.
func SigningKeysName(orgID string) string {
	return strings.ReplaceAll(orgID, "_", "-")
}

// SlugClaimName is the name of the Secret that reserves slug.
func SlugClaimName(slug string) string { return "slug-" + slug }

// DomainClaimName is the name of the Secret that makes domain one
// Organization's. Domain names are lower-case DNS names (domains.ValidName),
// so the name is always a valid object name.
func DomainClaimName(domain string) string { return "domain-" + domain }

// SSOClientSecretName is the name of an SSOConnection's client-secret
// record: its UID, so a re-made connection of the same name never reads
// its predecessor's secret.
func SSOClientSecretName(uid types.UID) string { return "sso-" + string(uid) }

// APIKeyRecordName is the name of an API key's verification record, so that
// creating it claims the key ID. Key IDs are lower-case base32.
func APIKeyRecordName(keyID string) string { return tav1.APIKeyHashSecretName(keyID) }

// New returns a record Secret in namespace with the owner's labels and
// annotations set; callers add their data.
func New(namespace, name, component string, owner Owner) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace, Name: name,
			Labels: map[string]string{
				tav1.LabelManagedBy: tav1.ManagedByValue, tav1.LabelComponent: component,
				LabelOwnerUID: string(owner.UID),
			},
			Annotations: map[string]string{
				AnnotationOwnerNamespace: owner.Namespace, AnnotationOwnerName: owner.Name,
			},
		},
		Type: corev1.SecretTypeOpaque,
	}
}

// Errors of the parsers. A Secret that fails them is ignored, never
// half-trusted.
var (
	ErrNotRecord = errors.New("not a tenantauth record")
)

// recordOwner checks sec is a record of component in the system namespace
// and returns its owner.
func recordOwner(sec *corev1.Secret, systemNamespace, component string) (Owner, error) {
	if sec.Namespace != systemNamespace || sec.Labels[tav1.LabelComponent] != component {
		return Owner{}, ErrNotRecord
	}
	o := Owner{
		Namespace: sec.Annotations[AnnotationOwnerNamespace], Name: sec.Annotations[AnnotationOwnerName],
		UID: types.UID(sec.Labels[LabelOwnerUID]),
	}
	if o.Namespace == "" || o.Name == "" || o.UID == "" {
		return Owner{}, fmt.Errorf("record %s/%s: %w: no owner", sec.Namespace, sec.Name, ErrNotRecord)
	}
	return o, nil
}

// OrgRecord is an Organization's record: its permanent ID and keys.
type OrgRecord struct {
	Owner Owner
	ID    string
	// Keys is the private JWK set, as signingkeys.Parse reads it.
	Keys []byte
}

// ParseOrgRecord reads an Organization's record. The name must be the one
// its ID dictates, so a record cannot claim an ID it was not created under.
func ParseOrgRecord(sec *corev1.Secret, systemNamespace string) (*OrgRecord, error) {
	owner, err := recordOwner(sec, systemNamespace, ComponentSigningKeys)
	if err != nil {
		return nil, err
	}
	id := sec.Annotations[AnnotationOrganizationID]
	if !strings.HasPrefix(id, "org_") || SigningKeysName(id) != sec.Name {
		return nil, fmt.Errorf("record %s: %w: organization ID %q does not match its name", sec.Name, ErrNotRecord, id)
	}
	return &OrgRecord{Owner: owner, ID: id, Keys: sec.Data[signingkeys.DataKey]}, nil
}

// SlugClaim reserves a slug for one Organization.
type SlugClaim struct {
	Owner Owner
	Slug  string
}

// ParseSlugClaim reads a slug claim; its name must match the slug.
func ParseSlugClaim(sec *corev1.Secret, systemNamespace string) (*SlugClaim, error) {
	owner, err := recordOwner(sec, systemNamespace, ComponentSlugClaim)
	if err != nil {
		return nil, err
	}
	slug := sec.Annotations[AnnotationSlug]
	if slug == "" || SlugClaimName(slug) != sec.Name {
		return nil, fmt.Errorf("claim %s: %w: slug %q does not match its name", sec.Name, ErrNotRecord, slug)
	}
	return &SlugClaim{Owner: owner, Slug: slug}, nil
}

// DomainClaim makes a verified email domain one Organization's. It exists
// only while the domain's TXT challenge holds that Organization's token;
// its creation time is when the domain was verified.
type DomainClaim struct {
	Owner  Owner
	Domain string
}

// ParseDomainClaim reads a domain claim; its name must match the domain,
// and the domain must be a well-formed name that is no public mail
// provider's.
func ParseDomainClaim(sec *corev1.Secret, systemNamespace string) (*DomainClaim, error) {
	owner, err := recordOwner(sec, systemNamespace, ComponentDomainClaim)
	if err != nil {
		return nil, err
	}
	d := sec.Annotations[AnnotationDomain]
	if domains.ValidName(d) != nil || DomainClaimName(d) != sec.Name || domains.IsPublicMail(d) {
		return nil, fmt.Errorf("claim %s: %w: domain %q does not match its name or is not claimable", sec.Name, ErrNotRecord, d)
	}
	return &DomainClaim{Owner: owner, Domain: d}, nil
}

// APIKeyHashDataKey is the data key of an API key record's hash.
const APIKeyHashDataKey = tav1.APIKeyHashDataKey

// APIKeyRecord is what the auth server checks an API key against.
type APIKeyRecord struct {
	Owner Owner
	KeyID string
	Hash  string
	// Organization is the APIKey's spec.organization, in Owner.Namespace.
	Organization string
}

// OrgRef is the "<namespace>/<name>" of the key's Organization.
func (r *APIKeyRecord) OrgRef() string { return r.Owner.Namespace + "/" + r.Organization }

// ParseAPIKeyRecord reads an API key record; its name must match the key ID.
func ParseAPIKeyRecord(sec *corev1.Secret, systemNamespace string) (*APIKeyRecord, error) {
	owner, err := recordOwner(sec, systemNamespace, ComponentAPIKeyRecord)
	if err != nil {
		return nil, err
	}
	r := &APIKeyRecord{Owner: owner, KeyID: sec.Annotations[AnnotationKeyID],
		Hash: string(sec.Data[APIKeyHashDataKey]), Organization: sec.Annotations[AnnotationOrganization]}
	if r.KeyID == "" || APIKeyRecordName(r.KeyID) != sec.Name || r.Hash == "" || r.Organization == "" {
		return nil, fmt.Errorf("record %s: %w: incomplete", sec.Name, ErrNotRecord)
	}
	return r, nil
}

// SSOClientSecretDataKey is the data key of the client secret in its
// record.
const SSOClientSecretDataKey = "client-secret"

// SSOClientSecret is the operator's copy of an SSOConnection's client
// secret. Secret must never reach a log, an event or status.
type SSOClientSecret struct {
	Owner  Owner
	Secret string
}

// ParseSSOClientSecret reads a client-secret record; its name must be the
// one its owner's UID dictates.
func ParseSSOClientSecret(sec *corev1.Secret, systemNamespace string) (*SSOClientSecret, error) {
	owner, err := recordOwner(sec, systemNamespace, ComponentSSOClientSecret)
	if err != nil {
		return nil, err
	}
	v := string(sec.Data[SSOClientSecretDataKey])
	if sec.Name != SSOClientSecretName(owner.UID) || v == "" {
		return nil, fmt.Errorf("record %s: %w: name does not match its owner, or no secret", sec.Name, ErrNotRecord)
	}
	return &SSOClientSecret{Owner: owner, Secret: v}, nil
}
