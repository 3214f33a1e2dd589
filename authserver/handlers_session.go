package authserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"strings"
	"time"

	"github.com/tenantauth/tenantauth/authserver/account"
	"github.com/tenantauth/tenantauth/authserver/session"

	"github.com/tenantauth/tenantauth/authserver/problem"

	"github.com/tenantauth/tenantauth/authserver/token"

	"github.com/tenantauth/tenantauth/authserver/directory"

	"github.com/tenantauth/tenantauth/authserver/store"
	"github.com/tenantauth/tenantauth/internal/identity"
)

func normalizeEmail(e string) string { return identity.NormalizeEmail(e) }

// validEmail checks an address's shape (RFC 5322 addr-spec, no display
// name) and that it is in its canonical form (identity.CanonicalEmail),
// so look-alike spellings never become identities of their own.
func validEmail(e string) bool {
	if len(e) < 3 || len(e) > 254 {
		return false
	}
	if c, err := identity.CanonicalEmail(e); err != nil || c != e {
		return false
	}
	a, err := mail.ParseAddress(e)
	return err == nil && a.Address == e && strings.Contains(e[strings.LastIndexByte(e, '@'):], ".")
}

// userFor derives the user of an email.
func (s *Server) userFor(email string) session.User {
	return session.User{ID: identity.UserID(s.userIDKey, email), Email: email}
}

// findMembership picks the membership of ref (org ID or slug) among ms.
func findMembership(ms []directory.Membership, ref string) (directory.Membership, bool) {
	for _, m := range ms {
		if m.Org.ID == ref || m.Org.Slug == ref {
			return m, true
		}
	}
	return directory.Membership{}, false
}

type loginRequest struct {
	Email        string `json:"email"`
	Password     string `json:"password"`
	Organization string `json:"organization"`
}

// handleLogin is POST /auth/login. Unknown emails and wrong passwords get
// the same answer after the same work: one argon2id verification.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) error {
	var req loginRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	email := normalizeEmail(req.Email)
	if !validEmail(email) {
		return problem.InvalidEmail.New()
	}
	if req.Password == "" || len(req.Password) > 1024 {
		return problem.InvalidPassword.New()
	}
	u := s.userFor(email)
	_, creds, err := s.accounts.LoadCredentials(r.Context(), u.ID)
	if err != nil {
		return err
	}
	ok, err := s.accounts.PasswordSignIn(r.Context(), u, req.Password, creds)
	if err != nil {
		return err
	}
	var ms []directory.Membership
	for _, m := range s.dir.Memberships(email) {
		if m.Org.Password {
			ms = append(ms, m)
		}
	}
	if !ok || len(ms) == 0 {
		return errInvalidCredentials
	}
	amr := []string{"pwd"}
	if req.Organization != "" {
		m, found := findMembership(ms, req.Organization)
		if !found {
			return problem.NotAMember.Because("you are not a member of that organization, or it does not allow password login")
		}
		out, err := s.accounts.CompleteLogin(r.Context(), u, amr, m, nil)
		return s.answer(w, out, err)
	}
	if len(ms) == 1 {
		out, err := s.accounts.CompleteLogin(r.Context(), u, amr, ms[0], nil)
		return s.answer(w, out, err)
	}
	resp, err := s.sessions.StartIntermediate(r.Context(), u, amr, nil, false)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

type exchangeRequest struct {
	IntermediateSessionToken string `json:"intermediate_session_token"`
	OrganizationID           string `json:"organization_id"`
}

// handleExchangeSession is POST /users/exchange-session: an intermediate
// session, or (to switch organizations) a live session, becomes a session
// of the chosen organization.
func (s *Server) handleExchangeSession(w http.ResponseWriter, r *http.Request) error {
	var req exchangeRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.OrganizationID == "" {
		return problem.InvalidOrganization.Because("organization_id is required (an organization ID or slug)")
	}
	if req.IntermediateSessionToken == "" {
		return s.switchOrganization(w, r, req.OrganizationID)
	}
	rec, in, err := s.sessions.LoadIntermediate(r.Context(), req.IntermediateSessionToken)
	if err != nil {
		return err
	}
	u := session.User{ID: in.UserID, Email: in.Email}
	m, ok := findMembership(s.dir.Memberships(in.Email), req.OrganizationID)
	if !ok {
		if _, exists := s.dir.Org(req.OrganizationID); !exists {
			return errOrgNotFound
		}
		return problem.NotAMember.New()
	}
	if !s.methodAllowed(m.Org, in.AMR, in.OrgRef) {
		return problem.AuthMethodDisabled.New()
	}
	out, err := s.accounts.CompleteLogin(r.Context(), u, in.AMR, m, &session.Pending{Rec: rec, In: in, Token: req.IntermediateSessionToken})
	return s.answer(w, out, err)
}

