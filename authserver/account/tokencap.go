package account

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/tenantauth/tenantauth/authserver/store"
	"github.com/tenantauth/tenantauth/authserver/token"
)

// Outstanding tokens per user. Every mailed link (magic link, password
// reset, email verification) is a store record keyed to a user. Without a
// cap, one user (or whoever keeps asking for their links) could hold any
// number of them. So each time one is made, the user's links beyond the
// newest Config.MaxOutstandingTokens are deleted: a new link replaces the
// oldest, which then answers token_invalid. The cap runs in the mail's
// background job, so no answer waits on its listing. Intermediate
// sessions are not capped: each needs a proven first factor, is rate
// limited per email, and lives 10 minutes, while a cap would put a live
// list on every sign-in. Spent markers of sealed links
// (verify_sealed.go) are never capped: deleting one early would make its
// link usable again.

// DefaultMaxOutstandingTokens is Config.MaxOutstandingTokens' default.
const DefaultMaxOutstandingTokens = 3

// mailedLink reports whether a token record is a mailed link, and when it
// was issued: its expiry less its purpose's lifetime.
func mailedLink(rec *store.Record) (time.Time, bool) {
	if strings.HasPrefix(rec.ID, token.PrefixIntermediate+"_") || strings.HasPrefix(rec.ID, markerPrefix+"_") {
		return time.Time{}, false
	}
	var t struct {
		Purpose   string    `json:"purpose"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if json.Unmarshal(rec.Data, &t) != nil || t.ExpiresAt.IsZero() {
		return time.Time{}, true
	}
	ttl := VerifyEmailTTL
	switch t.Purpose {
	case PurposeMagicLink:
		ttl = MagicLinkTTL
	case PurposeReset:
		ttl = ResetTTL
	}
	return t.ExpiresAt.Add(-ttl), true
}

// capUserTokens deletes the user's mailed links beyond the newest
// MaxOutstandingTokens, keeping fresh, the one just made.
func (s *Service) capUserTokens(ctx context.Context, userID, fresh string) error {
	return store.CapUserRecords(ctx, s.store, store.KindToken, userID, s.cfg.MaxOutstandingTokens, fresh, mailedLink)
}
