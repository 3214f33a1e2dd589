// Package store is the auth server's runtime state: the Store interface
// every backend implements, the record kinds, the retrying update every
// caller goes through, and the in-memory backend. The conformance suite
// every backend passes is in store/storetest; the Kubernetes backend is in
// authserver/kube.
package store

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
	// user ID, shared by every replica.
	KindLockout = "lockout"
)

// Errors a Store returns. Any other error means the store could not be
// reached; the server answers 503 and the client may retry.
var (
	ErrNotFound = errors.New("record not found")
	ErrExists   = errors.New("record already exists")
	ErrConflict = errors.New("record changed since it was read")
	// ErrUnchanged, returned by an update's change function, ends the
	// update without a write and without an error: the record already
	// says what the caller wanted.
	ErrUnchanged = errors.New("record needs no change")
	// ErrBusy says a backend declined a read past its index because it
	// is shedding them (see Indexed): the record may exist.
	ErrBusy = errors.New("too many reads past the index")
)

// MaxAttempts bounds how often Update re-reads and re-applies a change
// that lost a race. Past it the update fails with ErrConflict: a record
// changed that often at once is being hammered, and the client may retry.
const MaxAttempts = 16

// Record is one piece of runtime state: a session, a user's credentials or
// a one-time token. Data is the kind's JSON; the other fields are what a
// backend must index or act on without decoding it.
type Record struct {
	Kind string
	ID   string
	// Version is the backend's compare-and-swap token, set by Get, Create
	// and Update.
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
// use (refresh tokens, one-time links) rests on Update: of concurrent
// updates of one record, each change function sees the result of the
// previous one, so exactly one of them finds a token unspent.
type Store interface {
	Get(ctx context.Context, kind, id string) (*Record, error)
	Create(ctx context.Context, r *Record) error
	// Update reads the record, lets change edit it, and writes it back
	// only if nobody wrote it in between; when somebody did, it reads it
	// again and calls change again, up to MaxAttempts times. change may
	// not call the store, since it can run under the backend's lock. An
	// error from change ends the update with that error and no write
	// (ErrUnchanged: no write and no error). It returns the record as
	// stored, with its new Version.
	Update(ctx context.Context, kind, id string, change func(*Record) error) (*Record, error)
	Delete(ctx context.Context, kind, id string) error
	ListByUser(ctx context.Context, kind, userID string) ([]*Record, error)
	// DeleteExpired removes records whose ExpiresAt is before now.
	DeleteExpired(ctx context.Context, now time.Time) (int, error)
}

// RetryUpdate is Update for a backend whose write is a compare-and-swap:
// get reads the current record, swap writes r if r.Version is still
// current and returns ErrConflict if not.
func RetryUpdate(ctx context.Context, get func(ctx context.Context, kind, id string) (*Record, error),
	swap func(ctx context.Context, r *Record) error, kind, id string, change func(*Record) error) (*Record, error) {
	for range MaxAttempts {
		r, err := get(ctx, kind, id)
		if err != nil {
			return nil, err
		}
		if err := change(r); err != nil {
			if errors.Is(err, ErrUnchanged) {
				return r, nil
			}
			return nil, err
		}
		r.Kind, r.ID = kind, id
		err = swap(ctx, r)
		if errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return r, nil
	}
	return nil, fmt.Errorf("update %s record %s: %w %d times", kind, id, ErrConflict, MaxAttempts)
}

// Load reads a record and decodes its data into v.
func Load(ctx context.Context, st Store, kind, id string, v any) (*Record, error) {
	r, err := st.Get(ctx, kind, id)
	if err != nil {
		return nil, err
	}
	return r, decode(r, v)
}

// decode decodes a record's data into v.
func decode(r *Record, v any) error {
	if err := json.Unmarshal(r.Data, v); err != nil {
		return fmt.Errorf("decode %s record %s: %w", r.Kind, r.ID, err)
	}
	return nil
}

// Put encodes v into r and creates it.
func Put(ctx context.Context, st Store, r *Record, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s record: %w", r.Kind, err)
	}
	r.Data = data
	return st.Create(ctx, r)
}

