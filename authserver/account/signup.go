package account

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tenantauth/tenantauth/api/consts"
	"github.com/tenantauth/tenantauth/authserver/directory"
	"github.com/tenantauth/tenantauth/authserver/mail"
	"github.com/tenantauth/tenantauth/authserver/problem"
	"github.com/tenantauth/tenantauth/authserver/session"
)

// sendVerification mails a verification link, carrying the password's
// hash, when the organization admits the email; see mailToken. The
// password is hashed either way.
func (s *Service) SendVerification(ctx context.Context, email, password, orgSel, binding string) error {
	hash, err := s.hashPasswordBackground(ctx, password)
	if err != nil {
		return err
	}
	org, ok := s.dir.Org(orgSel)
	send := ok && s.SignupAllowed(org, email)
	if send {
		// Registering an existing member changes nothing.
		_, exists := s.dir.MemberAnyState(email, org.Ref)
		send = !exists
	}
	if !ok {
		org = &directory.Org{}
	}
	ot := &OneTime{Purpose: PurposeVerifyEmail, Email: email, UserID: s.cfg.UserFor(email).ID, OrgRef: org.Ref, PasswordHash: hash,
		SignupBinding: binding}
	return s.mailVerification(ctx, send, ot, func(raw string, expires time.Time) mail.Message {
		return verifyEmailMail(s, email, raw, org, expires)
	})
}

// SignupAllowed reports whether the organization's self-signup admits the
// email: its domain (exact, case-insensitive) is listed in
// selfSignup.allowedEmailDomains and verified for this organization. The
// list is the tenant's spec, and an entry may be there without being
// verified (admitted by a cluster admin with a warning, kept from before
// admission checked it, or whose domain lost its verification or went to
// another organization since), so only the operator's claim, joined with
// the live organization (directory.DomainVerifiedFor), lets it admit
// anyone. Otherwise any organization could mail sign-up links to another
// company's people and take them in.
func (s *Service) SignupAllowed(o *directory.Org, email string) bool {
	domain := directory.EmailDomain(email)
	if domain == "" || !s.dir.DomainVerifiedFor(domain, o.Ref) {
		return false
	}
	for _, d := range o.SignupDomain {
		if strings.EqualFold(strings.TrimPrefix(strings.TrimSpace(d), "@"), domain) {
			return true
		}
	}
	return false
}

// FinishSignup creates the Membership of a verified signup, adopts the
// password chosen at register for a new user, and signs the user in.
func (s *Service) FinishSignup(ctx context.Context, ot *OneTime, org *directory.Org, ref string) (*LoginOutcome, error) {
	role := org.DefaultRole
	if role == "" {
		role = consts.DefaultRole
	}
	if err := s.members.CreateMembership(ctx, org.Ref, ot.Email, role); err != nil {
		if errors.Is(err, ErrMembershipRefused) {
			s.log.Info("signup refused by the cluster", "organization", org.Slug, "reason", err.Error())
			return nil, problem.SignupRefused.New()
		}
		return nil, fmt.Errorf("create membership in %s: %w", org.Slug, err)
	}
	member, ok := s.dir.MemberAnyState(ot.Email, org.Ref)
	switch {
	case !ok:
		member = &directory.Member{Ref: ref, OrgRef: org.Ref, Email: ot.Email, Role: role}
		s.dir.PutMember(member)
	case member.Disabled:
		return nil, problem.MembershipDisabled.New()
	}
	existing, err := s.adoptSignupPassword(ctx, ot, org)
	if err != nil {
		return nil, err
	}
	if existing {
		if err := s.deliver(ctx, addedToOrgMail(s, ot.Email, org)); err != nil {
			s.log.Error(err, "could not queue the added-to-organization notice", "organization", org.Slug)
		}
	}
	return s.CompleteLogin(ctx, session.User{ID: ot.UserID, Email: ot.Email}, []string{"email"}, directory.Membership{Member: member, Org: org}, nil)
}

// adoptSignupPassword sets the password chosen at register, but only for a
// new user: signup never changes an existing user's credentials, as the
// HTTP contract of /auth/signup promises. A user is existing when they have a password, or a
// membership of any other organization: whoever registered may not be the
// owner of the mailbox who clicked the link, and the password they chose
// must not become a way into the user's other organizations. existing
// reports that the password was discarded.
func (s *Service) adoptSignupPassword(ctx context.Context, ot *OneTime, org *directory.Org) (existing bool, err error) {
	existing = s.dir.MemberElsewhere(ot.Email, org.Ref)
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

func OrgNamespace(ref string) string { ns, _, _ := strings.Cut(ref, "/"); return ns }

func OrgName(ref string) string { _, name, _ := strings.Cut(ref, "/"); return name }

// applyReset sets the password hash, then revokes the user's sessions and
// outstanding tokens. Each step may be repeated.
func (s *Service) ApplyReset(ctx context.Context, userID, hash string) error {
	if err := s.UpdateCredentials(ctx, userID, func(c *Credentials) error {
		c.PasswordHash = hash
		c.TokensNotBefore = s.cfg.Now().UTC() // ends sealed links too
		return nil
	}); err != nil {
		return err
	}
	if err := s.sessions.RevokeUserSessions(ctx, userID, "password_reset"); err != nil {
		return err
	}
	if err := s.clearLockout(ctx, userID); err != nil {
		return err
	}
	return s.revokeUserTokens(ctx, userID)
}

// errKeepCredentials stops UpdateCredentials without a write.
var errKeepCredentials = errors.New("credentials kept")
