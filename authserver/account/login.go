package account

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tenantauth/tenantauth/authserver/session"

	"github.com/tenantauth/tenantauth/authserver/directory"
	"github.com/tenantauth/tenantauth/authserver/store"
)

// completeLogin turns a proven user and a chosen organization into a
// session, or into an intermediate session when a second factor is owed.
// A presented intermediate session is spent only when a session is made.
// The session starts a family unless the intermediate session continues
// one.
func (s *Service) CompleteLogin(ctx context.Context, u session.User, amr []string, m directory.Membership, p *session.Pending) (*LoginOutcome, error) {
	var lin *session.Lineage
	if p != nil {
		lin = p.In.Lineage
	}
	return s.CompleteLoginIn(ctx, u, amr, m, p, lin)
}

// completeLoginIn is completeLogin for a session in the family lin (nil: a
// new family). When the store cannot say whether a second factor is owed,
// the answer is its error (503), never a session.
func (s *Service) CompleteLoginIn(ctx context.Context, u session.User, amr []string, m directory.Membership, p *session.Pending, lin *session.Lineage) (*LoginOutcome, error) {
	if err := session.SSOGate(m, amr); err != nil {
		return nil, err
	}
	owed, err := s.mfaOwed(ctx, u, amr, m.Org)
	if err != nil {
		return nil, err
	}
	if owed {
		if p == nil {
			resp, err := s.sessions.StartIntermediateIn(ctx, u, amr, m.Org, true, lin)
			if err != nil {
				return nil, err
			}
			return &LoginOutcome{Intermediate: resp}, nil
		}
		in, err := s.sessions.ChangeIntermediate(ctx, p.Rec.ID, func(in *session.Intermediate) error {
			in.OrgRef = m.Org.Ref
			return nil
		})
		if err != nil {
			return nil, err
		}
		p.In = in
		return &LoginOutcome{Intermediate: &session.IntermediateResponse{
			IntermediateSessionToken: p.Token, ExpiresIn: int(p.In.ExpiresAt.Sub(s.cfg.Now()) / time.Second),
			User: session.UserInfo{ID: u.ID, Email: u.Email}, Organizations: s.sessions.OrgList(u.Email), MFARequired: true,
		}}, nil
	}
	if p != nil {
		if err := s.sessions.SpendIntermediate(ctx, p.Rec.ID); err != nil {
			return nil, err
		}
	}
	resp, err := s.sessions.Start(ctx, u, m.Org, m.Member.Role, amr, lin)
	if err != nil {
		return nil, err
	}
	return &LoginOutcome{Session: resp}, nil
}

// LoginOutcome is how a proven sign-in ends: a session, or an
// intermediate session while an organization or a second factor is owed.
// The HTTP layer writes it (writeOutcome).
type LoginOutcome struct {
	Session      *session.Response
	Intermediate *session.IntermediateResponse
}

// mfaOwed reports whether u must still pass TOTP for org: when the user
// has TOTP on, or the organization requires it, and amr lacks otp. An
// error means the store could not say; callers answer it, never a session.
func (s *Service) mfaOwed(ctx context.Context, u session.User, amr []string, org *directory.Org) (bool, error) {
	for _, a := range amr {
		if a == "otp" {
			return false, nil
		}
	}
	if org.MFARequired {
		return true, nil
	}
	return s.TotpEnabled(ctx, u.ID)
}

// totpEnabled reports whether the user has turned TOTP on. A user with no
// credentials record has no TOTP; any other store error is returned, so
// the caller fails closed.
func (s *Service) TotpEnabled(ctx context.Context, userID string) (bool, error) {
	var c Credentials
	_, err := store.Load(ctx, s.store, store.KindCredentials, userID, &c)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read credentials for the second-factor decision: %w", err)
	}
	return c.TOTPEnabled, nil
}
