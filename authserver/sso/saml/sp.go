// Package saml is the SAML 2.0 service provider of one organization's
// SSOConnection: its metadata, the AuthnRequest that sends a browser to
// the identity provider, and the check of the response the browser posts
// back to POST /sso/saml/acs (DESIGN section 9).
//
// The XML signature and assertion rules are crewjam/saml's: this package
// writes no signature code. It calls the library's request-free entry
// points (ParseXMLResponse, not ParseResponse, which reads an
// *http.Request), so it takes parsed inputs and returns values and catalog
// errors, and only the HTTP layer imports net/http. What it adds:
//
//   - Before any XML parser sees a response or metadata, a strict
//     tokenizer pass refuses a DTD or entity declaration (XXE, entity
//     expansion), and more or fewer than one assertion anywhere in the
//     document (signature wrapping hides the attacker's assertion beside
//     or inside the signed one), and a response with no signature at all.
//   - Only SP-initiated sign-in: a response must answer one of the
//     caller's pending request IDs (InResponseTo).
//   - Each assertion is accepted once across replicas (ReplayCache,
//     backed by the store).
//   - SHA-1 signatures are refused.
//
// Every error a response can cause is a *problem.Error (400
// saml_response_malformed, 401 saml_response_invalid with the reason, 401
// saml_assertion_replayed), wrapped with the library's diagnosis for the
// log; only a store that cannot be reached gives a plain error (503).
package saml

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"

	crewjam "github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/tenantauth/tenantauth/authserver/problem"
)

// MaxResponseBytes bounds the SAMLResponse form value, base64 as posted.
// Responses with many groups run to tens of kilobytes; the auth server's
// body limit is 1 MiB.
const MaxResponseBytes = 512 << 10

// Config is one organization's service provider, facing the identity
// provider of its SSOConnection.
type Config struct {
	// EntityID is this SP's entity ID, the audience its assertions must
	// name. By SAML convention it is the URL of its metadata,
	// GET /orgs/{org}/saml/metadata, with the organization's ID rather
	// than its slug, so a renamed slug breaks no IdP configuration. Each
	// organization has its own: the audience is what keeps an assertion
	// for one organization from signing someone in to another that trusts
	// the same IdP.
	EntityID string
	// ACSURL is the absolute URL of POST /sso/saml/acs, shared by every
	// organization. Responses and their bearer confirmations must name it
	// (Destination, Recipient).
	ACSURL string
	// IdP is the identity provider's metadata, from ParseIdPMetadata.
	IdP *IdPMetadata
	// EmailAttribute is the attribute carrying the user's email
	// (claims.email). Empty reads the NameID, which is then requested in
	// the emailAddress format.
	EmailAttribute string
	// GroupsAttribute is the attribute carrying the user's groups
	// (claims.groups). Empty reads no groups.
	GroupsAttribute string
	// Replay records accepted assertions; required.
	Replay ReplayCache
}

// SP is a configured service provider. It is safe for concurrent use.
type SP struct {
	cfg  Config
	base *crewjam.ServiceProvider
}

// Assertion is what an accepted response says about the user.
type Assertion struct {
	// ID is the assertion's ID, now recorded as used.
	ID string
	// Issuer is the identity provider's entity ID.
	Issuer string
	// NameID is the subject's identifier at the IdP, and NameIDFormat its
	// format: with Issuer, the stable key of the external identity.
	NameID       string
	NameIDFormat string
	// Email is the user's email, from EmailAttribute or the NameID. It is
	// only what the IdP asserts: whether its domain is verified for the
	// organization is the caller's check.
	Email string
	// Groups are the values of GroupsAttribute, in order, for
	// roleMappings.
	Groups []string
	// SessionIndex is the IdP's session, for a later single logout.
	SessionIndex string
	// AuthnInstant is when the user authenticated at the IdP.
	AuthnInstant time.Time
	// NotOnOrAfter is the earliest NotOnOrAfter the assertion carries
	// (its Conditions, its bearer confirmation); zero when it has none.
	NotOnOrAfter time.Time
}

// New checks cfg and returns its SP.
func New(cfg Config) (*SP, error) {
	if cfg.IdP == nil || cfg.IdP.entity == nil {
		return nil, errors.New("saml: the IdP metadata is missing (use ParseIdPMetadata)")
	}
	if cfg.Replay == nil {
		return nil, errors.New("saml: a replay cache is required")
	}
	base, err := serviceProvider(cfg.EntityID, cfg.ACSURL)
	if err != nil {
		return nil, fmt.Errorf("saml: %w", err)
	}
	base.IDPMetadata = cfg.IdP.entity
	base.AuthnNameIDFormat = crewjam.UnspecifiedNameIDFormat
	if cfg.EmailAttribute == "" {
		base.AuthnNameIDFormat = crewjam.EmailAddressNameIDFormat
	}
	// Only SP-initiated sign-in: an unsolicited response is bound to no
	// browser, and would let a captured assertion sign in anyone's.
	base.AllowIDPInitiated = false
	base.RejectSHA1Signatures = true
	return &SP{cfg: cfg, base: base}, nil
}

