package authserver

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/tenantauth/tenantauth/authserver/account"
	"github.com/tenantauth/tenantauth/authserver/problem"

	"github.com/tenantauth/tenantauth/authserver/token"

	"github.com/tenantauth/tenantauth/authserver/directory"

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
		return problem.InvalidOrganization.New()
	}
	if err := s.accounts.CheckPassword(req.Password, email); err != nil {
		return err
	}
	password, orgSel := req.Password, req.Organization
	binding := s.newSignupBinding(w)
	if err := s.accounts.GoFlow(account.PurposeVerifyEmail, func(ctx context.Context) error {
		return s.accounts.SendVerification(ctx, email, password, orgSel, binding)
	}); err != nil {
		return err
	}
	writeAccepted(w)
	return nil
}

// handleVerifyEmail is POST /auth/verify-email: it creates the Membership
// (a real object through the account.MembershipWriter), sets the password chosen
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
		return problem.SignupUnavailable.New()
	}
	var org *directory.Org
	var signupRef string
	release, ot, err := s.accounts.ConsumeVerification(ctx, req.Token, func(ot *account.OneTime) error {
		var ok bool
		if org, ok = s.dir.OrgByRef(ot.OrgRef); !ok {
			return errOrgNotFound
		}
		if !s.accounts.SignupAllowed(org, ot.Email) {
			return problem.SignupClosed.New()
		}
		signupRef = account.OrgNamespace(org.Ref) + "/" + account.SignupMembershipName(account.OrgName(org.Ref), ot.Email)
		// A retry after a failure half-way finds its own Membership: go on.
		if m, exists := s.dir.MemberAnyState(ot.Email, org.Ref); exists && m.Ref != signupRef {
			if m.Disabled {
				return problem.MembershipDisabled.New()
			}
			return problem.AlreadyMember.New()
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
	o, err := s.accounts.FinishSignup(ctx, ot, org, signupRef)
	if err != nil {
		if account.IsRetryable(err) {
			release(ctx)
		}
		return err
	}
	return s.writeOutcome(w, o, nil)
}

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
	if err := s.accounts.GoFlow(account.PurposeReset, func(ctx context.Context) error {
		send := len(s.dir.Memberships(email)) > 0
		ot := &account.OneTime{Purpose: account.PurposeReset, Email: email, UserID: s.userFor(email).ID}
		return s.accounts.MailToken(ctx, send, token.PrefixReset, account.ResetTTL, ot, func(raw string, expires time.Time) mail.Message {
			return account.ResetMail(s.accounts, email, raw, expires)
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
	rec, ot, err := s.accounts.ConsumeOneTime(ctx, token.PrefixReset, account.PurposeReset, req.Token, func(ot *account.OneTime) error {
		if err := s.accounts.CheckPassword(req.Password, ot.Email); err != nil {
			return err
		}
		var err error
		hash, err = s.accounts.HashPassword(ctx, req.Password)
		return err
	})
	if err != nil {
		return err
	}
	if err := s.accounts.ApplyReset(ctx, ot.UserID, hash); err != nil {
		// The client may retry with the same token: the reset is whole
		// only once every session is gone.
		if account.IsRetryable(err) {
			s.accounts.Unspend(ctx, rec, ot)
		}
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
