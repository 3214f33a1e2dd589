package authserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tenantauth/tenantauth/api/consts"
	"github.com/tenantauth/tenantauth/authserver/mail"
)

// Signup with a verified email, and password reset.

type registerRequest struct {
	Email        string `json:"email"`
	Password     string `json:"password"`
	Organization string `json:"organization"`
}

// handleRegister is POST /auth/register. A weak password is refused (400
// weak_password), which says nothing about the email; otherwise the answer
// is 202 whether or not a verification mail follows. One follows when the
// organization's self-signup admits the email's domain and the email is
// not already in the organization.
func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) error {
	var req registerRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	email, err := readEmail(req.Email, "email")
	if err != nil {
		return err
	}
	if strings.TrimSpace(req.Organization) == "" {
		return errf(http.StatusBadRequest, "invalid_organization", "organization is required (an organization ID or slug)")
	}
	if err := s.checkPassword(req.Password, email); err != nil {
		return err
	}
	password, orgSel := req.Password, req.Organization
	binding := s.newSignupBinding(w)
	if err := s.goFlow(purposeVerifyEmail, func(ctx context.Context) error {
		return s.sendVerification(ctx, email, password, orgSel, binding)
	}); err != nil {
		return err
	}
	writeAccepted(w)
	return nil
}

// sendVerification mails a verification link, carrying the password's
// hash, when the organization admits the email; see mailToken. The
// password is hashed either way.
func (s *Server) sendVerification(ctx context.Context, email, password, orgSel, binding string) error {
	hash, err := s.hashPasswordBackground(ctx, password)
	if err != nil {
		return err
	}
	org, ok := s.dir.Org(orgSel)
	send := ok && signupAllowed(org, email)
	if send {
		// Registering an existing member changes nothing.
		_, exists := s.dir.memberAnyState(email, org.Ref)
		send = !exists
	}
	if !ok {
		org = &Org{}
	}
	ot := &oneTime{Purpose: purposeVerifyEmail, Email: email, UserID: s.userFor(email).ID, OrgRef: org.Ref, PasswordHash: hash,
		SignupBinding: binding}
	return s.mailVerification(ctx, send, ot, func(token string, expires time.Time) mail.Message {
		return verifyEmailMail(s, email, token, org, expires)
	})
}

