package authserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/tenantauth/tenantauth/authserver/store"
)

// intermediateTTL is how long an intermediate session token lives.
const intermediateTTL = 10 * time.Minute

// maxMFAFailures spends an intermediate session after this many wrong codes.
const maxMFAFailures = 5

// intermediate is a proven user who has not yet chosen an organization or
// still owes a second factor.
type intermediate struct {
	UserID    string    `json:"user_id"`
	Email     string    `json:"email"`
	AMR       []string  `json:"amr"`
	OrgRef    string    `json:"org_ref,omitempty"` // chosen organization, if any
	ExpiresAt time.Time `json:"expires_at"`
	Hash      string    `json:"hash"`
	Failures  int       `json:"failures,omitempty"`
	Spent     bool      `json:"spent,omitempty"`
	// Lineage is set when a switch of organizations owes a second factor:
	// the session it ends in joins the switching session's family.
	Lineage *lineage `json:"lineage,omitempty"`
}

// intermediateResponse is the contract's intermediate response.
type intermediateResponse struct {
	IntermediateSessionToken string    `json:"intermediate_session_token"`
	ExpiresIn                int       `json:"expires_in"`
	User                     userInfo  `json:"user"`
	Organizations            []orgInfo `json:"organizations"`
	MFARequired              bool      `json:"mfa_required"`
}

// startIntermediate records an intermediate session and builds its answer.
func (s *Server) startIntermediate(ctx context.Context, u user, amr []string, org *Org, mfa bool) (*intermediateResponse, error) {
	return s.startIntermediateIn(ctx, u, amr, org, mfa, nil)
}

// startIntermediateIn is startIntermediate for a sign-in that continues
// the family lin (nil: a new sign-in).
func (s *Server) startIntermediateIn(ctx context.Context, u user, amr []string, org *Org, mfa bool, lin *lineage) (*intermediateResponse, error) {
	token, id, hash := newOpaque(prefixIntermediate)
	now := s.cfg.Now().UTC()
	in := &intermediate{UserID: u.ID, Email: u.Email, AMR: amr, ExpiresAt: now.Add(intermediateTTL), Hash: hash, Lineage: lin}
	if org != nil {
		in.OrgRef = org.Ref
	}
	rec := &store.Record{Kind: store.KindToken, ID: prefixIntermediate + "_" + id, UserID: u.ID, ExpiresAt: in.ExpiresAt}
	if err := store.Put(ctx, s.store, rec, in); err != nil {
		return nil, fmt.Errorf("create intermediate session: %w", err)
	}
	if err := s.capUserTokens(ctx, u.ID, tokenClassIntermediate, rec.ID); err != nil {
		s.log.Error(err, "could not cap a user's intermediate sessions")
	}
	s.metrics.issued.WithLabelValues("intermediate").Inc()
	return &intermediateResponse{
		IntermediateSessionToken: token, ExpiresIn: int(intermediateTTL / time.Second),
		User: userInfo{ID: u.ID, Email: u.Email}, Organizations: s.orgList(u.Email), MFARequired: mfa,
	}, nil
}

// orgList lists a user's organizations with their role.
func (s *Server) orgList(email string) []orgInfo {
	ms := s.dir.Memberships(email)
	out := make([]orgInfo, 0, len(ms))
	for _, m := range ms {
		out = append(out, orgInfo{ID: m.Org.ID, Slug: m.Org.Slug, Name: m.Org.Name, Role: m.Member.Role})
	}
	return out
}

// loadIntermediate reads a live intermediate session by its token.
func (s *Server) loadIntermediate(ctx context.Context, token string) (*store.Record, *intermediate, error) {
	id, secret, ok := parseOpaque(prefixIntermediate, token)
	invalid := errf(http.StatusUnauthorized, "token_invalid", "the intermediate session token is malformed or unknown")
	if !ok {
		return nil, nil, invalid
	}
	var in intermediate
	rec, err := store.Load(ctx, s.store, store.KindToken, prefixIntermediate+"_"+id, &in)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, invalid
	}
	if err != nil {
		return nil, nil, err
	}
	if !secretMatches(secret, in.Hash) {
		return nil, nil, invalid
	}
	if in.Spent {
		return nil, nil, errf(http.StatusUnauthorized, "token_used", "the intermediate session token was already used")
	}
	if !s.cfg.Now().Before(in.ExpiresAt) {
		return nil, nil, errf(http.StatusUnauthorized, "token_expired", "the intermediate session token has expired; sign in again")
	}
	return rec, &in, nil
}

