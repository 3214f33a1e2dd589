package account

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tenantauth/tenantauth/authserver/session"

	"github.com/tenantauth/tenantauth/authserver/problem"

	"github.com/tenantauth/tenantauth/authserver/token"

	"github.com/tenantauth/tenantauth/authserver/mail"
	"github.com/tenantauth/tenantauth/authserver/store"
)

// Lifetimes of the one-time tokens mailed to users (email verification,
// password reset, magic link), as the token contract fixes them.
const (
	MagicLinkTTL   = 15 * time.Minute
	VerifyEmailTTL = 24 * time.Hour
	ResetTTL       = time.Hour
	// TokenRetention keeps an expired token's record this long past its
	// expiry, and spentRetention a spent one's this long past its use, so
	// presenting it again soon (a second click) says token_expired or
	// token_used rather than token_invalid. Later, a record that is gone
	// is refused just the same; keeping it longer only fills the store.
	TokenRetention = time.Hour
	spentRetention = 10 * time.Minute
)

// Purposes of one-time tokens; a token works only for its own.
const (
	PurposeMagicLink   = "magic_link"
	PurposeVerifyEmail = "verify_email"
	PurposeReset       = "password_reset"
)

// The answers to a one-time token that cannot be used.
var (
	errTokenInvalid = problem.TokenInvalid.Because("the token is malformed or unknown")
	errTokenUsed    = problem.TokenUsed.Because("the token was already used; ask for a new one")
	errTokenExpired = problem.TokenExpired.Because("the token has expired; ask for a new one")
)

// OneTime is the record of a mailed token. Only the hash of its secret is
// kept, as for every opaque token.
type OneTime struct {
	Purpose string `json:"purpose"`
	Email   string `json:"email"`
	UserID  string `json:"user_id"`
	// OrgRef is the organization the token leads to, when it leads to one.
	OrgRef string `json:"org_ref,omitempty"`
	// PasswordHash is the argon2id hash of the password chosen at signup.
	PasswordHash string `json:"password_hash,omitempty"`
	// SignupBinding is the hash of the cookie register set; see
	// signupCookie.
	SignupBinding string     `json:"signup_binding,omitempty"`
	Hash          string     `json:"hash"`
	ExpiresAt     time.Time  `json:"expires_at"`
	SpentAt       *time.Time `json:"spent_at,omitempty"`
	// Revoked is set by a password reset, whether or not the token was
	// spent: Unspend never makes a revoked token usable again.
	Revoked bool `json:"revoked,omitempty"`
}

// mailToken makes a token of prefix for ot and renders its mail, then,
// only when send is true, records the token and queues the mail. Making
// and rendering happen either way, so an email that gets a mail and one
// that does not cost the same work.
func (s *Service) MailToken(ctx context.Context, send bool, prefix string, ttl time.Duration, ot *OneTime,
	render func(raw string, expires time.Time) mail.Message) error {
	raw, id, hash := token.NewOpaque(prefix)
	ot.Hash = hash
	ot.ExpiresAt = s.cfg.Now().UTC().Add(ttl)
	msg := render(raw, ot.ExpiresAt)
	msg.Lane = ot.Purpose // purposes name the mail queue's lanes
	if !send {
		return nil
	}
	rec := &store.Record{Kind: store.KindToken, ID: prefix + "_" + id, UserID: ot.UserID, ExpiresAt: ot.ExpiresAt.Add(TokenRetention)}
	if err := store.Put(ctx, s.store, rec, ot); err != nil {
		return fmt.Errorf("create %s token: %w", ot.Purpose, err)
	}
	if err := s.capUserTokens(ctx, ot.UserID, rec.ID); err != nil {
		s.log.Error(err, "could not cap a user's outstanding tokens", "purpose", ot.Purpose)
	}
	s.issued(ot.Purpose)
	return s.deliver(ctx, msg)
}

