package authserver

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/tenantauth/tenantauth/authserver/session"

	"github.com/tenantauth/tenantauth/authserver/problem"

	"github.com/tenantauth/tenantauth/authserver/token"

	"github.com/tenantauth/tenantauth/authserver/directory"

	"github.com/tenantauth/tenantauth/internal/apikey"
)

// Principal is who a request is authenticated as: a member's session or an
// API key, always within one organization.
type Principal struct {
	// Kind is "user" or "api_key".
	Kind string
	Org  *directory.Org

	UserID    string
	Email     string
	Role      string
	SessionID string
	AMR       []string
	// AuthTime is when the session's family signed in.
	AuthTime time.Time
	// ViaCookie is set when the session came from the session cookie,
	// which makes state-changing requests need a CSRF token.
	ViaCookie bool

	KeyID  string
	Scopes []string
}

// Credential kinds in metrics and principals.
const (
	kindUser   = "user"
	kindAPIKey = "api_key"
)

// credential is what a request presents, in the contract's order:
// Authorization Bearer, X-API-Key, then the session cookie.
type credential struct {
	value    string
	isAPIKey bool
	cookie   bool
}

// extractCredential finds the request's credential without verifying it.
func extractCredential(r *http.Request, sessionCookie string) (credential, bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, v, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(v) == "" {
			return credential{}, false
		}
		v = strings.TrimSpace(v)
		return credential{value: v, isAPIKey: apikey.Looks(v)}, true
	}
	if v := strings.TrimSpace(r.Header.Get("X-API-Key")); v != "" {
		return credential{value: v, isAPIKey: true}, true
	}
	if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" {
		return credential{value: c.Value, cookie: true}, true
	}
	return credential{}, false
}

// authenticateInto verifies the request's credential and writes the
// principal into p, which the caller owns (/verify keeps it on its
// stack). ctx bounds the store calls.
func (s *Server) authenticateInto(ctx context.Context, r *http.Request, p *Principal) error {
	c, ok := extractCredential(r, s.cfg.SessionCookieName)
	if !ok {
		if r.Header.Get("Authorization") != "" {
			return problem.InvalidToken.Because("the Authorization header must read 'Bearer <token>'")
		}
		return errUnauthenticated
	}
	var err error
	if c.isAPIKey {
		err = s.verifyAPIKey(c.value, p)
		s.countVerification(kindAPIKey, err)
	} else {
		err = s.verifyAccessToken(ctx, c.value, p)
		s.countVerification(kindUser, err)
	}
	if err != nil {
		return err
	}
	p.ViaCookie = c.cookie
	return nil
}

func (s *Server) countVerification(kind string, err error) {
	result := "ok"
	if err != nil {
		// Only here, off the success path: errors.As makes e escape.
		result = "error"
		var e *problem.Error
		if errors.As(err, &e) {
			result = e.Code
		}
	}
	s.metrics.verified.get(verificationLabels{kind, result}).Inc()
}

// verifyAccessToken checks a JWT against its organization's keys only,
// then checks that the organization, the membership and the session are
// still live, so a disabled member or a revoked session fails at once.
// The principal is written into p.
func (s *Server) verifyAccessToken(ctx context.Context, raw string, p *Principal) error {
	v, ok := s.verified.Get(raw)
	var org *directory.Org
	if ok {
		var ks *directory.KeySet
		org, ks, ok = s.dir.OrgKeysByID(v.Claims.OrgID)
		ok = ok && ks == v.Keys
	}
	if !ok {
		var err error
		v, org, err = s.verifyJWT(raw)
		if err != nil {
			return err
		}
		s.verified.Put(raw, v)
	}
	c := &v.Claims
	if !c.CheckTimes(s.cfg.Now()) {
		return problem.TokenExpired.New()
	}
	m, ok := s.dir.MemberOf(c.Email, org.Ref)
	if !ok {
		return session.ErrMembershipInactive
	}
	f, err := s.checkSessionFor(ctx, c, org)
	if err != nil {
		return err
	}
	*p = Principal{Kind: kindUser, Org: org, UserID: c.Subject, Email: c.Email, Role: m.Role,
		SessionID: c.SessionID, AMR: c.AMR, AuthTime: f.AuthTime}
	return nil
}

// verifyJWT checks signature, algorithm, issuer, audience and type.
func (s *Server) verifyJWT(raw string) (*token.Verified, *directory.Org, error) {
	hdr, claims, input, sig, err := token.Parse(raw)
	if err != nil {
		return nil, nil, errInvalidToken
	}
	org, ks, ok := s.dir.OrgKeysByID(claims.OrgID)
	if !ok || ks == nil {
		return nil, nil, errInvalidToken
	}
	key := ks.Key(hdr.Kid)
	if key == nil || hdr.Typ != "at+jwt" || !token.VerifySignature(hdr.Alg, key, input, sig) {
		return nil, nil, errInvalidToken
	}
	if claims.Issuer != s.issuer(org) || claims.Audience != s.audience(org) || claims.OrgSlug != org.Slug {
		return nil, nil, errInvalidToken
	}
	return &token.Verified{Claims: claims, Keys: ks}, org, nil
}

// verifyAPIKey checks the key's checksum before any lookup, then its hash
// in constant time, then revocation, expiry and its organization. The
// principal is written into p.
func (s *Server) verifyAPIKey(raw string, p *Principal) error {
	k, err := apikey.Parse(raw)
	if err != nil {
		return problem.InvalidAPIKey.Because(err.Error())
	}
	info, hash, ok := s.dir.APIKey(k.ID)
	if !ok || !k.Matches(hash) {
		return problem.InvalidAPIKey.New()
	}
	if info.Revoked {
		return problem.APIKeyRevoked.New()
	}
	if !info.ExpiresAt.IsZero() && !s.cfg.Now().Before(info.ExpiresAt) {
		return problem.APIKeyExpired.New()
	}
	org, ok := s.dir.OrgByRef(info.OrgRef)
	if !ok {
		return problem.InvalidAPIKey.Because("the API key's organization no longer exists")
	}
	if !org.APIKeys {
		return problem.AuthMethodDisabled.Because("API keys are turned off for this organization")
	}
	*p = Principal{Kind: kindAPIKey, Org: org, KeyID: info.KeyID, Scopes: info.Scopes}
	return nil
}

// csrfToken is derived from the session ID, so checking it needs no store
// read: HMAC(secret, sid).
func (s *Server) csrfToken(sid string) string {
	m := hmac.New(sha256.New, s.csrfKey)
	m.Write([]byte(sid))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s *Server) csrfValid(sid, presented string) bool {
	return presented != "" && subtle.ConstantTimeCompare([]byte(s.csrfToken(sid)), []byte(presented)) == 1
}

// issuer is the organization's token issuer URL.
func (s *Server) issuer(o *directory.Org) string {
	return s.cfg.PublicURL + s.cfg.PathPrefix + "/orgs/" + o.Slug
}

// audience is the aud claim: spec.audience, else the issuer.
func (s *Server) audience(o *directory.Org) string {
	if o.Audience != "" {
		return o.Audience
	}
	return s.issuer(o)
}
