package authserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tenantauth/tenantauth/authserver/mail"
)

// Lifetimes of the one-time tokens mailed to users (email verification,
// password reset, magic link), as the token contract fixes them.
const (
	magicLinkTTL   = 15 * time.Minute
	verifyEmailTTL = 24 * time.Hour
	resetTTL       = time.Hour
	// tokenRetention keeps a used or expired token's record this long past
	// its expiry, so presenting it again says token_used or token_expired
	// rather than token_invalid.
	tokenRetention = 24 * time.Hour
)

// Purposes of one-time tokens; a token works only for its own.
const (
	purposeMagicLink   = "magic_link"
	purposeVerifyEmail = "verify_email"
	purposeReset       = "password_reset"
)

// The answers to a one-time token that cannot be used.
var (
	errTokenInvalid = errf(http.StatusUnauthorized, "token_invalid", "the token is malformed or unknown")
	errTokenUsed    = errf(http.StatusUnauthorized, "token_used", "the token was already used; ask for a new one")
	errTokenExpired = errf(http.StatusUnauthorized, "token_expired", "the token has expired; ask for a new one")
)

// oneTime is the record of a mailed token. Only the hash of its secret is
// kept, as for every opaque token.
type oneTime struct {
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
}

// mailToken makes a token of prefix for ot and renders its mail, then,
// only when send is true, records the token and queues the mail. Making
// and rendering happen either way, so an email that gets a mail and one
// that does not cost the same work.
func (s *Server) mailToken(ctx context.Context, send bool, prefix string, ttl time.Duration, ot *oneTime,
	render func(token string, expires time.Time) mail.Message) error {
	token, id, hash := newOpaque(prefix)
	ot.Hash = hash
	ot.ExpiresAt = s.cfg.Now().UTC().Add(ttl)
	msg := render(token, ot.ExpiresAt)
	msg.Lane = ot.Purpose // purposes name the mail queue's lanes
	if !send {
		return nil
	}
	rec := &Record{Kind: KindToken, ID: prefix + "_" + id, UserID: ot.UserID, ExpiresAt: ot.ExpiresAt.Add(tokenRetention)}
	if err := save(ctx, s.store, rec, ot); err != nil {
		return fmt.Errorf("create %s token: %w", ot.Purpose, err)
	}
	s.metrics.issued.WithLabelValues(ot.Purpose).Inc()
	return s.deliver(ctx, msg)
}

// consumeOneTime spends a token of prefix and purpose. check, when not
// nil, runs on the live record before it is spent; its error leaves the
// token unspent. Single use rests on the store's compare-and-swap: of two
// concurrent requests with one token, one spends it and the other re-reads
// it spent.
func (s *Server) consumeOneTime(ctx context.Context, prefix, purpose, token string, check func(*oneTime) error) (*Record, *oneTime, error) {
	id, secret, ok := parseOpaque(prefix, strings.TrimSpace(token))
	if !ok {
		return nil, nil, errTokenInvalid
	}
	for attempt := 0; attempt < 5; attempt++ {
		var ot oneTime
		rec, err := load(ctx, s.store, KindToken, prefix+"_"+id, &ot)
		if errors.Is(err, ErrNotFound) {
			return nil, nil, errTokenInvalid
		}
		if err != nil {
			return nil, nil, err
		}
		switch now := s.cfg.Now(); {
		case !secretMatches(secret, ot.Hash) || ot.Purpose != purpose:
			return nil, nil, errTokenInvalid
		case ot.SpentAt != nil:
			return nil, nil, errTokenUsed
		case !now.Before(ot.ExpiresAt):
			return nil, nil, errTokenExpired
		}
		if check != nil {
			if err := check(&ot); err != nil {
				return nil, nil, err
			}
		}
		now := s.cfg.Now().UTC()
		ot.SpentAt = &now
		err = save(ctx, s.store, rec, &ot)
		if errors.Is(err, ErrConflict) {
			continue // re-read: most likely a concurrent request spent it
		}
		if err != nil {
			return nil, nil, fmt.Errorf("spend %s token: %w", purpose, err)
		}
		return rec, &ot, nil
	}
	return nil, nil, errTokenUsed
}

// unspend makes a spent token usable again after the work it was spent
// for failed on a fault the client may retry.
func (s *Server) unspend(ctx context.Context, rec *Record, ot *oneTime) {
	ot.SpentAt = nil
	if err := save(ctx, s.store, rec, ot); err != nil {
		s.log.Error(err, "could not release a token after a failed request", "purpose", ot.Purpose)
	}
}

// revokeUserTokens spends every outstanding one-time and intermediate
// token of a user, as a password reset must: a link or half-finished login
// from before the reset no longer works after it.
func (s *Server) revokeUserTokens(ctx context.Context, userID string) error {
	recs, err := s.store.ListByUser(ctx, KindToken, userID)
	if err != nil {
		return err
	}
	now := s.cfg.Now().UTC()
	for _, rec := range recs {
		if !now.Before(rec.ExpiresAt) && !rec.ExpiresAt.IsZero() {
			continue
		}
		var v interface{ spend(time.Time) bool }
		if strings.HasPrefix(rec.ID, prefixIntermediate+"_") {
			v = &intermediateRecord{}
		} else {
			v = &oneTimeRecord{}
		}
		if err := json.Unmarshal(rec.Data, v); err != nil {
			continue
		}
		if !v.spend(now) {
			continue
		}
		// A conflict means the token changed under us (it was just used or
		// spent): nothing to revoke.
		if err := save(ctx, s.store, rec, v); err != nil && !errors.Is(err, ErrConflict) && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return nil
}

type intermediateRecord struct{ intermediate }

func (r *intermediateRecord) spend(time.Time) bool {
	if r.Spent {
		return false
	}
	r.Spent = true
	return true
}

type oneTimeRecord struct{ oneTime }

func (r *oneTimeRecord) spend(now time.Time) bool {
	if r.SpentAt != nil {
		return false
	}
	r.SpentAt = &now
	return true
}
