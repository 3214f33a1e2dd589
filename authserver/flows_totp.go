package authserver

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/tenantauth/tenantauth/authserver/session"

	"github.com/tenantauth/tenantauth/authserver/problem"

	"github.com/tenantauth/tenantauth/authserver/directory"

	"github.com/tenantauth/tenantauth/authserver/store"
)

// TOTP two-factor authentication: setup, enable, disable and verify.

type totpRequest struct {
	IntermediateSessionToken string `json:"intermediate_session_token"`
	Code                     string `json:"code"`
	RecoveryCode             string `json:"recovery_code"`
	Organization             string `json:"organization"`
}

// totpActor is who sets up TOTP: a signed-in user, or a user half-way
// through signing in to an organization that requires MFA, who has no
// TOTP yet and so gets no session until they turn it on.
type totpActor struct {
	u       session.User
	pending *session.Pending     // set on the intermediate path
	m       directory.Membership // the organization requiring MFA, on that path
}

// totpActorFor authenticates setup and enable: the intermediate session
// token in the body when there is one, else the request's session (Bearer,
// or cookie with CSRF token), whose family must have signed in within
// reauthWindow. The intermediate path of a sign-in counts as fresh: its
// user proved a first factor minutes ago; that of a switch counts as its
// family's sign-in.
func (s *Server) totpActorFor(r *http.Request, req *totpRequest) (*totpActor, error) {
	ctx := r.Context()
	if req.IntermediateSessionToken == "" {
		p, err := s.authenticateRequest(r)
		if err != nil {
			return nil, err
		}
		if p.Kind != kindUser {
			return nil, problem.UserSessionRequired.New()
		}
		if err := s.requireRecentSignIn(p); err != nil {
			return nil, err
		}
		return &totpActor{u: session.User{ID: p.UserID, Email: p.Email}}, nil
	}
	rec, in, err := s.sessions.LoadIntermediate(ctx, req.IntermediateSessionToken)
	if err != nil {
		return nil, err
	}
	// An intermediate session made by a switch proves only the switching
	// session's sign-in, which may be old or a stolen token's.
	if in.Lineage != nil && s.cfg.Now().Sub(in.Lineage.AuthTime) > session.ReauthWindow {
		return nil, session.ErrReauth
	}
	notAllowed := problem.MFASetupNotAllowed.New()
	org, ok := s.dir.OrgByRef(in.OrgRef)
	if in.OrgRef == "" || !ok || !org.MFARequired {
		return nil, notAllowed
	}
	m, ok := s.dir.MemberOf(in.Email, org.Ref)
	if !ok {
		return nil, problem.NotAMember.New()
	}
	on, err := s.totpEnabled(ctx, in.UserID)
	if err != nil {
		return nil, err
	}
	if on {
		return nil, problem.MFAVerifyRequired.New()
	}
	return &totpActor{u: session.User{ID: in.UserID, Email: in.Email},
		pending: &session.Pending{Rec: rec, In: in, Token: req.IntermediateSessionToken}, m: directory.Membership{Member: m, Org: org}}, nil
}

// handleTOTPSetup is POST /auth/2fa/setup: a new secret, not yet on, with
// its otpauth URL and QR code. Setting up again replaces a secret that was
// never turned on.
func (s *Server) handleTOTPSetup(w http.ResponseWriter, r *http.Request) error {
	var req totpRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	a, err := s.totpActorFor(r, &req)
	if err != nil {
		return err
	}
	key, err := s.newTOTPKey(a.u.Email)
	if err != nil {
		return err
	}
	qr, err := qrDataURL(key)
	if err != nil {
		return err
	}
	if err := s.UpdateCredentials(r.Context(), a.u.ID, func(c *Credentials) error {
		if c.TOTPEnabled {
			return errTOTPOn
		}
		c.TOTPSecret, c.RecoveryHashes = key.Secret(), nil
		return nil
	}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"secret": key.Secret(), "otpauth_url": key.URL(), "qr_code": qr})
	return nil
}

