package account

import (
	"context"
	"errors"
	"time"

	"github.com/tenantauth/tenantauth/authserver/directory"
	"github.com/tenantauth/tenantauth/authserver/mail"
	"github.com/tenantauth/tenantauth/authserver/problem"
	"github.com/tenantauth/tenantauth/authserver/token"
)

// sendMagicLink mails a link when email may use one; see mailToken.
func (s *Service) SendMagicLink(ctx context.Context, email, orgSel string) error {
	var target *directory.Org
	send := false
	if orgSel != "" {
		if o, ok := s.dir.Org(orgSel); ok {
			_, member := s.dir.MemberOf(email, o.Ref)
			send, target = member && o.MagicLink, o
		}
	} else {
		send = s.HasMagicLinkOrg(email)
	}
	ot := &OneTime{Purpose: PurposeMagicLink, Email: email, UserID: s.cfg.UserFor(email).ID}
	if target != nil {
		ot.OrgRef = target.Ref
	}
	return s.MailToken(ctx, send, token.PrefixMagicLink, MagicLinkTTL, ot, func(raw string, expires time.Time) mail.Message {
		return magicLinkMail(s, email, raw, target, expires)
	})
}

func (s *Service) HasMagicLinkOrg(email string) bool {
	for _, m := range s.dir.Memberships(email) {
		if m.Org.MagicLink {
			return true
		}
	}
	return false
}

// IsRetryable reports whether err is a fault of ours or of the store (a
// 503), after which the client may try the same token again.
func IsRetryable(err error) bool {
	var e *problem.Error
	return !errors.As(err, &e) || e.Status == 503
}
