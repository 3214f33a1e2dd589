package authserver

import (
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/tenantauth/tenantauth/authserver/directory"
	"github.com/tenantauth/tenantauth/authserver/problem"
	"github.com/tenantauth/tenantauth/authserver/sso"
	"github.com/tenantauth/tenantauth/authserver/sso/saml"
)

// SAML sign-in. Each organization is its own service provider, with the
// entity ID <public URL>/orgs/<org ID>/saml/metadata (the metadata the
// administrator registers at the IdP); every organization shares one
// assertion consumer service, POST /sso/saml/acs. The flow cookie set by
// /sso/start names the connection and the AuthnRequest's ID, so the
// response must answer that request (InResponseTo) and is checked against
// that connection's IdP metadata only. RelayState is not trusted for
// anything.

// samlEntityID is the entity ID of org's service provider.
func (s *Server) samlEntityID(o *directory.Org) string {
	return s.cfg.PublicURL + s.cfg.PathPrefix + "/orgs/" + o.ID + "/saml/metadata"
}

func (s *Server) samlACSURL() string { return s.cfg.PublicURL + s.cfg.PathPrefix + "/sso/saml/acs" }

// samlSP is the service provider of conn: its organization's entity ID,
// and the IdP's metadata from the connection, kept for as long as the
// connection is the same (saml_providers.go).
func (s *Server) samlSP(ctx context.Context, conn *directory.SSOConnection) (*saml.SP, string, error) {
	org, ok := s.dir.OrgByRef(conn.OrgRef)
	if !ok {
		return nil, "", problem.SSONotConfigured.New()
	}
	entityID := s.samlEntityID(org)
	sp, err := s.samlSPs.get(ctx, conn, entityID)
	return sp, entityID, err
}

// buildSAMLSP builds the service provider of conn for entityID, with the
// IdP's metadata from the connection (inline, or fetched through the
// guarded SSO client).
func (s *Server) buildSAMLSP(ctx context.Context, conn *directory.SSOConnection, entityID string) (*saml.SP, error) {
	raw := []byte(conn.SAMLMetadataXML)
	if len(raw) == 0 {
		var err error
		if raw, err = s.fetchSAMLMetadata(ctx, conn.SAMLMetadataURL); err != nil {
			s.log.Info("SAML metadata unavailable", "connection", conn.Ref, "reason", err.Error())
			return nil, problem.SSOUnavailable.New()
		}
	}
	idp, err := saml.ParseIdPMetadata(raw, s.cfg.Now())
	if err != nil {
		s.log.Info("SAML metadata unusable", "connection", conn.Ref, "reason", err.Error())
		return nil, problem.SSOUnavailable.Because("the organization's identity provider metadata is unusable; ask an administrator")
	}
	return saml.New(saml.Config{EntityID: entityID, ACSURL: s.samlACSURL(), IdP: idp,
		EmailAttribute: conn.ClaimEmail, GroupsAttribute: conn.ClaimGroups, Replay: saml.StoreReplayCache{Store: s.store}})
}

// samlSourceAt is the source of the SAML connection served at ref, for
// the SP cache to drop the entries of connections gone or changed.
func (s *Server) samlSourceAt(ref string) (samlSource, bool) {
	conn, ok := s.dir.SSOConnection(ref)
	if !ok || conn.Protocol != "saml" {
		return samlSource{}, false
	}
	org, ok := s.dir.OrgByRef(conn.OrgRef)
	if !ok {
		return samlSource{}, false
	}
	return samlSourceOf(conn, s.samlEntityID(org)), true
}

// fetchSAMLMetadata reads an IdP's metadata document.
func (s *Server) fetchSAMLMetadata(ctx context.Context, url string) ([]byte, error) {
	if url == "" {
		return nil, fmt.Errorf("the connection names no metadata")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.ssoHTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	return io.ReadAll(resp.Body) // the SSO client caps bodies at 1 MiB
}

// samlStart begins a SAML sign-in: the IdP's sign-on URL with an
// AuthnRequest, and the flow that remembers its ID.
func (s *Server) samlStart(ctx context.Context, conn *directory.SSOConnection) (string, sso.Flow, error) {
	sp, _, err := s.samlSP(ctx, conn)
	if err != nil {
		return "", sso.Flow{}, err
	}
	now := s.cfg.Now()
	redirect, requestID, err := sp.AuthnRequest("", now)
	if err != nil {
		return "", sso.Flow{}, fmt.Errorf("saml authn request: %w", err)
	}
	return redirect, sso.Flow{Connection: conn.Ref, ConnectionUID: conn.UID, OrgRef: conn.OrgRef,
		State: sso.RandomString(32), RequestID: requestID, ExpiresAt: now.Add(sso.FlowTTL).Unix()}, nil
}

// handleSAMLMetadata is GET /orgs/{org}/saml/metadata: this service
// provider's metadata for the organization (slug or ID), for the
// administrator to register at the IdP.
func (s *Server) handleSAMLMetadata(w http.ResponseWriter, r *http.Request) error {
	o, ok := s.dir.Org(r.PathValue("org"))
	if !ok {
		return problem.OrganizationNotFound.New()
	}
	md, err := saml.SPMetadata(s.samlEntityID(o), s.samlACSURL())
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/samlmetadata+xml")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(md)
	return nil
}

// handleSAMLACS is POST /sso/saml/acs: the IdP's signed response, posted
// by the browser, ends the sign-in begun by /sso/start in this browser.
func (s *Server) handleSAMLACS(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Cache-Control", "no-store")
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		return problem.UnsupportedMediaType.Because("the SAML response must be posted as application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		return problem.SAMLResponseMalformed.Because("the form could not be read")
	}
	conn, flow, err := s.spendFlow(w, r, "saml")
	if err != nil {
		return err
	}
	if flow.RequestID == "" {
		return problem.SSOStateInvalid.New()
	}
	sp, entityID, err := s.samlSP(r.Context(), conn)
	if err != nil {
		return err
	}
	samlResponse := strings.TrimSpace(r.PostForm.Get("SAMLResponse"))
	a, err := sp.ParseResponse(r.Context(), samlResponse, []string{flow.RequestID}, s.cfg.Now())
	if saml.SignatureFailed(err) {
		// Maybe the IdP rotated its certificate since its metadata was
		// fetched: fetch it again (at most once a minute) and check once
		// more. Nothing was recorded as used by the failed check.
		if fresh := s.samlSPs.refresh(r.Context(), conn, entityID, sp); fresh != nil {
			a, err = fresh.ParseResponse(r.Context(), samlResponse, []string{flow.RequestID}, s.cfg.Now())
		}
	}
	if err != nil {
		return err
	}
	// A SAML IdP vouches for no email verification: the domain must be
	// verified for the organization (sso.Service.SignIn).
	out, err := s.sso.SignIn(r.Context(), conn, sso.Identity{Subject: a.NameID, Email: a.Email, Groups: a.Groups})
	return s.answer(w, out, err)
}

// samlFlowCookie is the flow cookie of a SAML sign-in: the
// IdP's POST to the ACS is cross-site, so a Lax cookie would not come
// with it. None needs Secure, so over plain http (dev) it stays Lax.
func (s *Server) samlFlowCookie(value string) *http.Cookie {
	c := s.ssoFlowCookie(value, int(sso.FlowTTL/time.Second))
	if c.Secure {
		c.SameSite = http.SameSiteNoneMode
	}
	return c
}