// Metadata is this SP's metadata document (see SPMetadata).
func (sp *SP) Metadata() ([]byte, error) {
	return SPMetadata(sp.cfg.EntityID, sp.cfg.ACSURL)
}

// AuthnRequest makes an AuthnRequest for the IdP's HTTP-Redirect
// endpoint, asking for the response at the ACS by HTTP-POST. It returns
// the URL to send the browser to and the request's ID. The caller binds
// the ID to the browser (the SSO state cookie) and passes it to
// ParseResponse as a possible request ID; relayState comes back with the
// response unchanged and unsigned, so it may route but never authorize.
func (sp *SP) AuthnRequest(relayState string, now time.Time) (redirectURL, requestID string, err error) {
	c := sp.at(now)
	req, err := c.MakeAuthenticationRequest(sp.cfg.IdP.SSOURL, crewjam.HTTPRedirectBinding, crewjam.HTTPPostBinding)
	if err != nil {
		return "", "", fmt.Errorf("saml: make AuthnRequest: %w", err)
	}
	u, err := req.Redirect(relayState, c)
	if err != nil {
		return "", "", fmt.Errorf("saml: encode AuthnRequest: %w", err)
	}
	return u.String(), req.ID, nil
}

// at is a copy of the library's SP on a clock stopped at now. The copy
// keeps concurrent calls with different times apart.
func (sp *SP) at(now time.Time) *crewjam.ServiceProvider {
	c := *sp.base
	c.Clock = dsig.NewFakeClockAt(now)
	return &c
}

// ParseResponse checks samlResponse, the SAMLResponse form value posted
// to the ACS, at now: a response of the configured IdP, signed by one of
// its metadata's certificates (the response, or its one assertion), for
// this SP's audience, addressed to the ACS, answering one of
// possibleRequestIDs, within its validity window, and not seen before. It
// then records the assertion as used and returns what it says.
func (sp *SP) ParseResponse(ctx context.Context, samlResponse string, possibleRequestIDs []string, now time.Time) (*Assertion, error) {
	raw, err := decodeResponse(samlResponse)
	if err != nil {
		return nil, err
	}
	if len(possibleRequestIDs) == 0 {
		return nil, problem.SAMLResponseInvalid.Because("no SAML sign-in was started in this browser, or it expired: start again")
	}
	replay := &boundReplayCache{ctx: ctx, cache: sp.cfg.Replay, issuer: sp.cfg.IdP.EntityID}
	c := sp.at(now)
	c.ReplayCache = replay
	a, err := c.ParseXMLResponse(raw, possibleRequestIDs, c.AcsURL)
	if err != nil {
		if replay.storeErr != nil {
			return nil, fmt.Errorf("saml: %w", replay.storeErr)
		}
		return nil, rejection(err)
	}
	out, err := sp.assertion(a)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SignatureFailed reports whether err, from ParseResponse, refused the
// response for its signature: made with a certificate the IdP's metadata
// does not list (or not valid now), or not verifying. Metadata fetched
// again may list a certificate the IdP rotated to; nothing was recorded
// as used, so the response may be checked again.
func SignatureFailed(err error) bool { return errors.Is(err, crewjam.ErrInvalidSignature) }

// decodeResponse reads the posted value and passes it through the XML
// guard, so that the library only ever parses a document with no DTD,
// exactly one assertion and at least one signature where one counts.
func decodeResponse(samlResponse string) ([]byte, error) {
	if samlResponse == "" {
		return nil, problem.SAMLResponseMalformed.Because("SAMLResponse is missing")
	}
	if len(samlResponse) > MaxResponseBytes {
		return nil, problem.SAMLResponseMalformed.Because(fmt.Sprintf("SAMLResponse is larger than %d bytes", MaxResponseBytes))
	}
	// IdPs may wrap the base64 in lines.
	raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(samlResponse), ""))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", problem.SAMLResponseMalformed.Because("SAMLResponse is not base64"), err)
	}
	shape, err := guardXML(raw)
	switch {
	case errors.Is(err, errDTD):
		return nil, fmt.Errorf("%w: %w", problem.SAMLResponseMalformed.Because("the SAML response has a DTD or entity declaration, which is refused"), err)
	case err != nil:
		return nil, fmt.Errorf("%w: %w", problem.SAMLResponseMalformed.Because("the SAML response is not well-formed XML"), err)
	case shape.encryptedAssertions > 0:
		return nil, problem.SAMLResponseInvalid.Because("the SAML response holds an encrypted assertion; this service provider publishes no encryption key, so the identity provider must not encrypt")
	case shape.assertions != 1:
		return nil, problem.SAMLResponseInvalid.Because(fmt.Sprintf("the SAML response must hold exactly one assertion, not %d", shape.assertions))
	case shape.signatures == 0:
		return nil, problem.SAMLResponseInvalid.Because("the SAML response is not signed: the identity provider must sign the response or the assertion")
	}
	return raw, nil
}

