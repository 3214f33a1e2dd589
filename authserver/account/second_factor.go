package account

import (
	"context"
	"strconv"
	"time"

	"github.com/tenantauth/tenantauth/authserver/problem"
	"github.com/tenantauth/tenantauth/authserver/session"
	"github.com/tenantauth/tenantauth/authserver/store"
)

// recordFactor keeps the proven second factor on an intermediate session
// whose organization is not chosen yet, and answers it again.
func (s *Service) RecordFactor(ctx context.Context, rec *store.Record, raw string, amr []string) (*LoginOutcome, error) {
	in, err := s.sessions.ChangeIntermediate(ctx, rec.ID, func(in *session.Intermediate) error {
		in.AMR = amr
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &LoginOutcome{Intermediate: &session.IntermediateResponse{
		IntermediateSessionToken: raw, ExpiresIn: int(in.ExpiresAt.Sub(s.cfg.Now()) / time.Second),
		User: session.UserInfo{ID: in.UserID, Email: in.Email}, Organizations: s.sessions.OrgList(in.Email), MFARequired: false,
	}}, nil
}

// mfaFailure counts a wrong code against the intermediate session; the
// maxMFAFailures-th spends it, and the user must sign in again.
func (s *Service) MfaFailure(ctx context.Context, p *session.Pending, wrong *SecondFactorError) error {
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
		return wrong.Answer(problem.WrongSignInCode, strconv.Itoa(left)+" attempts left")
	}
	return wrong.Answer(problem.WrongSignInCode, "too many wrong codes: sign in again")
}