// handleTOTPEnable is POST /auth/2fa/enable: a code from the new secret
// turns TOTP on and yields the recovery codes. On the intermediate path it
// also finishes the sign-in: the answer carries the session response's
// fields too, with amr gaining otp.
func (s *Server) handleTOTPEnable(w http.ResponseWriter, r *http.Request) error {
	var req totpRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.Code == "" {
		return errCodeRequired
	}
	a, err := s.totpActorFor(r, &req)
	if err != nil {
		return err
	}
	ctx := r.Context()
	codes, hashes := newRecoveryCodes(s.recoveryKey)
	err = s.UpdateCredentials(ctx, a.u.ID, func(c *Credentials) error {
		switch {
		case c.TOTPEnabled:
			return errTOTPOn
		case c.TOTPSecret == "":
			return problem.TOTPNotSetUp.New()
		}
		c.TOTPEnabled = true
		if err := checkSecondFactor(c, req.Code, "", s.cfg.Now(), s.recoveryKey); err != nil {
			return err
		}
		c.RecoveryHashes = hashes
		return nil
	})
	var wrong *secondFactorError
	if errors.As(err, &wrong) {
		if a.pending != nil {
			return s.mfaFailure(ctx, a.pending, wrong)
		}
		return wrong.answer(problem.InvalidCode, "")
	}
	if err != nil {
		return err
	}
	if a.pending == nil {
		writeJSON(w, http.StatusOK, map[string]any{"recovery_codes": codes})
		return nil
	}
	out, err := s.completeLogin(ctx, a.u, withAMR(a.pending.In.AMR, "otp"), a.m, a.pending)
	if err != nil {
		return err
	}
	return s.writeOutcome(w, out, map[string]any{"recovery_codes": codes})
}

