package authserver

import (
	"context"
	"fmt"
	"time"

	"github.com/tenantauth/tenantauth/authserver/store"
)

// A store whose reads are network calls (postgres) offers a revocation
// view, an in-memory set of what was revoked lately that every replica
// keeps current (store.RevocationView). For it, checkSessionFor reads no
// record: the facts it checked against the session record (family,
// creation and sign-in time) travel in the access token's claims, signed
// like the rest, so the token and the view suffice, even for a session
// another replica made. A token from before those claims takes the
// record path, as on every other store.

// checkSessionByView is checkSessionFor for a store with a revocation
// view: the session and its family must not be revoked (nor deleted)
// since the token was issued, and the membership not removed after the
// session was made. The view's error (it cannot say) fails closed.
func (s *Server) checkSessionByView(ctx context.Context, rv store.RevocationView, c *Claims, org *Org) (*sessionFacts, error) {
	f := &sessionFacts{UserID: c.Subject, Email: c.Email, OrgID: c.OrgID, FamilyID: c.FamilyID,
		CreatedAt: time.Unix(c.SessionCreatedAt, 0).UTC(), AuthTime: unixTime(c.AuthTime)}
	issued := time.Unix(c.IssuedAt, 0)
	for _, k := range []struct{ kind, id string }{{store.KindSession, c.SessionID}, {store.KindFamily, c.FamilyID}} {
		revoked, err := rv.Revoked(ctx, k.kind, k.id, issued)
		if err != nil {
			return nil, fmt.Errorf("check %s revocation: %w", k.kind, err)
		}
		if revoked {
			return nil, errSessionEnded
		}
	}
	// CreatedAt is whole seconds, rounded down: a session made in the
	// second of a removal counts as before it, which fails closed.
	if s.removals.endedBefore(c.Email, org.Ref, f.CreatedAt) {
		return nil, errMembershipInactive
	}
	return f, nil
}

// unixOrZero is t in Unix seconds, 0 for the zero time.
func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func unixTime(sec int64) time.Time {
	if sec == 0 {
		return time.Time{}
	}
	return time.Unix(sec, 0).UTC()
}

// storeReady is the store's readiness, for /readyz: nil for a store that
// is always ready.
func storeReady(st store.Store) error {
	if r, ok := st.(store.Readier); ok {
		return r.Ready()
	}
	return nil
}
