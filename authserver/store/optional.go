package store

import (
	"context"
	"encoding/json"
	"time"
)

// Optional interfaces a backend may implement besides Store. The server
// asks for each with a type assertion; a backend without one keeps the
// behaviour every backend has (memory, kubernetes).

// RevocationView answers the hot path's revocation checks from memory, for
// a backend whose reads are network calls (postgres). It knows every
// session or family record revoked or deleted since its horizon, because
// every revocation is published to every replica (see authserver/postgres).
type RevocationView interface {
	// Revoked reports whether the record of kind and id has been revoked
	// or deleted. since is the earliest time the caller's credential can
	// have been issued (a JWT's iat): a record revoked before then cannot
	// have issued it, so the view needs to know only revocations from
	// since on; when since is older than what it holds, it asks the
	// database. An error means the view cannot say (never synced, or the
	// database unreachable for a question memory cannot answer): the
	// caller fails closed with 503.
	Revoked(ctx context.Context, kind, id string, since time.Time) (bool, error)
}

// Limiter is a rate limiter shared by every replica through the store.
type Limiter interface {
	// Allow counts one request of key against limit requests per window
	// and reports whether it may go on; when not, retryAfter is how long
	// until one may. An error means the store could not count.
	Allow(ctx context.Context, key string, limit int, window time.Duration) (retryAfter time.Duration, ok bool, err error)
}

// Readier is a backend that can be not ready: not connected yet, or
// catching up on what it missed while disconnected. /readyz answers 503
// with the reason while Ready returns an error.
type Readier interface {
	Ready() error
}

// Swapper is a backend whose write is a compare-and-swap on Version, so a
// caller that has just read a record can write it without reading it
// again (see UpdateFrom). Swap writes r if r.Version is still the stored
// version and sets r.Version to the new one; it returns ErrConflict when
// somebody wrote the record since, and ErrNotFound when it is gone. A
// swap that revokes a session or family publishes the revocation like
// Update does.
type Swapper interface {
	Swap(ctx context.Context, r *Record) error
}

// GuardedSwapper is a Swapper that checks a Guard in the same write:
// SwapGuarded writes r as Swap does, only while the guard's record exists
// and is not revoked. It answers ErrConflict both when r is stale and
// when the guard has fallen; UpdateFrom then reads the guard to tell them
// apart.
type GuardedSwapper interface {
	Swapper
	SwapGuarded(ctx context.Context, r *Record, guard Guard) error
}

// Recents is a backend whose reads are network calls and which keeps, in
// memory, a bounded number of the records it last read or wrote, each with
// the version it had then (postgres, for sessions). A caller may make the
// first attempt of a compare-and-swap from such a copy and so skip the read
// (see LoadRecent). The copy may be stale, since another replica may have
// written the record since: it is the input of a compare-and-swap, which
// the stored version decides, and never grounds for refusing anything.
type Recents interface {
	// Recent returns a copy of the record of kind and id as this replica
	// last saw it, if it still holds one.
	Recent(kind, id string) (*Record, bool)
}

// LoadRecent is Load from the backend's recent copy, without a read: ok is
// false when the backend keeps none (see Recents), or the copy does not
// decode. What it returns may be stale.
func LoadRecent(st Store, kind, id string, v any) (*Record, bool) {
	rs, ok := st.(Recents)
	if !ok {
		return nil, false
	}
	r, ok := rs.Recent(kind, id)
	if !ok || json.Unmarshal(r.Data, v) != nil {
		return nil, false
	}
	return r, true
}

// Indexed is a backend whose reads come from a local index that may lag
// what other replicas wrote (kubernetes: an informer's). A record found in
// it may be an older version than the stored one. GetLive reads past the
// index, for a record whose ID a client presented (a session or a token;
// never credentials or lockout counts, whose IDs come from an email: it
// answers ErrNotFound for those). It answers ErrBusy when the backend's
// budget of live reads is spent, so garbage cannot turn into a flood of
// reads.
type Indexed interface {
	GetLive(ctx context.Context, kind, id string) (*Record, error)
}

// LoadLive is Load past a backend's index (see Indexed): ok is false when
// the backend keeps none, so its reads are live already.
func LoadLive(ctx context.Context, st Store, kind, id string, v any) (_ *Record, ok bool, _ error) {
	ix, ok := st.(Indexed)
	if !ok {
		return nil, false, nil
	}
	r, err := ix.GetLive(ctx, kind, id)
	if err != nil {
		return nil, false, err
	}
	if err := decode(r, v); err != nil {
		return nil, false, err
	}
	return r, true, nil
}
