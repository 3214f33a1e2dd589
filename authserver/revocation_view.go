package authserver

import (
	"context"
	"fmt"
	"time"

	"github.com/tenantauth/tenantauth/authserver/directory"
	"github.com/tenantauth/tenantauth/authserver/session"
	"github.com/tenantauth/tenantauth/authserver/store"
	"github.com/tenantauth/tenantauth/authserver/token"
)

// A store whose reads are network calls (postgres) offers a revocation
// view, an in-memory set of what was revoked lately that every replica
// keeps current (store.RevocationView). For it, checkSessionFor reads a
// session's record once per replica, for the facts that never change
// (user, organization, family, creation time), and from then on asks only
// memory: the facts cache and the view. The token's claims stay exactly
// those of the token contract.

// checkSessionByView is checkSessionFor for a store with a revocation
// view: the session and its family must not be revoked (nor deleted)
// since the token was issued, and the membership not removed after the
// session was made. The view's error (it cannot say) fails closed.
func (s *Server) checkSessionByView(ctx context.Context, rv store.RevocationView, c *token.Claims, org *directory.Org) (*sessionFacts, error) {
	// This session's first token on this replica reads its record once.
	f, err := s.sessionFacts(ctx, c.SessionID, c.Subject)
	if err != nil {
		return nil, err
	}
	if f.UserID != c.Subject || f.OrgID != c.OrgID || f.Email != c.Email {
		return nil, errInvalidToken
	}
	issued := time.Unix(c.IssuedAt, 0)
	for _, k := range []struct{ kind, id string }{{store.KindSession, c.SessionID}, {store.KindFamily, f.FamilyID}} {
		if k.id == "" {
			continue // a session from before families stands alone
		}
		revoked, err := rv.Revoked(ctx, k.kind, k.id, issued)
		if err != nil {
			return nil, fmt.Errorf("check %s revocation: %w", k.kind, err)
		}
		if revoked {
			return nil, session.ErrEnded
		}
	}
	if s.sessions.EndedBefore(c.Email, org.Ref, f.CreatedAt) {
		return nil, session.ErrMembershipInactive
	}
	return f, nil
}

// storeReady is the store's readiness, for /readyz: nil for a store that
// is always ready.
func storeReady(st store.Store) error {
	if r, ok := st.(store.Readier); ok {
		return r.Ready()
	}
	return nil
}