// handleVerifyEmail is POST /auth/verify-email: it creates the Membership
// (a real object through the MembershipWriter), sets the password chosen
// at signup for a new user only (an existing user keeps their credentials
// and gets a notice mail instead), puts the member into the directory at once, so the session
// does not wait for the informer, and answers with a session (or the
// intermediate response when the organization requires MFA).
func (s *Server) handleVerifyEmail(w http.ResponseWriter, r *http.Request) error {
	var req tokenRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	ctx := r.Context()
	if s.members == nil {
		return &Error{Status: http.StatusServiceUnavailable, Code: "signup_unavailable",
			Message: "this server cannot create memberships; ask an administrator"}
	}
	var org *Org
	var signupRef string
	release, ot, err := s.consumeVerification(ctx, req.Token, func(ot *oneTime) error {
		var ok bool
		if org, ok = s.dir.OrgByRef(ot.OrgRef); !ok {
			return errOrgNotFound
		}
		if !signupAllowed(org, ot.Email) {
			return errf(http.StatusForbidden, "signup_closed", "the organization no longer accepts signups from this email domain")
		}
		signupRef = orgNamespace(org.Ref) + "/" + SignupMembershipName(orgName(org.Ref), ot.Email)
		// A retry after a failure half-way finds its own Membership: go on.
		if m, exists := s.dir.memberAnyState(ot.Email, org.Ref); exists && m.Ref != signupRef {
			if m.Disabled {
				return errf(http.StatusForbidden, "membership_disabled", "your membership of this organization is disabled")
			}
			return errf(http.StatusConflict, "already_member", "you are already a member of this organization; sign in instead")
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !signupBound(r, ot.SignupBinding) {
		// Not the client that chose the password: keep none of it.
		ot.PasswordHash = ""
	}
	if err := s.finishSignup(ctx, w, ot, org, signupRef); err != nil {
		if isRetryable(err) {
			release(ctx)
		}
		return err
	}
	return nil
}

func (s *Server) finishSignup(ctx context.Context, w http.ResponseWriter, ot *oneTime, org *Org, ref string) error {
	role := org.DefaultRole
	if role == "" {
		role = consts.DefaultRole
	}
	if err := s.members.CreateMembership(ctx, org.Ref, ot.Email, role); err != nil {
		if errors.Is(err, ErrMembershipRefused) {
			s.log.Info("signup refused by the cluster", "organization", org.Slug, "reason", err.Error())
			return errf(http.StatusConflict, "signup_refused", "the organization refused the membership; ask an administrator")
		}
		return fmt.Errorf("create membership in %s: %w", org.Slug, err)
	}
	member, ok := s.dir.memberAnyState(ot.Email, org.Ref)
	switch {
	case !ok:
		member = &Member{Ref: ref, OrgRef: org.Ref, Email: ot.Email, Role: role}
		s.dir.PutMember(member)
	case member.Disabled:
		return errf(http.StatusForbidden, "membership_disabled", "your membership of this organization is disabled")
	}
	existing, err := s.adoptSignupPassword(ctx, ot, org)
	if err != nil {
		return err
	}
	if existing {
		if err := s.deliver(ctx, addedToOrgMail(s, ot.Email, org)); err != nil {
			s.log.Error(err, "could not queue the added-to-organization notice", "organization", org.Slug)
		}
	}
	return s.completeLogin(ctx, w, user{ID: ot.UserID, Email: ot.Email}, []string{"email"}, Membership{Member: member, Org: org}, nil)
}

// errKeepCredentials stops UpdateCredentials without a write.
var errKeepCredentials = errors.New("credentials kept")

// adoptSignupPassword sets the password chosen at register, but only for a
// new user: signup never changes an existing user's credentials, as the
// HTTP contract of /auth/signup promises. A user is existing when they have a password, or a
// membership of any other organization: whoever registered may not be the
// owner of the mailbox who clicked the link, and the password they chose
// must not become a way into the user's other organizations. existing
// reports that the password was discarded.
func (s *Server) adoptSignupPassword(ctx context.Context, ot *oneTime, org *Org) (existing bool, err error) {
	existing = s.dir.memberElsewhere(ot.Email, org.Ref)
	if ot.PasswordHash == "" {
		return existing, nil // verified from another client: see signupCookie
	}
	err = s.UpdateCredentials(ctx, ot.UserID, func(c *Credentials) error {
		switch {
		case c.PasswordHash == ot.PasswordHash && c.PasswordHash != "":
			return errKeepCredentials // a retry of this signup, which set it
		case existing || c.PasswordHash != "":
			existing = true
			return errKeepCredentials
		}
		c.PasswordHash = ot.PasswordHash
		return nil
	})
	if errors.Is(err, errKeepCredentials) {
		err = nil
	}
	return existing, err
}

func orgNamespace(ref string) string { ns, _, _ := strings.Cut(ref, "/"); return ns }
func orgName(ref string) string      { _, name, _ := strings.Cut(ref, "/"); return name }

// handleForgotPassword is POST /auth/forgot-password: always 202, and a
// reset mail when the email belongs to a member of any organization.
func (s *Server) handleForgotPassword(w http.ResponseWriter, r *http.Request) error {
	var req emailRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	email, err := readEmail(req.Email, "email")
	if err != nil {
		return err
	}
	if err := s.goFlow(purposeReset, func(ctx context.Context) error {
		send := len(s.dir.Memberships(email)) > 0
		ot := &oneTime{Purpose: purposeReset, Email: email, UserID: s.userFor(email).ID}
		return s.mailToken(ctx, send, prefixReset, resetTTL, ot, func(token string, expires time.Time) mail.Message {
			return resetMail(s, email, token, expires)
		})
	}); err != nil {
		return err
	}
	writeAccepted(w)
	return nil
}

type resetRequest struct {
	Token    string `json:"token"`
	Password string `json:"password"`
}

// handleResetPassword is POST /auth/reset-password: it sets the password
// and ends every session of the user, and every link or intermediate
// session issued before. A weak password leaves the token unspent. It is
// also how a member made with kubectl sets a first password.
func (s *Server) handleResetPassword(w http.ResponseWriter, r *http.Request) error {
	var req resetRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	ctx := r.Context()
	var hash string
	rec, ot, err := s.consumeOneTime(ctx, prefixReset, purposeReset, req.Token, func(ot *oneTime) error {
		if err := s.checkPassword(req.Password, ot.Email); err != nil {
			return err
		}
		var err error
		hash, err = s.hashPassword(ctx, req.Password)
		return err
	})
	if err != nil {
		return err
	}
	if err := s.applyReset(ctx, ot.UserID, hash); err != nil {
		// The client may retry with the same token: the reset is whole
		// only once every session is gone.
		if isRetryable(err) {
			s.unspend(ctx, rec, ot)
		}
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// applyReset sets the password hash, then revokes the user's sessions and
// outstanding tokens. Each step may be repeated.
func (s *Server) applyReset(ctx context.Context, userID, hash string) error {
	if err := s.UpdateCredentials(ctx, userID, func(c *Credentials) error {
		c.PasswordHash = hash
		c.TokensNotBefore = s.cfg.Now().UTC() // ends sealed links too
		return nil
	}); err != nil {
		return err
	}
	if err := s.RevokeUserSessions(ctx, userID, "password_reset"); err != nil {
		return err
	}
	if err := s.clearLockout(ctx, userID); err != nil {
		return err
	}
	return s.revokeUserTokens(ctx, userID)
}
