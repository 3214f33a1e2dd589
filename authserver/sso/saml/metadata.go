package saml

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	crewjam "github.com/crewjam/saml"
)

// MaxMetadataBytes bounds an identity provider's metadata document, as
// the SSOConnection's spec.saml.metadataXML is bounded.
const MaxMetadataBytes = 256 << 10

// IdPMetadata is an identity provider's SAML metadata, read and checked:
// what an SP needs to send users to it and to check what it signs.
type IdPMetadata struct {
	// EntityID is the identity provider's entity ID, the Issuer of its
	// responses.
	EntityID string
	// SSOURL is its single sign-on endpoint for the HTTP-Redirect binding,
	// where AuthnRequest sends the browser.
	SSOURL string
	// SigningCertificates are the certificates whose keys may sign its
	// responses and assertions.
	SigningCertificates []*x509.Certificate
	// CertificateExpiresAt is the earliest NotAfter of the signing
	// certificates valid at the time of parsing (of all of them, when
	// none is): the first moment sign-in may break, for the
	// SSOConnection's status.idpCertificateExpiresAt.
	CertificateExpiresAt time.Time

	entity *crewjam.EntityDescriptor
}

// ParseIdPMetadata reads an identity provider's metadata (an
// EntityDescriptor, or an EntitiesDescriptor holding exactly one
// identity provider), as spec.saml.metadataXML holds it or its
// metadataURL serves it. It refuses a document with a DTD, one without an
// HTTP-Redirect single sign-on endpoint, and one without a signing
// certificate valid at now. Signatures on the metadata are not checked:
// it comes from the organization's administrators, like the rest of the
// SSOConnection.
func ParseIdPMetadata(raw []byte, now time.Time) (*IdPMetadata, error) {
	if len(raw) > MaxMetadataBytes {
		return nil, fmt.Errorf("the metadata is larger than %d bytes", MaxMetadataBytes)
	}
	if _, err := guardXML(raw); err != nil {
		return nil, fmt.Errorf("read IdP metadata: %w", err)
	}
	entity, err := idpEntity(raw)
	if err != nil {
		return nil, fmt.Errorf("read IdP metadata: %w", err)
	}
	md := &IdPMetadata{EntityID: entity.EntityID, entity: entity}
	for _, d := range entity.IDPSSODescriptors {
		for _, s := range d.SingleSignOnServices {
			if s.Binding == crewjam.HTTPRedirectBinding && md.SSOURL == "" {
				md.SSOURL = s.Location
			}
		}
		for _, k := range d.KeyDescriptors {
			if k.Use != "" && k.Use != "signing" {
				continue
			}
			for _, c := range k.KeyInfo.X509Data.X509Certificates {
				cert, err := parseCertificate(c.Data)
				if err != nil {
					return nil, err
				}
				md.SigningCertificates = append(md.SigningCertificates, cert)
			}
		}
	}
	if md.SSOURL == "" {
		return nil, errors.New("the metadata has no SingleSignOnService for the HTTP-Redirect binding")
	}
	if u, err := url.Parse(md.SSOURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("the SingleSignOnService location %q is not an http(s) URL", md.SSOURL)
	}
	if len(md.SigningCertificates) == 0 {
		return nil, errors.New("the metadata has no signing certificate: assertions could not be checked")
	}
	expiry, ok := earliestValidExpiry(md.SigningCertificates, now)
	if !ok {
		return nil, fmt.Errorf("no signing certificate is valid now (the last expired %s)", expiry.Format(time.RFC3339))
	}
	md.CertificateExpiresAt = expiry
	return md, nil
}

