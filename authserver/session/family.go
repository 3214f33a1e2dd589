package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tenantauth/tenantauth/authserver/problem"

	"github.com/tenantauth/tenantauth/authserver/token"

	"github.com/tenantauth/tenantauth/authserver/store"
)

// Session families: how refresh sessions descend from one sign-in. A sign-in (password, magic link,
// verified signup) starts a family: one store record that every session
// descended from the sign-in names. Switching organizations with a live
// session makes a new session in the same family, which keeps the
// family's sign-in time, absolute expiry and amr, so a switch can never
// outlive, or outrank, the sign-in it came from.
//
// Ending a family is one compare-and-swap on its record, and every check
// of a session (verify, /auth/me, logout, refresh, switch) reads that
// record. So no session of a revoked family survives the write, not even
// one that a concurrent switch made a moment after the sessions were
// listed. Marking each session revoked as well is bookkeeping that makes
// the answers say session_revoked and lets the records be collected.

// familyIDPrefix starts family record IDs.
const familyIDPrefix = "fam_"

// ReauthWindow is how recent a family's sign-in must be for sensitive
// account changes: the trust model asks a fresh sign-in for them.
const ReauthWindow = 10 * time.Minute

// family is the record of one sign-in.
type family struct {
	UserID            string     `json:"user_id"`
	AuthTime          time.Time  `json:"auth_time"`
	AbsoluteExpiresAt time.Time  `json:"absolute_expires_at"`
	AMR               []string   `json:"amr"`
	RevokedAt         *time.Time `json:"revoked_at,omitempty"`
	Reason            string     `json:"revoke_reason,omitempty"`
}

// Lineage is what a session made by a switch inherits from its family.
type Lineage struct {
	FamilyID          string    `json:"family_id"`
	AuthTime          time.Time `json:"auth_time"`
	AbsoluteExpiresAt time.Time `json:"absolute_expires_at"`
}

// ErrEnded answers a session whose family or record is gone.
var ErrEnded = problem.SessionRevoked.New()

// ErrReauth answers a sensitive change from a sign-in older than
// reauthWindow.
var ErrReauth = problem.ReauthenticationRequired.New()

// createFamily records a new sign-in's family and returns its lineage.
func (s *Manager) createFamily(ctx context.Context, userID string, amr []string, now, absolute time.Time) (*Lineage, error) {
	fam := &family{UserID: userID, AuthTime: now, AbsoluteExpiresAt: absolute, AMR: amr}
	rec := &store.Record{Kind: store.KindFamily, ID: familyIDPrefix + token.NewID(), UserID: userID, ExpiresAt: absolute.Add(RevokedRetention)}
	if err := store.Put(ctx, s.store, rec, fam); err != nil {
		return nil, fmt.Errorf("create session family: %w", err)
	}
	return &Lineage{FamilyID: rec.ID, AuthTime: now, AbsoluteExpiresAt: absolute}, nil
}

// CheckFamily answers nil when the family is live, 401 when it was
// revoked or is gone, and the store's error when the store cannot say.
// A session from before families (no family ID) stands alone: its own
// record is checked by the caller.
func (s *Manager) CheckFamily(ctx context.Context, id string) error {
	if id == "" {
		return nil
	}
	hdr, err := store.GetHeader(ctx, s.store, store.KindFamily, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return ErrEnded
	case err != nil:
		return fmt.Errorf("read session family: %w", err)
	case hdr.Revoked:
		return ErrEnded
	}
	return nil
}

// RevokeFamily ends every session of a family: the family record first
// (which ends them all at once), then each session's record.
func (s *Manager) RevokeFamily(ctx context.Context, userID, familyID, reason string) error {
	if familyID == "" {
		return nil
	}
	_, _, err := store.Modify(ctx, s.store, store.KindFamily, familyID, func(rec *store.Record, fam *family) error {
		if fam.RevokedAt != nil {
			return store.ErrUnchanged
		}
		now := s.cfg.Now().UTC()
		fam.RevokedAt, fam.Reason, rec.Revoked = &now, reason, true
		rec.ExpiresAt = minTime(rec.ExpiresAt, now.Add(RevokedRetention))
		return nil
	})
	// A collected family needs nothing: its sessions fail the family
	// check already.
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("revoke session family: %w", err)
	}
	return s.RevokeSessionsWhere(ctx, userID, reason, func(sess *Session) bool { return sess.FamilyID == familyID })
}

// RevokeSessionsWhere marks revoked every live session of the user that
// match selects. It lists with the store's live read, so sessions made a
// moment ago on other replicas are found too.
func (s *Manager) RevokeSessionsWhere(ctx context.Context, userID, reason string, match func(*Session) bool) error {
	recs, err := s.store.ListByUser(ctx, store.KindSession, userID)
	if err != nil {
		return err
	}
	for _, rec := range recs {
		if rec.Revoked {
			continue
		}
		var sess Session
		if err := json.Unmarshal(rec.Data, &sess); err != nil {
			return fmt.Errorf("decode session %s: %w", rec.ID, err)
		}
		if !match(&sess) {
			continue
		}
		if err := s.revokeSessionRecord(ctx, rec.ID, reason); err != nil {
			return err
		}
	}
	return nil
}
