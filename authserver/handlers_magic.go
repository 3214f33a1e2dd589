package authserver

import (
	"context"
	"net/http"

	"github.com/tenantauth/tenantauth/authserver/account"
	"github.com/tenantauth/tenantauth/authserver/session"

	"github.com/tenantauth/tenantauth/authserver/problem"

	"github.com/tenantauth/tenantauth/authserver/token"

	"github.com/tenantauth/tenantauth/authserver/directory"
)

// Magic links, in Holos's three steps: send-magic-link mails a single-use
// link; authenticate-magic-link turns its token into an intermediate
// session listing the user's organizations (or, for a link asked for one
// organization, straight into a session there); exchange-session picks the
// organization.

type sendMagicLinkRequest struct {
	EmailAddress string `json:"email_address"`
	Organization string `json:"organization"`
}

// handleSendMagicLink is POST /users/send-magic-link. It answers 202 to
// every well-formed request; only members of an organization that allows
// magic links (the named one, when organization is given) get a mail.
func (s *Server) handleSendMagicLink(w http.ResponseWriter, r *http.Request) error {
	var req sendMagicLinkRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	email, err := readEmail(req.EmailAddress, "email_address")
	if err != nil {
		return err
	}
	if err := s.accounts.GoFlow(account.PurposeMagicLink, func(ctx context.Context) error {
		return s.accounts.SendMagicLink(ctx, email, req.Organization)
	}); err != nil {
		return err
	}
	writeAccepted(w)
	return nil
}

type tokenRequest struct {
	Token string `json:"token"`
}

// handleAuthenticateMagicLink is POST /users/authenticate-magic-link. The
// token is spent whatever follows. A link asked for one organization
// leads into it (a session, or the intermediate response when MFA is
// owed); any other link gives the intermediate response listing the
// user's organizations, for exchange-session.
func (s *Server) handleAuthenticateMagicLink(w http.ResponseWriter, r *http.Request) error {
	var req tokenRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	ctx := r.Context()
	rec, ot, err := s.accounts.ConsumeOneTime(ctx, token.PrefixMagicLink, account.PurposeMagicLink, req.Token, nil)
	if err != nil {
		return err
	}
	u := session.User{ID: ot.UserID, Email: ot.Email}
	amr := []string{"email"}
	if ot.OrgRef != "" {
		if o, ok := s.dir.OrgByRef(ot.OrgRef); ok && o.MagicLink {
			if m, ok := s.dir.MemberOf(ot.Email, o.Ref); ok {
				out, err := s.accounts.CompleteLogin(ctx, u, amr, directory.Membership{Member: m, Org: o}, nil)
				if err != nil && account.IsRetryable(err) {
					s.accounts.Unspend(ctx, rec, ot)
				}
				return s.answer(w, out, err)
			}
		}
		// The membership went away since the mail: fall back to the list.
	}
	if !s.accounts.HasMagicLinkOrg(ot.Email) {
		return problem.NotAMember.Because("you are no longer a member of an organization that allows sign-in by email")
	}
	resp, err := s.sessions.StartIntermediate(ctx, u, amr, nil, false)
	if err != nil {
		if account.IsRetryable(err) {
			s.accounts.Unspend(ctx, rec, ot)
		}
		return err
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}