// rejection is the catalog error for the library's refusal of a
// response, with its diagnosis wrapped for the log. The library's own
// error says only "Authentication failed" and carries the whole response,
// personal data included; only its diagnosis is kept.
func rejection(err error) error {
	var ire *crewjam.InvalidResponseError
	if errors.As(err, &ire) && ire.PrivateErr != nil {
		err = ire.PrivateErr
	}
	reason := "the SAML response is not valid for this service provider"
	var status crewjam.ErrBadStatus
	switch {
	case errors.Is(err, ErrReplayed):
		return fmt.Errorf("%w: %w", problem.SAMLAssertionReplayed.New(), err)
	case errors.As(err, &status):
		reason = fmt.Sprintf("the identity provider did not sign the user in (status %s)", status.Status)
	case errors.Is(err, crewjam.ErrUntrustedCertificate):
		reason = "the SAML response is signed with a certificate the identity provider's metadata does not list"
	case errors.Is(err, crewjam.ErrCertificateNotValidNow):
		reason = "the identity provider's signing certificate is expired or not yet valid"
	case errors.Is(err, crewjam.ErrInvalidSignature):
		reason = "the SAML response's signature does not verify"
	case errors.Is(err, crewjam.ErrExpired):
		reason = "the SAML assertion has expired (NotOnOrAfter has passed)"
	case errors.Is(err, crewjam.ErrNotYetValid):
		reason = "the SAML assertion is not valid yet; check the identity provider's clock"
	case errors.Is(err, crewjam.ErrAudienceMismatch):
		reason = "the SAML assertion is for another service provider (audience)"
	case errors.Is(err, crewjam.ErrDestinationMismatch):
		reason = "the SAML response is addressed to another recipient (Destination or Recipient is not this ACS)"
	case errors.Is(err, crewjam.ErrRequestIDMismatch):
		reason = "the SAML response answers no sign-in started in this browser (InResponseTo)"
	case errors.Is(err, crewjam.ErrIssuerMismatch):
		reason = "the SAML response comes from another identity provider (Issuer)"
	case errors.Is(err, crewjam.ErrMalformedMessage):
		return fmt.Errorf("%w: %w", problem.SAMLResponseMalformed.Because("the SAML response could not be read"), err)
	}
	return fmt.Errorf("%w: %w", problem.SAMLResponseInvalid.Because(reason), err)
}

// assertion reads the user out of an accepted assertion.
func (sp *SP) assertion(a *crewjam.Assertion) (*Assertion, error) {
	out := &Assertion{ID: a.ID, Issuer: a.Issuer.Value}
	if a.Subject != nil && a.Subject.NameID != nil {
		out.NameID, out.NameIDFormat = a.Subject.NameID.Value, a.Subject.NameID.Format
	}
	if out.NameID == "" {
		return nil, problem.SAMLResponseInvalid.Because("the SAML assertion names no subject (NameID)")
	}
	if len(a.AuthnStatements) > 0 {
		out.SessionIndex = a.AuthnStatements[0].SessionIndex
		out.AuthnInstant = a.AuthnStatements[0].AuthnInstant
	}
	out.NotOnOrAfter = notOnOrAfter(a)
	email := out.NameID
	if sp.cfg.EmailAttribute != "" {
		values := attributeValues(a, sp.cfg.EmailAttribute)
		if len(values) == 0 {
			return nil, problem.SAMLResponseInvalid.Because(fmt.Sprintf("the SAML assertion has no attribute %q for the email", sp.cfg.EmailAttribute))
		}
		email = values[0]
	}
	email = strings.TrimSpace(email)
	if addr, err := mail.ParseAddress(email); err != nil || addr.Address != email {
		return nil, problem.SAMLResponseInvalid.Because("the SAML assertion's email is not an email address")
	}
	out.Email = email
	if sp.cfg.GroupsAttribute != "" {
		out.Groups = attributeValues(a, sp.cfg.GroupsAttribute)
	}
	return out, nil
}

// attributeValues are the values of the attributes named name (by Name
// or FriendlyName), in document order.
func attributeValues(a *crewjam.Assertion, name string) []string {
	var out []string
	for _, st := range a.AttributeStatements {
		for _, attr := range st.Attributes {
			if attr.Name != name && attr.FriendlyName != name {
				continue
			}
			for _, v := range attr.Values {
				if v.Value != "" {
					out = append(out, v.Value)
				}
			}
		}
	}
	return out
}

// notOnOrAfter is the earliest NotOnOrAfter of the assertion's
// Conditions and bearer confirmations.
func notOnOrAfter(a *crewjam.Assertion) time.Time {
	var t time.Time
	earlier := func(c time.Time) {
		if !c.IsZero() && (t.IsZero() || c.Before(t)) {
			t = c
		}
	}
	if a.Conditions != nil {
		earlier(a.Conditions.NotOnOrAfter)
	}
	if a.Subject != nil {
		for _, sc := range a.Subject.SubjectConfirmations {
			if sc.SubjectConfirmationData != nil {
				earlier(sc.SubjectConfirmationData.NotOnOrAfter)
			}
		}
	}
	return t
}
