package authserver

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tenantauth/tenantauth/authserver/store"
)

// Outstanding tokens per user. Every mailed link (magic link, password
// reset, email verification) and every intermediate session is a store
// record keyed to a user. Without a cap, one user (or whoever keeps asking
// for their links) could hold any number of them. So each time one is
// made, the user's records of its class beyond the newest
// Config.MaxOutstandingTokens are deleted: a new link replaces the oldest,
// which then answers token_invalid. Mailed links and intermediate sessions
// are capped apart, so asking for a reset never ends a sign-in that waits
// for its second factor.
//
// Two concurrent issuers may each see the other's record or not; each
// deletes what is beyond the cap in what it saw, so once the later one has
// listed, at most the cap remain. The listing is the store's live read.

// DefaultMaxOutstandingTokens is Config.MaxOutstandingTokens' default.
const DefaultMaxOutstandingTokens = 3

// Token classes capped apart.
const (
	tokenClassMailed       = "mailed"
	tokenClassIntermediate = "intermediate"
)

// tokenClass is the class of a token record, from its ID's prefix; spent
// markers of sealed links have none and are never capped.
func tokenClass(id string) string {
	switch {
	case strings.HasPrefix(id, prefixIntermediate+"_"):
		return tokenClassIntermediate
	case strings.HasPrefix(id, markerPrefix+"_"):
		return ""
	}
	return tokenClassMailed
}

// ttlOf is the lifetime a token record of purpose was issued with.
func ttlOf(id, purpose string) time.Duration {
	switch {
	case tokenClass(id) == tokenClassIntermediate:
		return intermediateTTL
	case purpose == purposeMagicLink:
		return magicLinkTTL
	case purpose == purposeReset:
		return resetTTL
	}
	return verifyEmailTTL
}

// capUserTokens deletes the user's token records of class beyond the
// newest MaxOutstandingTokens, keeping fresh, the one just made, whatever
// the clock says. A record whose data does not decode counts as the
// oldest.
func (s *Server) capUserTokens(ctx context.Context, userID, class, fresh string) error {
	limit := s.cfg.MaxOutstandingTokens
	if limit <= 0 || userID == "" {
		return nil
	}
	recs, err := s.store.ListByUser(ctx, store.KindToken, userID)
	if err != nil {
		return fmt.Errorf("list tokens to cap: %w", err)
	}
	type issued struct {
		id string
		at time.Time
	}
	var mine []issued
	for _, rec := range recs {
		if tokenClass(rec.ID) != class {
			continue
		}
		var t struct {
			Purpose   string    `json:"purpose"`
			ExpiresAt time.Time `json:"expires_at"`
		}
		at := time.Time{}
		if json.Unmarshal(rec.Data, &t) == nil && !t.ExpiresAt.IsZero() {
			at = t.ExpiresAt.Add(-ttlOf(rec.ID, t.Purpose))
		}
		mine = append(mine, issued{rec.ID, at})
	}
	if len(mine) <= limit {
		return nil
	}
	// Newest first, fresh before all; equal times by ID, so concurrent
	// issuers agree.
	slices.SortFunc(mine, func(a, b issued) int {
		switch {
		case a.id == fresh:
			return -1
		case b.id == fresh:
			return 1
		}
		if c := b.at.Compare(a.at); c != 0 {
			return c
		}
		return strings.Compare(b.id, a.id)
	})
	for _, old := range mine[limit:] {
		if err := s.store.Delete(ctx, store.KindToken, old.id); err != nil {
			return fmt.Errorf("delete a token past the cap: %w", err)
		}
	}
	return nil
}
