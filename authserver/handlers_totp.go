package authserver

import (
	"errors"
	"net/http"

	"github.com/tenantauth/tenantauth/authserver/account"
	"github.com/tenantauth/tenantauth/authserver/session"

	"github.com/tenantauth/tenantauth/authserver/problem"

	"github.com/tenantauth/tenantauth/authserver/directory"
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
	on, err := s.accounts.TotpEnabled(ctx, in.UserID)
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
	key, err := s.accounts.NewTOTPKey(a.u.Email)
	if err != nil {
		return err
	}
	qr, err := account.QRDataURL(key)
	if err != nil {
		return err
	}
	if err := s.accounts.UpdateCredentials(r.Context(), a.u.ID, func(c *account.Credentials) error {
		if c.TOTPEnabled {
			return account.ErrTOTPOn
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
		return account.ErrCodeRequired
	}
	a, err := s.totpActorFor(r, &req)
	if err != nil {
		return err
	}
	ctx := r.Context()
	codes, hashes := account.NewRecoveryCodes(s.recoveryKey)
	err = s.accounts.UpdateCredentials(ctx, a.u.ID, func(c *account.Credentials) error {
		switch {
		case c.TOTPEnabled:
			return account.ErrTOTPOn
		case c.TOTPSecret == "":
			return problem.TOTPNotSetUp.New()
		}
		c.TOTPEnabled = true
		if err := account.CheckSecondFactor(c, req.Code, "", s.cfg.Now(), s.recoveryKey); err != nil {
			return err
		}
		c.RecoveryHashes = hashes
		return nil
	})
	var wrong *account.SecondFactorError
	if errors.As(err, &wrong) {
		if a.pending != nil {
			return s.accounts.MfaFailure(ctx, a.pending, wrong)
		}
		return wrong.Answer(problem.InvalidCode, "")
	}
	if err != nil {
		return err
	}
	if a.pending == nil {
		writeJSON(w, http.StatusOK, map[string]any{"recovery_codes": codes})
		return nil
	}
	out, err := s.accounts.CompleteLogin(ctx, a.u, account.WithAMR(a.pending.In.AMR, "otp"), a.m, a.pending)
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
		return account.ErrCodeRequired
	}
	if p.Org.MFARequired {
		return problem.MFARequiredByOrganization.New()
	}
	if wait, ok := s.limiter.allow(r.Pattern + "|email|" + p.Email); !ok {
		return tooMany(wait)
	}
	u := session.User{ID: p.UserID, Email: p.Email}
	att, err := s.accounts.BeginSecondFactor(r.Context(), u)
	if err != nil {
		return err
	}
	err = s.accounts.UpdateCredentials(r.Context(), p.UserID, func(c *account.Credentials) error {
		if err := account.CheckSecondFactor(c, req.Code, req.RecoveryCode, s.cfg.Now(), s.recoveryKey); err != nil {
			return err
		}
		c.TOTPSecret, c.TOTPEnabled, c.TOTPLastStep, c.RecoveryHashes = "", false, 0, nil
		return nil
	})
	var wrong *account.SecondFactorError
	if errors.As(err, &wrong) {
		if err := s.accounts.EndSecondFactor(r.Context(), att, u, false); err != nil {
			return err
		}
		return wrong.Answer(problem.InvalidCode, "")
	}
	if err != nil {
		return err
	}
	if err := s.accounts.EndSecondFactor(r.Context(), att, u, true); err != nil {
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
		return account.ErrCodeRequired
	}
	u := session.User{ID: in.UserID, Email: in.Email}
	att, err := s.accounts.BeginSecondFactor(ctx, u)
	if err != nil {
		return err
	}
	err = s.accounts.UpdateCredentials(ctx, u.ID, func(c *account.Credentials) error {
		return account.CheckSecondFactor(c, req.Code, req.RecoveryCode, s.cfg.Now(), s.recoveryKey)
	})
	var wrong *account.SecondFactorError
	if errors.As(err, &wrong) {
		s.limiter.allow(emailKey) // a wrong code costs twice
		if err := s.accounts.EndSecondFactor(ctx, att, u, false); err != nil {
			return err
		}
		return s.accounts.MfaFailure(ctx, &session.Pending{Rec: rec, In: in}, wrong)
	}
	if err != nil {
		return err
	}
	if err := s.accounts.EndSecondFactor(ctx, att, u, true); err != nil {
		return err
	}
	amr := account.WithAMR(in.AMR, "otp")
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
		out, err := s.accounts.RecordFactor(ctx, rec, req.IntermediateSessionToken, amr)
		return s.answer(w, out, err)
	}
	if !s.methodAllowed(m.Org, in.AMR, in.OrgRef) {
		return problem.AuthMethodDisabled.New()
	}
	out, err := s.accounts.CompleteLogin(ctx, u, amr, m, &session.Pending{Rec: rec, In: in, Token: req.IntermediateSessionToken})
	return s.answer(w, out, err)
}
