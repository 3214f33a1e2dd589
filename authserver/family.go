package authserver

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

// reauthWindow is how recent a family's sign-in must be for sensitive
// account changes: the trust model asks a fresh sign-in for them.
const reauthWindow = 10 * time.Minute

// family is the record of one sign-in.
type family struct {
	UserID            string     `json:"user_id"`
	AuthTime          time.Time  `json:"auth_time"`
	AbsoluteExpiresAt time.Time  `json:"absolute_expires_at"`
	AMR               []string   `json:"amr"`
	RevokedAt         *time.Time `json:"revoked_at,omitempty"`
	Reason            string     `json:"revoke_reason,omitempty"`
}

// lineage is what a session made by a switch inherits from its family.
type lineage struct {
	FamilyID          string    `json:"family_id"`
	AuthTime          time.Time `json:"auth_time"`
	AbsoluteExpiresAt time.Time `json:"absolute_expires_at"`
}

// errSessionEnded answers a session whose family or record is gone.
var errSessionEnded = problem.SessionRevoked.New()

// errReauth answers a sensitive change from a sign-in older than
// reauthWindow.
var errReauth = problem.ReauthenticationRequired.New()

// createFamily records a new sign-in's family and returns its lineage.
func (s *Server) createFamily(ctx context.Context, userID string, amr []string, now, absolute time.Time) (*lineage, error) {
	fam := &family{UserID: userID, AuthTime: now, AbsoluteExpiresAt: absolute, AMR: amr}
	rec := &store.Record{Kind: store.KindFamily, ID: familyIDPrefix + token.NewID(), UserID: userID, ExpiresAt: absolute.Add(revokedRetention)}
	if err := store.Put(ctx, s.store, rec, fam); err != nil {
		return nil, fmt.Errorf("create session family: %w", err)
	}
	return &lineage{FamilyID: rec.ID, AuthTime: now, AbsoluteExpiresAt: absolute}, nil
}

// checkFamily answers nil when the family is live, 401 when it was
// revoked or is gone, and the store's error when the store cannot say.
// A session from before families (no family ID) stands alone: its own
// record is checked by the caller.
func (s *Server) checkFamily(ctx context.Context, id string) error {
	if id == "" {
		return nil
	}
	hdr, err := store.GetHeader(ctx, s.store, store.KindFamily, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errSessionEnded
	case err != nil:
		return fmt.Errorf("read session family: %w", err)
	case hdr.Revoked:
		return errSessionEnded
	}
	return nil
}

// revokeFamily ends every session of a family: the family record first
// (which ends them all at once), then each session's record.
func (s *Server) revokeFamily(ctx context.Context, userID, familyID, reason string) error {
	if familyID == "" {
		return nil
	}
	_, _, err := store.Modify(ctx, s.store, store.KindFamily, familyID, func(rec *store.Record, fam *family) error {
		if fam.RevokedAt != nil {
			return store.ErrUnchanged
		}
		now := s.cfg.Now().UTC()
		fam.RevokedAt, fam.Reason, rec.Revoked = &now, reason, true
		return nil
	})
	// A collected family needs nothing: its sessions fail the family
	// check already.
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("revoke session family: %w", err)
	}
	return s.revokeSessionsWhere(ctx, userID, reason, func(sess *session) bool { return sess.FamilyID == familyID })
}

// revokeSessionsWhere marks revoked every live session of the user that
// match selects. It lists with the store's live read, so sessions made a
// moment ago on other replicas are found too.
func (s *Server) revokeSessionsWhere(ctx context.Context, userID, reason string, match func(*session) bool) error {
	recs, err := s.store.ListByUser(ctx, store.KindSession, userID)
	if err != nil {
		return err
	}
	for _, rec := range recs {
		if rec.Revoked {
			continue
		}
		var sess session
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

// principal's family signed in within reauthWindow.
func (s *Server) requireRecentSignIn(p *Principal) error {
	if p.AuthTime.IsZero() || s.cfg.Now().Sub(p.AuthTime) > reauthWindow {
		return errReauth
	}
	return nil
}