// consumeOneTime spends a token of prefix and purpose. check, when not
// nil, runs on the live record before it is spent; its error leaves the
// token unspent. Single use rests on the store's compare-and-swap: of two
// concurrent requests with one token, one spends it and the other re-reads
// it spent.
func (s *Service) ConsumeOneTime(ctx context.Context, prefix, purpose, raw string, check func(*OneTime) error) (*store.Record, *OneTime, error) {
	id, secret, ok := token.ParseOpaque(prefix, strings.TrimSpace(raw))
	if !ok {
		return nil, nil, errTokenInvalid
	}
	rid := prefix + "_" + id
	live := func(ot *OneTime) error {
		switch now := s.cfg.Now(); {
		case !token.SecretMatches(secret, ot.Hash) || ot.Purpose != purpose:
			return errTokenInvalid
		case ot.SpentAt != nil:
			return errTokenUsed
		case !now.Before(ot.ExpiresAt):
			return errTokenExpired
		}
		return nil
	}
	var first OneTime
	_, err := store.Load(ctx, s.store, store.KindToken, rid, &first)
	if err == nil {
		err = live(&first)
	}
	if err == nil && check != nil {
		// Outside the update: check may be slow (a password hash) and the
		// update's change may not wait on anything.
		err = check(&first)
	}
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil, errTokenInvalid
		}
		return nil, nil, err
	}
	rec, ot, err := store.Modify(ctx, s.store, store.KindToken, rid, func(r *store.Record, ot *OneTime) error {
		if err := live(ot); err != nil {
			return err // most likely a concurrent request spent it
		}
		now := s.cfg.Now().UTC()
		ot.SpentAt = &now
		if keep := now.Add(spentRetention); keep.Before(r.ExpiresAt) {
			r.ExpiresAt = keep
		}
		return nil
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil, errTokenInvalid
	case errors.Is(err, store.ErrConflict):
		return nil, nil, errTokenUsed
	case err != nil:
		var e *problem.Error
		if errors.As(err, &e) {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("spend %s token: %w", purpose, err)
	}
	return rec, ot, nil
}

// unspend makes a spent token usable again after the work it was spent
// for failed on a fault the client may retry.
func (s *Service) Unspend(ctx context.Context, rec *store.Record, ot *OneTime) {
	ot.SpentAt = nil
	_, _, err := store.Modify(ctx, s.store, store.KindToken, rec.ID, func(r *store.Record, cur *OneTime) error {
		if cur.Revoked {
			return store.ErrUnchanged // a reset came in between: the token stays spent
		}
		cur.SpentAt = nil
		r.ExpiresAt = cur.ExpiresAt.Add(TokenRetention)
		return nil
	})
	if err != nil {
		s.log.Error(err, "could not release a token after a failed request", "purpose", ot.Purpose)
	}
}

// revokeUserTokens spends every outstanding one-time and intermediate
// token of a user, as a password reset must: a link or half-finished login
// from before the reset no longer works after it.
func (s *Service) revokeUserTokens(ctx context.Context, userID string) error {
	recs, err := s.store.ListByUser(ctx, store.KindToken, userID)
	if err != nil {
		return err
	}
	now := s.cfg.Now().UTC()
	for _, rec := range recs {
		if !now.Before(rec.ExpiresAt) && !rec.ExpiresAt.IsZero() {
			continue
		}
		if strings.HasPrefix(rec.ID, token.PrefixIntermediate+"_") {
			err = spendRecord[intermediateRecord](ctx, s.store, rec.ID, now)
		} else {
			err = spendRecord[oneTimeRecord](ctx, s.store, rec.ID, now)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// spendRecord spends one token record of type T. A record gone meanwhile,
// or one that does not decode, has nothing left to revoke.
func spendRecord[T any, P interface {
	*T
	spend(time.Time) bool
}](ctx context.Context, st store.Store, id string, now time.Time) error {
	_, _, err := store.Modify(ctx, st, store.KindToken, id, func(r *store.Record, v *T) error {
		if !P(v).spend(now) {
			return store.ErrUnchanged
		}
		if keep := now.Add(spentRetention); keep.Before(r.ExpiresAt) {
			r.ExpiresAt = keep
		}
		return nil
	})
	if errors.Is(err, store.ErrNotFound) || errors.As(err, new(*json.SyntaxError)) || errors.As(err, new(*json.UnmarshalTypeError)) {
		return nil
	}
	return err
}

type intermediateRecord struct{ session.Intermediate }

func (r *intermediateRecord) spend(time.Time) bool {
	if r.Spent {
		return false
	}
	r.Spent = true
	return true
}

type oneTimeRecord struct{ OneTime }

// spend revokes the token: spent if it was not, and marked revoked even
// if it was, so a request that spent it and then fails cannot release it.
func (r *oneTimeRecord) spend(now time.Time) bool {
	if r.Revoked {
		return false
	}
	if r.SpentAt == nil {
		r.SpentAt = &now
	}
	r.Revoked = true
	return true
}