// idpEntity is the one identity provider raw describes: its root
// EntityDescriptor, or the one entity with an IDPSSODescriptor in its
// root EntitiesDescriptor (nested ones included). Several are refused:
// which of them the organization means to trust cannot be told.
func idpEntity(raw []byte) (*crewjam.EntityDescriptor, error) {
	var root struct{ XMLName xml.Name }
	if err := xml.Unmarshal(raw, &root); err != nil {
		return nil, fmt.Errorf("the metadata is not XML: %w", err)
	}
	const mdNS = "urn:oasis:names:tc:SAML:2.0:metadata"
	var found []*crewjam.EntityDescriptor
	switch root.XMLName {
	case xml.Name{Space: mdNS, Local: "EntityDescriptor"}:
		e := &crewjam.EntityDescriptor{}
		if err := xml.Unmarshal(raw, e); err != nil {
			return nil, fmt.Errorf("the EntityDescriptor does not parse: %w", err)
		}
		found = append(found, e)
	case xml.Name{Space: mdNS, Local: "EntitiesDescriptor"}:
		all := &crewjam.EntitiesDescriptor{}
		if err := xml.Unmarshal(raw, all); err != nil {
			return nil, fmt.Errorf("the EntitiesDescriptor does not parse: %w", err)
		}
		var walk func(*crewjam.EntitiesDescriptor)
		walk = func(d *crewjam.EntitiesDescriptor) {
			for i := range d.EntityDescriptors {
				if len(d.EntityDescriptors[i].IDPSSODescriptors) > 0 {
					found = append(found, &d.EntityDescriptors[i])
				}
			}
			for i := range d.EntitiesDescriptors {
				walk(&d.EntitiesDescriptors[i])
			}
		}
		walk(all)
	default:
		return nil, fmt.Errorf("the metadata's root is %s, not a SAML EntityDescriptor", root.XMLName.Local)
	}
	if len(found) != 1 {
		return nil, fmt.Errorf("the metadata describes %d identity providers, not one", len(found))
	}
	if found[0].EntityID == "" || len(found[0].IDPSSODescriptors) == 0 {
		return nil, errors.New("the metadata has no entityID or no IDPSSODescriptor")
	}
	return found[0], nil
}

// earliestValidExpiry is the earliest NotAfter among the certificates
// valid at now, ok false when none is (and then the latest NotAfter).
func earliestValidExpiry(certs []*x509.Certificate, now time.Time) (t time.Time, ok bool) {
	var latest time.Time
	for _, c := range certs {
		if c.NotAfter.After(latest) {
			latest = c.NotAfter
		}
		if now.Before(c.NotBefore) || now.After(c.NotAfter) {
			continue
		}
		if !ok || c.NotAfter.Before(t) {
			t, ok = c.NotAfter, true
		}
	}
	if !ok {
		return latest, false
	}
	return t, true
}

func parseCertificate(b64 string) (*x509.Certificate, error) {
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(b64), ""))
	if err != nil {
		return nil, fmt.Errorf("an X509Certificate in the metadata is not base64: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("an X509Certificate in the metadata does not parse: %w", err)
	}
	return cert, nil
}

// SPMetadata is the metadata of the service provider entityID whose
// assertion consumer service is acsURL (HTTP-POST only), which
// GET /orgs/{org}/saml/metadata serves. It needs no identity provider:
// an administrator registers the SP at the IdP first and gets the IdP's
// metadata from there. It lists no key: AuthnRequests are not signed,
// and no IdP is offered a key to encrypt assertions to.
func SPMetadata(entityID, acsURL string) ([]byte, error) {
	sp, err := serviceProvider(entityID, acsURL)
	if err != nil {
		return nil, err
	}
	out, err := xml.MarshalIndent(sp.Metadata(), "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode SP metadata: %w", err)
	}
	return append([]byte(xml.Header), out...), nil
}

// serviceProvider is crewjam/saml's service provider for entityID and
// acsURL, without an identity provider yet.
func serviceProvider(entityID, acsURL string) (*crewjam.ServiceProvider, error) {
	if entityID == "" {
		return nil, errors.New("the SP entity ID is empty")
	}
	acs, err := url.Parse(acsURL)
	if err != nil || acs.Scheme == "" || acs.Host == "" {
		return nil, fmt.Errorf("the ACS URL %q is not an absolute URL", acsURL)
	}
	md, err := url.Parse(entityID)
	if err != nil {
		return nil, fmt.Errorf("the SP entity ID %q does not parse as a URL: %w", entityID, err)
	}
	return &crewjam.ServiceProvider{
		EntityID:                         entityID,
		MetadataURL:                      *md,
		AcsURL:                           *acs,
		AssertionConsumerServiceBindings: []string{crewjam.HTTPPostBinding},
		MetadataValidDuration:            7 * 24 * time.Hour,
	}, nil
}
