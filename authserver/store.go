package authserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Record kinds kept in a Store.
const (
	KindSession     = "session"
	KindCredentials = "credentials"
	KindToken       = "token"
	// KindFamily records a session family: every session descended from
	// one sign-in names it, and revoking it ends them all.
	KindFamily = "family"
	// KindLockout records are a user's failed sign-in counts, keyed by
	// user ID, shared by every replica (see lockout.go).
	KindLockout = "lockout"
)

// Errors a Store returns. Any other error means the store could not be
// reached; the server answers 503 and the client may retry.
var (
	ErrNotFound = errors.New("record not found")
	ErrExists   = errors.New("record already exists")
	ErrConflict = errors.New("record changed since it was read")
)

// Record is one piece of runtime state: a session, a user's credentials or
// a one-time token. Data is the kind's JSON; the other fields are what a
// backend must index or act on without decoding it.
type Record struct {
	Kind string
	ID   string
	// Version is the backend's compare-and-swap token, set by Get, Create
	// and Update. Update fails with ErrConflict unless it is current.
	Version string
	// UserID lets ListByUser find a user's sessions.
	UserID string
	// Revoked is readable without decoding Data, for the hot path.
	Revoked bool
	// ExpiresAt is when the garbage collector may delete the record; zero
	// keeps it forever.
	ExpiresAt time.Time
	Data      []byte
}

// Store keeps runtime state shared by every auth server replica. Single
// use (refresh tokens, one-time links) rests on Update's compare-and-swap.
type Store interface {
	Get(ctx context.Context, kind, id string) (*Record, error)
	Create(ctx context.Context, r *Record) error
	Update(ctx context.Context, r *Record) error
	Delete(ctx context.Context, kind, id string) error
	ListByUser(ctx context.Context, kind, userID string) ([]*Record, error)
	// DeleteExpired removes records whose ExpiresAt is before now.
	DeleteExpired(ctx context.Context, now time.Time) (int, error)
}

// load reads a record and decodes its data into v.
func load(ctx context.Context, st Store, kind, id string, v any) (*Record, error) {
	r, err := st.Get(ctx, kind, id)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(r.Data, v); err != nil {
		return nil, fmt.Errorf("decode %s record %s: %w", kind, id, err)
	}
	return r, nil
}

// save encodes v into r and creates or updates it (create when r.Version
// is empty).
func save(ctx context.Context, st Store, r *Record, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s record: %w", r.Kind, err)
	}
	r.Data = data
	if r.Version == "" {
		return st.Create(ctx, r)
	}
	return st.Update(ctx, r)
}

// RunGC deletes expired records every interval until ctx ends. Every
// replica may run it: deleting an already deleted record is harmless.
func RunGC(ctx context.Context, st Store, interval time.Duration, now func() time.Time, onError func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := st.DeleteExpired(ctx, now()); err != nil && onError != nil {
				onError(err)
			}
		}
	}
}
