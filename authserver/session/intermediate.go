package session

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tenantauth/tenantauth/authserver/problem"

	"github.com/tenantauth/tenantauth/authserver/token"

	"github.com/tenantauth/tenantauth/authserver/directory"

	"github.com/tenantauth/tenantauth/authserver/store"
)

// IntermediateTTL is how long an intermediate session token lives.
const IntermediateTTL = 10 * time.Minute

// MaxMFAFailures spends an intermediate session after this many wrong codes.
const MaxMFAFailures = 5

// Intermediate is a proven user who has not yet chosen an organization or
// still owes a second factor.
type Intermediate struct {
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
	Lineage *Lineage `json:"lineage,omitempty"`
}

// IntermediateResponse is the contract's intermediate response.
type IntermediateResponse struct {
	IntermediateSessionToken string    `json:"intermediate_session_token"`
	ExpiresIn                int       `json:"expires_in"`
	User                     UserInfo  `json:"user"`
	Organizations            []OrgInfo `json:"organizations"`
	MFARequired              bool      `json:"mfa_required"`
}

// StartIntermediate records an intermediate session and builds its answer.
func (s *Manager) StartIntermediate(ctx context.Context, u User, amr []string, org *directory.Org, mfa bool) (*IntermediateResponse, error) {
	return s.StartIntermediateIn(ctx, u, amr, org, mfa, nil)
}

// StartIntermediateIn is startIntermediate for a sign-in that continues
// the family lin (nil: a new sign-in).
func (s *Manager) StartIntermediateIn(ctx context.Context, u User, amr []string, org *directory.Org, mfa bool, lin *Lineage) (*IntermediateResponse, error) {
	raw, id, hash := token.NewOpaque(token.PrefixIntermediate)
	now := s.cfg.Now().UTC()
	in := &Intermediate{UserID: u.ID, Email: u.Email, AMR: amr, ExpiresAt: now.Add(IntermediateTTL), Hash: hash, Lineage: lin}
	if org != nil {
		in.OrgRef = org.Ref
	}
	rec := &store.Record{Kind: store.KindToken, ID: token.PrefixIntermediate + "_" + id, UserID: u.ID, ExpiresAt: in.ExpiresAt}
	if err := store.Put(ctx, s.store, rec, in); err != nil {
		return nil, fmt.Errorf("create intermediate session: %w", err)
	}
	s.cfg.issued("intermediate")
	return &IntermediateResponse{
		IntermediateSessionToken: raw, ExpiresIn: int(IntermediateTTL / time.Second),
		User: UserInfo{ID: u.ID, Email: u.Email}, Organizations: s.OrgList(u.Email), MFARequired: mfa,
	}, nil
}

// OrgList lists a user's organizations with their role.
func (s *Manager) OrgList(email string) []OrgInfo {
	ms := s.dir.Memberships(email)
	out := make([]OrgInfo, 0, len(ms))
	for _, m := range ms {
		out = append(out, OrgInfo{ID: m.Org.ID, Slug: m.Org.Slug, Name: m.Org.Name, Role: m.Member.Role})
	}
	return out
}

// LoadIntermediate reads a live intermediate session by its token.
func (s *Manager) LoadIntermediate(ctx context.Context, raw string) (*store.Record, *Intermediate, error) {
	id, secret, ok := token.ParseOpaque(token.PrefixIntermediate, raw)
	invalid := problem.TokenInvalid.New()
	if !ok {
		return nil, nil, invalid
	}
	var in Intermediate
	rec, err := store.Load(ctx, s.store, store.KindToken, token.PrefixIntermediate+"_"+id, &in)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, invalid
	}
	if err != nil {
		return nil, nil, err
	}
	if !token.SecretMatches(secret, in.Hash) {
		return nil, nil, invalid
	}
	if in.Spent {
		return nil, nil, problem.TokenUsed.New()
	}
	if !s.cfg.Now().Before(in.ExpiresAt) {
		return nil, nil, problem.TokenExpired.Because("the intermediate session token has expired; sign in again")
	}
	return rec, &in, nil
}

// errIntermediateUsed answers an intermediate session that was spent,
// or that a concurrent request was spending.
var errIntermediateUsed = problem.TokenUsed.New()

// ChangeIntermediate applies change to a live intermediate session; one
// spent meanwhile (by a concurrent request) answers token_used.
func (s *Manager) ChangeIntermediate(ctx context.Context, id string, change func(*Intermediate) error) (*Intermediate, error) {
	_, in, err := store.Modify(ctx, s.store, store.KindToken, id, func(_ *store.Record, in *Intermediate) error {
		if in.Spent {
			return errIntermediateUsed
		}
		if !s.cfg.Now().Before(in.ExpiresAt) {
			return problem.TokenExpired.Because("the intermediate session token has expired; sign in again")
		}
		return change(in)
	})
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
		return nil, errIntermediateUsed
	}
	return in, err
}

// SpendIntermediate marks the intermediate session used, once.
func (s *Manager) SpendIntermediate(ctx context.Context, id string) error {
	_, err := s.ChangeIntermediate(ctx, id, func(in *Intermediate) error {
		in.Spent = true
		return nil
	})
	return err
}

// Pending is an intermediate session presented by the client, with the
// token it presented.
type Pending struct {
	Rec   *store.Record
	In    *Intermediate
	Token string
}
