package account

import (
	"context"
	"errors"
	"time"

	"github.com/tenantauth/tenantauth/authserver/store"
)

// Credentials are a user's secrets, keyed by user ID: the same for every
// organization the user belongs to.
type Credentials struct {
	PasswordHash string `json:"password_hash,omitempty"`
	// TOTPSecret is the base32 TOTP seed; TOTPEnabled is set once the user
	// proved a code from it.
	TOTPSecret  string `json:"totp_secret,omitempty"`
	TOTPEnabled bool   `json:"totp_enabled,omitempty"`
	// TOTPLastStep is the last time step accepted, so a code cannot be
	// replayed within its window.
	TOTPLastStep   int64     `json:"totp_last_step,omitempty"`
	RecoveryHashes []string  `json:"recovery_hashes,omitempty"`
	UpdatedAt      time.Time `json:"updated_at"`
	// TokensNotBefore is the last password reset: links sealed before it
	// are refused (see verify_sealed.go).
	TokensNotBefore time.Time `json:"tokens_not_before,omitzero"`
}

// loadCredentials reads a user's credentials; a user with none gets an
// empty record to create.
func (s *Service) LoadCredentials(ctx context.Context, userID string) (*store.Record, *Credentials, error) {
	var c Credentials
	rec, err := store.Load(ctx, s.store, store.KindCredentials, userID, &c)
	if errors.Is(err, store.ErrNotFound) {
		return &store.Record{Kind: store.KindCredentials, ID: userID, UserID: userID}, &c, nil
	}
	if err != nil {
		return nil, nil, err
	}
	return rec, &c, nil
}

// UpdateCredentials applies change to a user's credentials, creating
// them if the user has none; the store re-applies it on a conflict.
func (s *Service) UpdateCredentials(ctx context.Context, userID string, change func(*Credentials) error) error {
	_, _, err := store.Upsert(ctx, s.store, store.Record{Kind: store.KindCredentials, ID: userID, UserID: userID},
		func(_ *store.Record, c *Credentials) error {
			if err := change(c); err != nil {
				return err
			}
			c.UpdatedAt = s.cfg.Now().UTC()
			return nil
		})
	return err
}

// SetPassword hashes and stores a user's password. It is the seeding path
// for tests and the reset flow.
func (s *Service) SetPassword(ctx context.Context, userID, password string) error {
	hash, err := HashPassword(normalizePassword(password), s.cfg.Argon2)
	if err != nil {
		return err
	}
	return s.UpdateCredentials(ctx, userID, func(c *Credentials) error {
		c.PasswordHash = hash
		return nil
	})
}