// switchOrganization exchanges the caller's session for one in another of
// their organizations without signing in again, as Stytch's
// sessions/exchange does. The new session joins the caller's session
// family: it keeps the family's sign-in time, absolute expiry and amr, and
// ends with it (logout, reuse, reset). So a leaked access token cannot
// become a session that outlives, or survives, the one it came from. The
// second factor carries over only when the target does not need more than
// the current session proved.
func (s *Server) switchOrganization(w http.ResponseWriter, r *http.Request, target string) error {
	p, err := s.authenticateRequest(r)
	if err != nil {
		return err
	}
	if p.Kind != kindUser {
		return problem.UserSessionRequired.Because("only a user session can switch organizations")
	}
	ctx := r.Context()
	src, err := s.liveSession(ctx, p)
	if err != nil {
		return err
	}
	m, ok := findMembership(s.dir.Memberships(p.Email), target)
	if !ok {
		return problem.NotAMember.New()
	}
	if !s.methodAllowed(m.Org, src.AMR, "") {
		return problem.AuthMethodDisabled.New()
	}
	lin := &session.Lineage{FamilyID: src.FamilyID, AuthTime: src.AuthTime, AbsoluteExpiresAt: src.AbsoluteExpiresAt}
	out, err := s.accounts.CompleteLoginIn(ctx, session.User{ID: src.UserID, Email: src.Email}, src.AMR, m, nil, lin)
	return s.answer(w, out, err)
}

// liveSession reads the principal's session for a switch: it must be the
// principal's, live, inside both its TTLs, and in a family. A session from
// before families has no family to join, so it must sign in again.
func (s *Server) liveSession(ctx context.Context, p *Principal) (*session.Session, error) {
	var sess session.Session
	_, err := store.Load(ctx, s.store, store.KindSession, p.SessionID, &sess)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, session.ErrEnded
	case err != nil:
		return nil, fmt.Errorf("read session to switch: %w", err)
	}
	now := s.cfg.Now()
	switch {
	case sess.RevokedAt != nil, sess.UserID != p.UserID, sess.OrgID != p.Org.ID:
		return nil, session.ErrEnded
	case !now.Before(sess.IdleExpiresAt), !now.Before(sess.AbsoluteExpiresAt):
		return nil, problem.SessionExpired.New()
	case sess.FamilyID == "":
		return nil, problem.SessionExpired.Because("this session predates session families; sign in again to switch")
	}
	return &sess, nil
}

// methodAllowed reports whether the organization o allows the sign-in
// method amr names. An SSO sign-in speaks only for the organization whose
// identity provider made it: it continues only in boundOrgRef, the
// organization its intermediate session was made for, and never switches
// into another organization (an IdP of org A says nothing about org B).
func (s *Server) methodAllowed(o *directory.Org, amr []string, boundOrgRef string) bool {
	for _, a := range amr {
		switch a {
		case "sso":
			return boundOrgRef != "" && boundOrgRef == o.Ref
		case "pwd":
			return o.Password
		case "email":
			return o.MagicLink
		}
	}
	return false
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

// handleRefresh is POST /auth/refresh, from the body or the refresh cookie.
func (s *Server) handleRefresh(w http.ResponseWriter, r *http.Request) error {
	var req refreshRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	fromCookie := false
	if req.RefreshToken == "" {
		if c, err := r.Cookie(s.cfg.RefreshCookieName); err == nil {
			req.RefreshToken, fromCookie = c.Value, true
		}
	}
	if req.RefreshToken == "" {
		return problem.InvalidRefreshToken.Because("refresh_token is required, in the body or the refresh cookie")
	}
	// A refresh driven by a cookie is a browser request another site could
	// forge; it must carry the CSRF token of the session it refreshes.
	if fromCookie {
		id, _, ok := token.ParseOpaque(token.PrefixRefresh, req.RefreshToken)
		if !ok || !s.csrfValid(session.IDPrefix+id, r.Header.Get("X-CSRF-Token")) {
			return errCSRF
		}
	}
	resp, err := s.sessions.Refresh(r.Context(), req.RefreshToken)
	if err != nil {
		return err
	}
	s.writeSession(w, http.StatusOK, resp)
	return nil
}

// handleLogout is POST /auth/logout: revokes the session, clears cookies.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if p.Kind != kindUser {
		return problem.UserSessionRequired.Because("API keys have no session to log out of")
	}
	if err := s.sessions.RevokeSession(r.Context(), p.SessionID, "logout"); err != nil {
		return err
	}
	s.clearCookies(w)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleMe is GET /auth/me.