// handleTOTPDisable is POST /auth/2fa/disable: a current code (or a
// recovery code) turns TOTP off. Every attempt counts toward the user's
// rate limit, so a stolen session cannot guess codes.
func (s *Server) handleTOTPDisable(w http.ResponseWriter, r *http.Request, p *Principal) error {
	var req totpRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if p.Kind != kindUser {
		return problem.UserSessionRequired.New()
	}
	if err := s.requireRecentSignIn(p); err != nil {
		return err
	}
	if req.Code == "" && req.RecoveryCode == "" {
		return errCodeRequired
	}
	if p.Org.MFARequired {
		return problem.MFARequiredByOrganization.New()
	}
	if wait, ok := s.limiter.allow(r.Pattern + "|email|" + p.Email); !ok {
		return tooMany(wait)
	}
	u := session.User{ID: p.UserID, Email: p.Email}
	att, err := s.beginSecondFactor(r.Context(), u)
	if err != nil {
		return err
	}
	err = s.UpdateCredentials(r.Context(), p.UserID, func(c *Credentials) error {
		if err := checkSecondFactor(c, req.Code, req.RecoveryCode, s.cfg.Now(), s.recoveryKey); err != nil {
			return err
		}
		c.TOTPSecret, c.TOTPEnabled, c.TOTPLastStep, c.RecoveryHashes = "", false, 0, nil
		return nil
	})
	var wrong *secondFactorError
	if errors.As(err, &wrong) {
		if err := s.endSecondFactor(r.Context(), att, u, false); err != nil {
			return err
		}
		return wrong.answer(problem.InvalidCode, "")
	}
	if err != nil {
		return err
	}
	if err := s.endSecondFactor(r.Context(), att, u, true); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleTOTPVerify is POST /auth/2fa/verify: the second factor of a
// sign-in. With an organization (named, or chosen before) it answers a
// session; without, the intermediate response with the factor recorded.
func (s *Server) handleTOTPVerify(w http.ResponseWriter, r *http.Request) error {
	var req totpRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	ctx := r.Context()
	rec, in, err := s.sessions.LoadIntermediate(ctx, req.IntermediateSessionToken)
	if err != nil {
		return err
	}
	emailKey := r.Pattern + "|email|" + in.Email
	if wait, ok := s.limiter.allow(emailKey); !ok {
		return tooMany(wait)
	}
	if req.Code == "" && req.RecoveryCode == "" {
		return errCodeRequired
	}
	u := session.User{ID: in.UserID, Email: in.Email}
	att, err := s.beginSecondFactor(ctx, u)
	if err != nil {
		return err
	}
	err = s.UpdateCredentials(ctx, u.ID, func(c *Credentials) error {
		return checkSecondFactor(c, req.Code, req.RecoveryCode, s.cfg.Now(), s.recoveryKey)
	})
	var wrong *secondFactorError
	if errors.As(err, &wrong) {
		s.limiter.allow(emailKey) // a wrong code costs twice
		if err := s.endSecondFactor(ctx, att, u, false); err != nil {
			return err
		}
		return s.mfaFailure(ctx, &session.Pending{Rec: rec, In: in}, wrong)
	}
	if err != nil {
		return err
	}
	if err := s.endSecondFactor(ctx, att, u, true); err != nil {
		return err
	}
	amr := withAMR(in.AMR, "otp")
	var m directory.Membership
	var ok bool
	switch {
	case req.Organization != "":
		if m, ok = findMembership(s.dir.Memberships(in.Email), req.Organization); !ok {
			return problem.NotAMember.New()
		}
	case in.OrgRef != "":
		o, found := s.dir.OrgByRef(in.OrgRef)
		if !found {
			return errOrgNotFound
		}
		mem, found := s.dir.MemberOf(in.Email, o.Ref)
		if !found {
			return problem.NotAMember.New()
		}
		m, ok = directory.Membership{Member: mem, Org: o}, true
	}
	if !ok {
		out, err := s.recordFactor(ctx, rec, req.IntermediateSessionToken, amr)
		return s.answer(w, out, err)
	}
	if !s.methodAllowed(m.Org, in.AMR) {
		return problem.AuthMethodDisabled.New()
	}
	out, err := s.completeLogin(ctx, u, amr, m, &session.Pending{Rec: rec, In: in, Token: req.IntermediateSessionToken})
	return s.answer(w, out, err)
}

// recordFactor keeps the proven second factor on an intermediate session
// whose organization is not chosen yet, and answers it again.
func (s *Server) recordFactor(ctx context.Context, rec *store.Record, raw string, amr []string) (*loginOutcome, error) {
	in, err := s.sessions.ChangeIntermediate(ctx, rec.ID, func(in *session.Intermediate) error {
		in.AMR = amr
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &loginOutcome{intermediate: &session.IntermediateResponse{
		IntermediateSessionToken: raw, ExpiresIn: int(in.ExpiresAt.Sub(s.cfg.Now()) / time.Second),
		User: session.UserInfo{ID: in.UserID, Email: in.Email}, Organizations: s.sessions.OrgList(in.Email), MFARequired: false,
	}}, nil
}

// mfaFailure counts a wrong code against the intermediate session; the
// maxMFAFailures-th spends it, and the user must sign in again.
func (s *Server) mfaFailure(ctx context.Context, p *session.Pending, wrong *secondFactorError) error {
	in, err := s.sessions.ChangeIntermediate(ctx, p.Rec.ID, func(in *session.Intermediate) error {
		in.Failures++
		if in.Failures >= session.MaxMFAFailures {
			in.Spent = true
		}
		return nil
	})
	if err != nil {
		return err
	}
	if left := session.MaxMFAFailures - in.Failures; left > 0 {
		return wrong.answer(problem.WrongSignInCode, strconv.Itoa(left)+" attempts left")
	}
	return wrong.answer(problem.WrongSignInCode, "too many wrong codes: sign in again")
}
