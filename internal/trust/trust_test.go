package trust

import (
	"testing"

	corev1 "k8s.io/api/core/v1"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
)

const sys = "tenantauth-system"

var owner = Owner{Namespace: "acme", Name: "acme", UID: "uid-1"}

func orgRecord(ns, name, id string) *corev1.Secret {
	s := New(ns, name, ComponentSigningKeys, owner)
	s.Annotations[AnnotationOrganizationID] = id
	return s
}

func keyRecord(ns, name, keyID string) *corev1.Secret {
	s := New(ns, name, ComponentAPIKeyRecord, owner)
	s.Annotations[AnnotationKeyID] = keyID
	s.Annotations[AnnotationOrganization] = "acme"
	s.Data = map[string][]byte{APIKeyHashDataKey: []byte("abc")}
	return s
}

// TestParsersTrustOnlyCanonicalRecords plays the Secrets a tenant (or a
// confused writer) could make: anything outside the system namespace, under
// a name its content does not dictate, or without a full owner is no
// record.
func TestParsersTrustOnlyCanonicalRecords(t *testing.T) {
	noOwner := orgRecord(sys, "org-01", "org_01")
	delete(noOwner.Labels, LabelOwnerUID)
	wrongKind := orgRecord(sys, "org-01", "org_01")
	wrongKind.Labels[tav1.LabelComponent] = tav1.ComponentSigningKeys + "x"
	tests := []struct {
		name string
		sec  *corev1.Secret
		ok   bool
	}{
		{"organization record", orgRecord(sys, "org-01", "org_01"), true},
		{"in a tenant namespace", orgRecord("evil", "org-01", "org_01"), false},
		{"named for another ID", orgRecord(sys, "org-02", "org_01"), false},
		{"an ID without the prefix", orgRecord(sys, "x-01", "x_01"), false},
		{"no owner UID", noOwner, false},
		{"another component", wrongKind, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := ParseOrgRecord(tt.sec, sys)
			if (err == nil) != tt.ok {
				t.Fatalf("ParseOrgRecord: %v, want ok=%v", err, tt.ok)
			}
			if tt.ok && (rec.ID != "org_01" || rec.Owner != owner) {
				t.Fatalf("record %+v", rec)
			}
		})
	}
	keys := []struct {
		name string
		sec  *corev1.Secret
		ok   bool
	}{
		{"key record", keyRecord(sys, APIKeyRecordName("k1"), "k1"), true},
		{"in a tenant namespace", keyRecord("evil", APIKeyRecordName("k1"), "k1"), false},
		{"named for another key ID", keyRecord(sys, APIKeyRecordName("k2"), "k1"), false},
	}
	for _, tt := range keys {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseAPIKeyRecord(tt.sec, sys); (err == nil) != tt.ok {
				t.Fatalf("ParseAPIKeyRecord: %v, want ok=%v", err, tt.ok)
			}
		})
	}
	claim := New(sys, SlugClaimName("acme"), ComponentSlugClaim, owner)
	claim.Annotations[AnnotationSlug] = "globex"
	if _, err := ParseSlugClaim(claim, sys); err == nil {
		t.Fatal("a claim named for acme claims globex")
	}
	claim.Annotations[AnnotationSlug] = "acme"
	if c, err := ParseSlugClaim(claim, sys); err != nil || c.Slug != "acme" {
		t.Fatalf("the genuine claim: %+v %v", c, err)
	}
}

func domainClaim(ns, name, domain string) *corev1.Secret {
	s := New(ns, name, ComponentDomainClaim, owner)
	s.Annotations[AnnotationDomain] = domain
	return s
}

// TestParseDomainClaim plays the claims a tenant could plant or a
// confused writer could make: only a claim in the system namespace, named
// for the well-formed, non-public domain it holds, with a full owner,
// makes a domain anyone's.
func TestParseDomainClaim(t *testing.T) {
	noOwner := domainClaim(sys, DomainClaimName("acme.com"), "acme.com")
	delete(noOwner.Annotations, AnnotationOwnerName)
	slugClaim := domainClaim(sys, DomainClaimName("acme.com"), "acme.com")
	slugClaim.Labels[tav1.LabelComponent] = ComponentSlugClaim
	tests := []struct {
		name string
		sec  *corev1.Secret
		ok   bool
	}{
		{"domain claim", domainClaim(sys, "domain-acme.com", "acme.com"), true},
		{"in a tenant namespace", domainClaim("evil", "domain-acme.com", "acme.com"), false},
		{"named for another domain", domainClaim(sys, "domain-globex.com", "acme.com"), false},
		{"no domain", domainClaim(sys, "domain-", ""), false},
		{"upper case", domainClaim(sys, "domain-ACME.com", "ACME.com"), false},
		{"a public mail domain", domainClaim(sys, "domain-gmail.com", "gmail.com"), false},
		{"no owner name", noOwner, false},
		{"another component", slugClaim, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseDomainClaim(tt.sec, sys)
			if (err == nil) != tt.ok {
				t.Fatalf("ParseDomainClaim: %v, want ok=%v", err, tt.ok)
			}
			if tt.ok && (c.Domain != "acme.com" || c.Owner != owner) {
				t.Fatalf("claim %+v", c)
			}
		})
	}
}

// TestOwnsNeedsTheSameUID: an object deleted and made again under the same
// name owns nothing of its predecessor's.
func TestOwnsNeedsTheSameUID(t *testing.T) {
	same := &corev1.Secret{}
	same.Namespace, same.Name, same.UID = "acme", "acme", "uid-1"
	again := same.DeepCopy()
	again.UID = "uid-2"
	if !owner.Owns(same) || owner.Owns(again) || (Owner{Namespace: "acme", Name: "acme"}).Owns(&corev1.Secret{}) {
		t.Fatal("Owns must match namespace, name and a non-empty UID")
	}
}