// Modify is Update for a record of JSON type T: change gets the record
// and its decoded value, freshly read on every attempt, and the value is
// encoded back after it. It returns what was stored.
func Modify[T any](ctx context.Context, st Store, kind, id string, change func(*Record, *T) error) (*Record, *T, error) {
	var v *T
	rec, err := st.Update(ctx, kind, id, func(r *Record) error {
		v = new(T)
		if err := json.Unmarshal(r.Data, v); err != nil {
			return fmt.Errorf("decode %s record %s: %w", kind, id, err)
		}
		if err := change(r, v); err != nil {
			return err
		}
		data, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode %s record: %w", kind, err)
		}
		r.Data = data
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return rec, v, nil
}

// Guard names a record an update depends on: the update is written only
// while that record exists and is not revoked (a session's refresh and
// its family). The zero Guard guards nothing.
type Guard struct{ Kind, ID string }

// ErrGuard is UpdateFrom's answer when the record its Guard names is
// revoked or gone; nothing was written.
var ErrGuard = errors.New("store: the record this update depends on is revoked or gone")

// check reads the guarded record's header: nil while it stands.
func (g Guard) check(ctx context.Context, st Store) error {
	if g.ID == "" {
		return nil
	}
	h, err := GetHeader(ctx, st, g.Kind, g.ID)
	switch {
	case errors.Is(err, ErrNotFound):
		return ErrGuard
	case err != nil:
		return fmt.Errorf("read %s record: %w", g.Kind, err)
	case h.Revoked:
		return ErrGuard
	}
	return nil
}

// UpdateFrom is Update for a caller that has just read r, written only
// while guard stands. On a Swapper backend the first attempt applies
// change to r (which it may edit) and swaps it in without a second read,
// checking the guard in the same statement on a GuardedSwapper; when
// somebody wrote the record in between, it checks the guard and falls
// back to Update, which reads the record again and calls change again.
// Single use still rests on the compare-and-swap. A change that fails is
// answered ErrGuard when the guard has fallen, as if it had been checked
// first.
func UpdateFrom(ctx context.Context, st Store, r *Record, guard Guard, change func(*Record) error) (*Record, error) {
	sw, swaps := st.(Swapper)
	gs, guards := st.(GuardedSwapper)
	if !swaps || (guard.ID != "" && !guards) {
		if err := guard.check(ctx, st); err != nil {
			return nil, err
		}
		guard = Guard{} // checked
	}
	if !swaps {
		return st.Update(ctx, r.Kind, r.ID, change)
	}
	kind, id := r.Kind, r.ID
	if err := change(r); err != nil {
		if errors.Is(err, ErrUnchanged) {
			return r, nil
		}
		if gerr := guard.check(ctx, st); gerr != nil {
			return nil, gerr
		}
		return nil, err
	}
	r.Kind, r.ID = kind, id
	var err error
	if guard.ID != "" {
		err = gs.SwapGuarded(ctx, r, guard)
	} else {
		err = sw.Swap(ctx, r)
	}
	if errors.Is(err, ErrConflict) {
		if err := guard.check(ctx, st); err != nil {
			return nil, err
		}
		return st.Update(ctx, kind, id, change)
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// ModifyFrom is Modify for a caller that has just read rec and decoded it
// into v: the first attempt changes v without reading or decoding again
// (see UpdateFrom, and its guard); a retry after a conflict decodes a
// fresh value.
func ModifyFrom[T any](ctx context.Context, st Store, rec *Record, v *T, guard Guard, change func(*Record, *T) error) (*Record, *T, error) {
	first := true
	out := v
	stored, err := UpdateFrom(ctx, st, rec, guard, func(r *Record) error {
		if !first {
			out = new(T)
			if err := json.Unmarshal(r.Data, out); err != nil {
				return fmt.Errorf("decode %s record %s: %w", r.Kind, r.ID, err)
			}
		}
		first = false
		if err := change(r, out); err != nil {
			return err
		}
		data, err := json.Marshal(out)
		if err != nil {
			return fmt.Errorf("encode %s record: %w", r.Kind, err)
		}
		r.Data = data
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return stored, out, nil
}

// Upsert is Modify for a record that may not exist yet: a missing record
// starts as fresh (the zero T), and is created; losing that creation to
// another writer re-runs change on what the winner wrote.
func Upsert[T any](ctx context.Context, st Store, fresh Record, change func(*Record, *T) error) (*Record, *T, error) {
	for range MaxAttempts {
		rec, v, err := Modify(ctx, st, fresh.Kind, fresh.ID, change)
		if !errors.Is(err, ErrNotFound) {
			return rec, v, err
		}
		r, nv := fresh, new(T)
		if err := change(&r, nv); err != nil {
			if errors.Is(err, ErrUnchanged) {
				return &r, nv, nil
			}
			return nil, nil, err
		}
		err = Put(ctx, st, &r, nv)
		if errors.Is(err, ErrExists) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		return &r, nv, nil
	}
	return nil, nil, fmt.Errorf("upsert %s record %s: %w %d times", fresh.Kind, fresh.ID, ErrConflict, MaxAttempts)
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
