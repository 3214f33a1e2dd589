package authserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tenantauth/tenantauth/authserver/session"

	"github.com/tenantauth/tenantauth/authserver/directory"
	"github.com/tenantauth/tenantauth/authserver/store"
	"github.com/tenantauth/tenantauth/authserver/token"
)

// sessionFacts are the parts of a session that never change after it is
// made: what a JWT naming it is checked against.
type sessionFacts struct {
	UserID    string    `json:"user_id"`
	Email     string    `json:"email"`
	OrgID     string    `json:"org_id"`
	FamilyID  string    `json:"family_id"`
	CreatedAt time.Time `json:"created_at"`
	AuthTime  time.Time `json:"auth_time"`
}

// factsCache remembers sessions' facts by session ID, so the hot path
// decodes a session record once rather than on every request. Facts never
// change, so an entry is never stale; revocation is read from the record
// and its family every time.
type factsCache struct {
	mu      sync.RWMutex
	max     int
	entries map[string]*sessionFacts
}

func newFactsCache(max int) *factsCache {
	return &factsCache{max: max, entries: map[string]*sessionFacts{}}
}

// cached returns the facts cached for session id if they are of userID.
func (c *factsCache) cached(id, userID string) (*sessionFacts, bool) {
	c.mu.RLock()
	f, ok := c.entries[id]
	c.mu.RUnlock()
	return f, ok && f.UserID == userID
}

// facts returns the facts of a session record, decoding it on a miss.
func (c *factsCache) facts(rec *store.Record) (*sessionFacts, error) {
	if f, ok := c.cached(rec.ID, rec.UserID); ok {
		return f, nil
	}
	f := &sessionFacts{}
	if err := json.Unmarshal(rec.Data, f); err != nil {
		return nil, fmt.Errorf("decode session %s: %w", rec.ID, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	token.EvictTenth(c.entries, c.max)
	c.entries[rec.ID] = f
	return f, nil
}

// checkSessionFor checks that the live session a JWT names belongs to the
// token's subject, email and organization, that its family is live, and
// that its membership was not removed after it was made. It returns the
// session's facts.
//
// Revocation is read from the store on every call, as the record's
// header: whose it is and whether it is revoked, with no copy of its
// data. The whole record is read only when its facts are not cached yet.
func (s *Server) checkSessionFor(ctx context.Context, c *token.Claims, org *directory.Org) (*sessionFacts, error) {
	if !token.ValidRecordID(session.IDPrefix, c.SessionID) {
		return nil, errInvalidToken
	}
	if rv, ok := s.store.(store.RevocationView); ok {
		return s.checkSessionByView(ctx, rv, c, org) // revocation_view.go
	}
	hdr, err := store.GetHeader(ctx, s.store, store.KindSession, c.SessionID)
	if err := sessionReadError(err, hdr.Revoked); err != nil {
		return nil, err
	}
	f, err := s.sessionFacts(ctx, c.SessionID, hdr.UserID)
	if err != nil {
		return nil, err
	}
	if hdr.UserID != c.Subject || f.UserID != c.Subject || f.OrgID != c.OrgID || f.Email != c.Email {
		return nil, errInvalidToken
	}
	if s.sessions.EndedBefore(c.Email, org.Ref, f.CreatedAt) {
		return nil, session.ErrMembershipInactive
	}
	if err := s.sessions.CheckFamily(ctx, f.FamilyID); err != nil {
		return nil, err
	}
	return f, nil
}

// sessionFacts returns session sid's facts: cached when they are of
// userID, else read from its record once (a live, unrevoked one).
func (s *Server) sessionFacts(ctx context.Context, sid, userID string) (*sessionFacts, error) {
	if f, ok := s.facts.cached(sid, userID); ok {
		return f, nil
	}
	rec, err := s.store.Get(ctx, store.KindSession, sid)
	if err := sessionReadError(err, err == nil && rec.Revoked); err != nil {
		return nil, err
	}
	return s.facts.facts(rec)
}

// sessionReadError is the answer to a read of a session record: 401 when
// it is gone or revoked, the store's error when the store cannot say.
func sessionReadError(err error, revoked bool) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return session.ErrEnded
	case err != nil:
		return fmt.Errorf("read session: %w", err)
	case revoked:
		return session.ErrEnded
	}
	return nil
}
