package sso

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strings"

	"github.com/go-logr/logr"

	"github.com/tenantauth/tenantauth/api/consts"
	"github.com/tenantauth/tenantauth/authserver/account"
	"github.com/tenantauth/tenantauth/authserver/directory"
	"github.com/tenantauth/tenantauth/authserver/problem"
	"github.com/tenantauth/tenantauth/authserver/session"
	"github.com/tenantauth/tenantauth/internal/identity"
)

// Identity is what a protocol proved about the user: the identity
// provider's answer, already checked (signature, issuer, audience, expiry,
// nonce or InResponseTo).
type Identity struct {
	Subject       string
	Email         string
	EmailVerified bool
	Groups        []string
}

// MembershipWriter creates the Membership of a first SSO sign-in. The
// Kubernetes implementation marks it with the connection's name, which
// admission reads to allow the auth server exactly the connection's roles
// for an email on a domain verified for the organization.
type MembershipWriter interface {
	CreateSSOMembership(ctx context.Context, orgRef, connection, email, role string) error
}

// Service ends SSO sign-ins.
type Service struct {
	Dir      *directory.Directory
	Accounts *account.Service
	// Members makes just-in-time Memberships; nil refuses them.
	Members MembershipWriter
	UserFor func(email string) session.User
	Log     logr.Logger
}

// AMR is the authentication method of every SSO session.
const AMR = "sso"

// SignIn turns an identity proven by conn's identity provider into a
// session of conn's organization, and of no other: the provider speaks
// for its own organization only, so the outcome is never an intermediate
// session that lists, or can be exchanged into, another organization.
//
// The email counts only when its domain is verified for the organization.
// The provider is the tenant's own, and a user is one identity across
// every organization (one user ID, one password, one TOTP), so a
// provider's email_verified alone would let any organization's IdP sign
// in as anyone on an unclaimed domain (gmail.com, or a company that
// claimed no domain) and, as that user, enrol a second factor it holds,
// locking them out of every other organization. An email on a domain
// another organization verified is refused the same way. A first sign-in
// makes the Membership just in time.
func (s *Service) SignIn(ctx context.Context, conn *directory.SSOConnection, id Identity) (*account.LoginOutcome, error) {
	email, err := canonicalEmail(id.Email)
	if err != nil {
		return nil, problem.SSOFailed.Because("the identity provider sent no usable email address (claim " + emailClaim(conn) + ")")
	}
	domain := directory.EmailDomain(email)
	verifiedHere := s.Dir.DomainVerifiedFor(domain, conn.OrgRef)
	if owner, ok := s.Dir.DomainOrg(domain); ok && owner.Ref != conn.OrgRef {
		return nil, problem.SSOEmailUnverified.Because("the email's domain is verified for another organization; this identity provider cannot sign it in")
	}
	if !verifiedHere {
		return nil, problem.SSOEmailUnverified.Because("the email's domain is not verified for this organization: single sign-on speaks only for an organization's verified domains")
	}
	org, ok := s.Dir.OrgByRef(conn.OrgRef)
	if !ok {
		return nil, problem.SSONotConfigured.New()
	}
	member, err := s.member(ctx, conn, org, email, verifiedHere, id.Groups)
	if err != nil {
		return nil, err
	}
	return s.Accounts.CompleteLogin(ctx, s.UserFor(email), []string{AMR}, directory.Membership{Member: member, Org: org}, nil)
}

// member finds the email's Membership, or makes it just in time.
func (s *Service) member(ctx context.Context, conn *directory.SSOConnection, org *directory.Org, email string, verifiedHere bool, groups []string) (*directory.Member, error) {
	m, ok := s.Dir.MemberAnyState(email, org.Ref)
	switch {
	case ok && m.Disabled:
		return nil, problem.MembershipDisabled.New()
	case ok:
		return m, nil
	case !verifiedHere:
		return nil, problem.NotAMember.Because("you are not a member of this organization, and your email is not on one of its verified domains: ask an administrator to add you")
	case s.Members == nil:
		return nil, problem.SignupUnavailable.New()
	}
	role, err := RoleFor(conn, org, groups)
	if err != nil {
		return nil, err
	}
	if err := s.Members.CreateSSOMembership(ctx, org.Ref, conn.Name(), email, role); err != nil {
		if errors.Is(err, account.ErrMembershipRefused) {
			s.Log.Info("SSO membership refused by the cluster", "organization", org.Slug, "connection", conn.Ref, "reason", err.Error())
			return nil, problem.SignupRefused.New()
		}
		return nil, fmt.Errorf("create SSO membership in %s: %w", org.Slug, err)
	}
	if m, ok := s.Dir.MemberAnyState(email, org.Ref); ok {
		if m.Disabled {
			return nil, problem.MembershipDisabled.New()
		}
		return m, nil
	}
	// The informer has not shown the new object yet; the session needs
	// only these facts, and the informer replaces them shortly.
	m = &directory.Member{Ref: org.Ref[:strings.IndexByte(org.Ref, '/')+1] + account.SignupMembershipName(account.OrgName(org.Ref), email),
		OrgRef: org.Ref, Email: email, Role: role}
	s.Dir.PutMember(m)
	return m, nil
}

// RoleFor is the role of a member made just in time: the highest-ranked
// role the user's groups map to, else the connection's default role.
// Owner is never given, and a role the organization does not define is
// skipped (a default role it does not define refuses the sign-in).
func RoleFor(conn *directory.SSOConnection, org *directory.Org, groups []string) (string, error) {
	best, bestRank := "", -1
	for _, m := range conn.RoleMappings {
		if m.Role == consts.RoleOwner {
			continue
		}
		r, ok := org.Role(m.Role)
		if !ok || r.Rank <= bestRank {
			continue
		}
		for _, g := range groups {
			if g == m.Group {
				best, bestRank = m.Role, r.Rank
				break
			}
		}
	}
	if best != "" {
		return best, nil
	}
	def := conn.DefaultRole
	if def == "" {
		def = consts.RoleMember
	}
	if _, ok := org.Role(def); !ok || def == consts.RoleOwner {
		return "", problem.SignupRefused.Because("the SSO connection's default role is not a role of this organization; ask an administrator")
	}
	return def, nil
}

// canonicalEmail normalises an email from an identity provider and
// checks it is one address in canonical form.
func canonicalEmail(raw string) (string, error) {
	e := identity.NormalizeEmail(raw)
	c, err := identity.CanonicalEmail(e)
	if err != nil || c != e || len(e) > 254 {
		return "", errors.New("not a canonical email")
	}
	a, err := mail.ParseAddress(e)
	if err != nil || a.Address != e || directory.EmailDomain(e) == "" || !strings.Contains(directory.EmailDomain(e), ".") {
		return "", errors.New("not an email address")
	}
	return e, nil
}

func emailClaim(conn *directory.SSOConnection) string {
	if conn.ClaimEmail != "" {
		return conn.ClaimEmail
	}
	return "email"
}
