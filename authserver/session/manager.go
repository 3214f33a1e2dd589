// Package session is the session lifecycle: sign-in families, org-scoped
// sessions with refresh rotation and reuse detection, intermediate
// sessions, and the end of a member's sessions when the membership ends.
// It returns values and errors from the problem catalog; it never writes
// HTTP (the authserver package does).
package session

import (
	"time"

	"github.com/go-logr/logr"

	"github.com/tenantauth/tenantauth/authserver/directory"
	"github.com/tenantauth/tenantauth/authserver/store"
)

// Config is what the session lifecycle needs of the server around it.
type Config struct {
	Now func() time.Time
	// RefreshGrace is how long a just-rotated refresh token may be retried
	// without the retry counting as reuse.
	RefreshGrace time.Duration
	// Issuer and Audience are an organization's iss and aud claims.
	Issuer, Audience func(*directory.Org) string
	// CSRFToken derives the CSRF token of a session ID.
	CSRFToken func(sid string) string
	// UserID derives a user's ID from the email.
	UserID func(email string) string
	// Issued counts an issued token by kind (access, refresh,
	// intermediate); nil counts nothing.
	Issued func(kind string)
	Log    logr.Logger
}

func (c *Config) issued(kind string) {
	if c.Issued != nil {
		c.Issued(kind)
	}
}

// Manager runs sessions on a store, for the tenants of a directory.
type Manager struct {
	cfg      Config
	store    store.Store
	dir      *directory.Directory
	log      logr.Logger
	removals memberRemovals
}

// New returns a Manager. It ends the sessions of every membership that
// the directory reports removed.
func New(cfg Config, st store.Store, dir *directory.Directory) *Manager {
	s := &Manager{cfg: cfg, store: st, dir: dir, log: cfg.Log}
	dir.OnMemberRemoved(s.MemberRemoved)
	return s
}

// EndedBefore reports whether the membership of email in orgRef ended,
// on this replica, at or after created: a session made then belongs to
// the old membership and is refused.
func (s *Manager) EndedBefore(email, orgRef string, created time.Time) bool {
	return s.removals.EndedBefore(email, orgRef, created)
}