// errIntermediateUsed answers an intermediate session that was spent,
// or that a concurrent request was spending.
var errIntermediateUsed = errf(http.StatusUnauthorized, "token_used", "the intermediate session token was already used")

// changeIntermediate applies change to a live intermediate session; one
// spent meanwhile (by a concurrent request) answers token_used.
func (s *Server) changeIntermediate(ctx context.Context, id string, change func(*intermediate) error) (*intermediate, error) {
	_, in, err := store.Modify(ctx, s.store, store.KindToken, id, func(_ *store.Record, in *intermediate) error {
		if in.Spent {
			return errIntermediateUsed
		}
		return change(in)
	})
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
		return nil, errIntermediateUsed
	}
	return in, err
}

// spendIntermediate marks the intermediate session used, once.
func (s *Server) spendIntermediate(ctx context.Context, id string) error {
	_, err := s.changeIntermediate(ctx, id, func(in *intermediate) error {
		in.Spent = true
		return nil
	})
	return err
}

// pending is an intermediate session presented by the client, with the
// token it presented.
type pending struct {
	rec   *store.Record
	in    *intermediate
	token string
}

// completeLogin turns a proven user and a chosen organization into a
// session, or into an intermediate session when a second factor is owed.
// A presented intermediate session is spent only when a session is made.
// The session starts a family unless the intermediate session continues
// one.
func (s *Server) completeLogin(ctx context.Context, w http.ResponseWriter, u user, amr []string, m Membership, p *pending) error {
	var lin *lineage
	if p != nil {
		lin = p.in.Lineage
	}
	return s.completeLoginIn(ctx, w, u, amr, m, p, lin)
}

// completeLoginIn is completeLogin for a session in the family lin (nil: a
// new family). When the store cannot say whether a second factor is owed,
// the answer is its error (503), never a session.
func (s *Server) completeLoginIn(ctx context.Context, w http.ResponseWriter, u user, amr []string, m Membership, p *pending, lin *lineage) error {
	owed, err := s.mfaOwed(ctx, u, amr, m.Org)
	if err != nil {
		return err
	}
	if owed {
		if p == nil {
			resp, err := s.startIntermediateIn(ctx, u, amr, m.Org, true, lin)
			if err != nil {
				return err
			}
			writeJSON(w, http.StatusOK, resp)
			return nil
		}
		in, err := s.changeIntermediate(ctx, p.rec.ID, func(in *intermediate) error {
			in.OrgRef = m.Org.Ref
			return nil
		})
		if err != nil {
			return err
		}
		p.in = in
		writeJSON(w, http.StatusOK, &intermediateResponse{
			IntermediateSessionToken: p.token, ExpiresIn: int(p.in.ExpiresAt.Sub(s.cfg.Now()) / time.Second),
			User: userInfo{ID: u.ID, Email: u.Email}, Organizations: s.orgList(u.Email), MFARequired: true,
		})
		return nil
	}
	if p != nil {
		if err := s.spendIntermediate(ctx, p.rec.ID); err != nil {
			return err
		}
	}
	resp, err := s.startSession(ctx, u, m.Org, m.Member.Role, amr, lin)
	if err != nil {
		return err
	}
	s.writeSession(w, http.StatusOK, resp)
	return nil
}

// mfaOwed reports whether u must still pass TOTP for org: when the user
// has TOTP on, or the organization requires it, and amr lacks otp. An
// error means the store could not say; callers answer it, never a session.
func (s *Server) mfaOwed(ctx context.Context, u user, amr []string, org *Org) (bool, error) {
	for _, a := range amr {
		if a == "otp" {
			return false, nil
		}
	}
	if org.MFARequired {
		return true, nil
	}
	return s.totpEnabled(ctx, u.ID)
}

// totpEnabled reports whether the user has turned TOTP on. A user with no
// credentials record has no TOTP; any other store error is returned, so
// the caller fails closed.
func (s *Server) totpEnabled(ctx context.Context, userID string) (bool, error) {
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
