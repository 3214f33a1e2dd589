package controllers

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
)

// maxProviderDocument bounds a discovery document, JWKS or metadata.
const maxProviderDocument = 1 << 20

// fetch GETs url and returns its body, at most maxProviderDocument bytes.
// Errors name the URL and the status, never the body: it is the
// provider's, or whatever a tenant pointed the operator at.
func fetch(ctx context.Context, c *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", url, err)
	}
	req.Header.Set("Accept", "application/json, application/samlmetadata+xml, application/xml")
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch %s: status %d", url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxProviderDocument+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", url, err)
	}
	if len(body) > maxProviderDocument {
		return nil, fmt.Errorf("fetch %s: larger than %d bytes", url, maxProviderDocument)
	}
	return body, nil
}

// oidcDiscovery is the part of an OpenID Provider's discovery document the
// sign-in flow needs.
type oidcDiscovery struct {
	Issuer                string   `json:"issuer"`
	AuthorizationEndpoint string   `json:"authorization_endpoint"`
	TokenEndpoint         string   `json:"token_endpoint"`
	JWKSURI               string   `json:"jwks_uri"`
	SigningAlgs           []string `json:"id_token_signing_alg_values_supported"`
}

// discoverOIDC reads <issuer>/.well-known/openid-configuration and the
// JWKS it names. The document must name the configured issuer exactly
// (OpenID Connect Discovery 1.0, section 4.3), or ID tokens could not be
// checked against it.
func discoverOIDC(ctx context.Context, c *http.Client, o *tav1.OIDCConnection) (*providerInfo, error) {
	if o == nil {
		return nil, errors.New("spec.oidc is missing")
	}
	url := strings.TrimSuffix(o.Issuer, "/") + "/.well-known/openid-configuration"
	body, err := fetch(ctx, c, url)
	if err != nil {
		return nil, err
	}
	var d oidcDiscovery
	if err := json.Unmarshal(body, &d); err != nil {
		return nil, fmt.Errorf("discovery document %s is not JSON: %w", url, err)
	}
	switch {
	case d.Issuer != o.Issuer:
		return nil, fmt.Errorf("discovery document %s names issuer %q, not %q", url, d.Issuer, o.Issuer)
	case d.AuthorizationEndpoint == "" || d.TokenEndpoint == "" || d.JWKSURI == "":
		return nil, fmt.Errorf("discovery document %s lacks authorization_endpoint, token_endpoint or jwks_uri", url)
	case len(d.SigningAlgs) > 0 && !hasUsableAlg(d.SigningAlgs):
		return nil, fmt.Errorf("discovery document %s offers only ID-token algorithms %v", url, d.SigningAlgs)
	}
	jwksBody, err := fetch(ctx, c, d.JWKSURI)
	if err != nil {
		return nil, err
	}
	var jwks struct {
		Keys []struct {
			Use string   `json:"use"`
			X5C []string `json:"x5c"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(jwksBody, &jwks); err != nil {
		return nil, fmt.Errorf("JWKS %s is not JSON: %w", d.JWKSURI, err)
	}
	if len(jwks.Keys) == 0 {
		return nil, fmt.Errorf("JWKS %s holds no keys", d.JWKSURI)
	}
	p := &providerInfo{summary: fmt.Sprintf("discovery of %s read; %d signing key(s)", o.Issuer, len(jwks.Keys))}
	for _, k := range jwks.Keys {
		if k.Use != "" && k.Use != "sig" || len(k.X5C) == 0 {
			continue
		}
		der, err := base64.StdEncoding.DecodeString(k.X5C[0])
		if err != nil {
			return nil, fmt.Errorf("JWKS %s: x5c is not base64: %w", d.JWKSURI, err)
		}
		if err := p.addCertificate(der); err != nil {
			return nil, fmt.Errorf("JWKS %s: %w", d.JWKSURI, err)
		}
	}
	return p, nil
}

// hasUsableAlg reports whether algs offers an asymmetric algorithm: "none"
// and HMAC keyed with the client secret are never accepted for ID tokens.
func hasUsableAlg(algs []string) bool {
	for _, a := range algs {
		if a != "none" && !strings.HasPrefix(a, "HS") {
			return true
		}
	}
	return false
}

// addCertificate records one signing certificate's validity.
func (p *providerInfo) addCertificate(der []byte) error {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("signing certificate: %w", err)
	}
	p.certs = append(p.certs, validity{notBefore: cert.NotBefore, notAfter: cert.NotAfter.Truncate(time.Second)})
	return nil
}

// expiry is the earliest NotAfter among the certificates valid at now (a
// provider rotating publishes the next one ahead, and may still list the
// last one): the moment sign-in may break first. ok is false when none is
// valid at now.
func (p *providerInfo) expiry(now time.Time) (t time.Time, ok bool) {
	for _, c := range p.certs {
		if now.Before(c.notBefore) || now.After(c.notAfter) {
			continue
		}
		if !ok || c.notAfter.Before(t) {
			t, ok = c.notAfter, true
		}
	}
	return t, ok
}

// samlEntity is the part of SAML metadata (SAML 2.0 Metadata, section 2)
// the operator checks: the IdP's single sign-on endpoints and signing
// certificates. Signatures are not checked here: the sign-in flow's SAML
// library checks the assertions against these certificates.
type samlEntity struct {
	XMLName  xml.Name `xml:"urn:oasis:names:tc:SAML:2.0:metadata EntityDescriptor"`
	EntityID string   `xml:"entityID,attr"`
	IDP      []struct {
		Keys []struct {
			Use   string   `xml:"use,attr"`
			Certs []string `xml:"KeyInfo>X509Data>X509Certificate"`
		} `xml:"KeyDescriptor"`
		SSO []struct {
			Location string `xml:"Location,attr"`
		} `xml:"SingleSignOnService"`
	} `xml:"IDPSSODescriptor"`
}

// readSAMLMetadata reads the IdP's metadata from spec.saml and checks it
// describes an identity provider with a signing certificate.
func readSAMLMetadata(ctx context.Context, c *http.Client, s *tav1.SAMLConnection) (*providerInfo, error) {
	if s == nil {
		return nil, errors.New("spec.saml is missing")
	}
	raw, source := []byte(s.MetadataXML), "spec.saml.metadataXML"
	if s.MetadataURL != "" {
		var err error
		if raw, err = fetch(ctx, c, s.MetadataURL); err != nil {
			return nil, err
		}
		source = s.MetadataURL
	}
	p, err := parseSAMLMetadata(raw)
	if err != nil {
		return nil, fmt.Errorf("metadata from %s: %w", source, err)
	}
	return p, nil
}

// parseSAMLMetadata checks one EntityDescriptor. Documents with a DTD are
// refused outright: metadata needs none, and entity tricks live there.
func parseSAMLMetadata(raw []byte) (*providerInfo, error) {
	if bytes.Contains(raw, []byte("<!DOCTYPE")) || bytes.Contains(raw, []byte("<!ENTITY")) {
		return nil, errors.New("has a DTD, which SAML metadata never needs")
	}
	var e samlEntity
	if err := xml.Unmarshal(raw, &e); err != nil {
		return nil, fmt.Errorf("is not a SAML EntityDescriptor: %w", err)
	}
	if e.EntityID == "" || len(e.IDP) == 0 {
		return nil, errors.New("has no entityID or no IDPSSODescriptor")
	}
	p := &providerInfo{}
	endpoints := 0
	for _, idp := range e.IDP {
		for _, sso := range idp.SSO {
			if sso.Location != "" {
				endpoints++
			}
		}
		for _, k := range idp.Keys {
			if k.Use != "" && k.Use != "signing" {
				continue
			}
			for _, b64 := range k.Certs {
				der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(b64), ""))
				if err != nil {
					return nil, fmt.Errorf("X509Certificate is not base64: %w", err)
				}
				if err := p.addCertificate(der); err != nil {
					return nil, err
				}
			}
		}
	}
	if endpoints == 0 {
		return nil, errors.New("has no SingleSignOnService endpoint")
	}
	if len(p.certs) == 0 {
		return nil, errors.New("has no signing certificate: assertions could not be checked")
	}
	p.summary = fmt.Sprintf("metadata of %s read; %d sign-on endpoint(s)", e.EntityID, endpoints)
	return p, nil
}