func (s *Server) handleMe(w http.ResponseWriter, _ *http.Request, p *Principal) error {
	if p.Kind == kindAPIKey {
		writeJSON(w, http.StatusOK, map[string]any{
			"type": "api_key", "key_id": p.KeyID, "organization_id": p.Org.ID,
			"organization_slug": p.Org.Slug, "scopes": append([]string{}, p.Scopes...),
		})
		return nil
	}
	rd, _ := p.Org.Role(p.Role)
	writeJSON(w, http.StatusOK, map[string]any{
		"type": "user", "id": p.UserID, "email": p.Email, "organization_id": p.Org.ID,
		"organization_slug": p.Org.Slug, "role": p.Role, "permissions": append([]string{}, rd.Permissions...), "session_id": p.SessionID,
	})
	return nil
}

// writeSession answers a session response and sets both cookies.
func (s *Server) writeSession(w http.ResponseWriter, status int, resp *session.Response) {
	s.setSessionCookies(w, resp)
	writeJSON(w, status, resp)
}

// setSessionCookies sets the access-token and refresh-token cookies.
func (s *Server) setSessionCookies(w http.ResponseWriter, resp *session.Response) {
	secure := !strings.HasPrefix(s.cfg.PublicURL, "http://")
	exp, _ := time.Parse(time.RFC3339, resp.Session.ExpiresAt)
	http.SetCookie(w, &http.Cookie{Name: s.cfg.SessionCookieName, Value: resp.AccessToken, Path: "/",
		Domain: s.cfg.CookieDomain, Expires: exp, HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode})
	http.SetCookie(w, &http.Cookie{Name: s.cfg.RefreshCookieName, Value: resp.RefreshToken, Path: s.cfg.PathPrefix + "/auth",
		Domain: s.cfg.CookieDomain, HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode})
}

// writeOutcome answers a finished sign-in: the session response with its
// cookies, or the intermediate response. extra fields (the recovery codes
// of a TOTP enrolment) join the JSON body.
func (s *Server) writeOutcome(w http.ResponseWriter, o *account.LoginOutcome, extra map[string]any) error {
	var body any = o.Intermediate
	if o.Session != nil {
		s.setSessionCookies(w, o.Session)
		body = o.Session
	}
	if extra != nil {
		m := map[string]any{}
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			return err
		}
		for k, v := range extra {
			m[k] = v
		}
		body = m
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

// answer writes out, or returns err for the error writer.
func (s *Server) answer(w http.ResponseWriter, out *account.LoginOutcome, err error) error {
	if err != nil {
		return err
	}
	return s.writeOutcome(w, out, nil)
}

// clearCookies expires both cookies.
func (s *Server) clearCookies(w http.ResponseWriter) {
	secure := !strings.HasPrefix(s.cfg.PublicURL, "http://")
	for _, c := range []struct{ name, path string }{{s.cfg.SessionCookieName, "/"}, {s.cfg.RefreshCookieName, s.cfg.PathPrefix + "/auth"}} {
		http.SetCookie(w, &http.Cookie{Name: c.name, Value: "", Path: c.path, Domain: s.cfg.CookieDomain, MaxAge: -1,
			HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode})
	}
}
