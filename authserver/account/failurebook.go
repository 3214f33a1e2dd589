package account

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/tenantauth/tenantauth/authserver/problem"

	"github.com/tenantauth/tenantauth/authserver/store"
)

// A failureBook keeps lockoutRecords by user ID in the store, each change
// a compare-and-swap retried on conflict, so concurrent attempts on any
// replica all count.
type failureBook interface {
	read(ctx context.Context, userID string) (*lockoutRecord, error)
	// update applies change to the user's record; change reports whether
	// to write, or an error that is returned unchanged.
	update(ctx context.Context, userID string, change func(*lockoutRecord) (bool, error)) error
}

var errLockoutConflict = problem.Conflict.Because("the account is being signed in to concurrently; retry")

func emptyLockout() *lockoutRecord { return &lockoutRecord{Factors: map[string]*failureCount{}} }

// accountLockoutID is the record ID of an account's counts.
func accountLockoutID(userID string) string { return userID }

// accountBook keeps one record per account, with the user's ID.
type accountBook struct{ st store.Store }

func (b accountBook) load(ctx context.Context, userID string) (*store.Record, *lockoutRecord, error) {
	lr := emptyLockout()
	rec, err := store.Load(ctx, b.st, store.KindLockout, accountLockoutID(userID), lr)
	if errors.Is(err, store.ErrNotFound) {
		return &store.Record{Kind: store.KindLockout, ID: accountLockoutID(userID), UserID: userID}, emptyLockout(), nil
	}
	if err != nil {
		return nil, nil, err
	}
	if lr.Factors == nil {
		lr.Factors = map[string]*failureCount{}
	}
	return rec, lr, nil
}

func (b accountBook) read(ctx context.Context, userID string) (*lockoutRecord, error) {
	_, lr, err := b.load(ctx, userID)
	return lr, err
}

func (b accountBook) update(ctx context.Context, userID string, change func(*lockoutRecord) (bool, error)) error {
	id := accountLockoutID(userID)
	_, _, err := store.Upsert(ctx, b.st, store.Record{Kind: store.KindLockout, ID: id, UserID: userID},
		func(rec *store.Record, lr *lockoutRecord) error {
			if lr.Factors == nil {
				lr.Factors = map[string]*failureCount{}
			}
			write, err := change(lr)
			switch {
			case err != nil:
				return err
			case !write, len(lr.Factors) == 0 && rec.Version == "":
				return store.ErrUnchanged
			case len(lr.Factors) == 0:
				return errNoCounts
			}
			rec.ExpiresAt = lockoutExpiry(lr)
			return nil
		})
	return b.settle(ctx, id, err)
}

// errNoCounts ends an update whose record is left with no count: it is
// deleted instead of written.
var errNoCounts = errors.New("no counts left")

func (b accountBook) settle(ctx context.Context, id string, err error) error {
	switch {
	case errors.Is(err, errNoCounts):
		return b.st.Delete(ctx, store.KindLockout, id)
	case errors.Is(err, store.ErrConflict):
		return errLockoutConflict
	}
	return err
}

// lockoutExpiry is when a record may be collected: never while a factor is
// locked, else lockoutRetention after its last failure.
func lockoutExpiry(lr *lockoutRecord) time.Time {
	var last time.Time
	for _, c := range lr.Factors {
		if c.Failures >= LockoutMaxFailures {
			return time.Time{}
		}
		if c.Last.After(last) {
			last = c.Last
		}
	}
	return last.Add(lockoutRetention)
}

// Decoy shards hold the counts of emails that are no account: decoyShards
// records, each with at most decoyShardEntries users, the stalest evicted
// first. Evicting forgets a count for an address that is no account, which
// only makes its answers look like those of a fresh account.
const (
	decoyShards       = 64
	decoyShardEntries = 256
	decoyRetention    = 24 * time.Hour
)

// decoyShard is the data of one decoy record.
type decoyShard struct {
	Users map[string]*lockoutRecord `json:"users"`
}

// decoyBook keeps the counts of emails that are no account in shards.
type decoyBook struct {
	st  store.Store
	now func() time.Time
}

// shardID picks a user's shard from its ID's last characters (user IDs
// are keyed hashes, so they spread evenly).
func shardID(userID string) string {
	var h uint32
	for i := 0; i < len(userID); i++ {
		h = h*31 + uint32(userID[i])
	}
	return "decoy-" + strconv.Itoa(int(h%decoyShards))
}

func (b decoyBook) load(ctx context.Context, userID string) (*store.Record, *decoyShard, error) {
	id := shardID(userID)
	sh := &decoyShard{}
	rec, err := store.Load(ctx, b.st, store.KindLockout, id, sh)
	if errors.Is(err, store.ErrNotFound) {
		return &store.Record{Kind: store.KindLockout, ID: id}, &decoyShard{Users: map[string]*lockoutRecord{}}, nil
	}
	if err != nil {
		return nil, nil, err
	}
	if sh.Users == nil {
		sh.Users = map[string]*lockoutRecord{}
	}
	return rec, sh, nil
}

func (b decoyBook) read(ctx context.Context, userID string) (*lockoutRecord, error) {
	_, sh, err := b.load(ctx, userID)
	if err != nil {
		return nil, err
	}
	if lr, ok := sh.Users[userID]; ok && lr.Factors != nil {
		return lr, nil
	}
	return emptyLockout(), nil
}

func (b decoyBook) update(ctx context.Context, userID string, change func(*lockoutRecord) (bool, error)) error {
	_, _, err := store.Upsert(ctx, b.st, store.Record{Kind: store.KindLockout, ID: shardID(userID)},
		func(rec *store.Record, sh *decoyShard) error {
			if sh.Users == nil {
				sh.Users = map[string]*lockoutRecord{}
			}
			lr, ok := sh.Users[userID]
			if !ok || lr.Factors == nil {
				lr = emptyLockout()
			}
			write, err := change(lr)
			if err != nil {
				return err
			}
			if !write {
				return store.ErrUnchanged
			}
			sh.Users[userID] = lr
			if len(lr.Factors) == 0 {
				delete(sh.Users, userID)
			}
			b.prune(sh)
			rec.ExpiresAt = b.now().UTC().Add(decoyRetention)
			return nil
		})
	if errors.Is(err, store.ErrConflict) {
		return errLockoutConflict
	}
	return err
}

// prune drops counts older than decoyRetention, then the stalest ones
// while the shard is over its size.
func (b decoyBook) prune(sh *decoyShard) {
	cutoff := b.now().Add(-decoyRetention)
	lastOf := func(lr *lockoutRecord) time.Time {
		var last time.Time
		for _, c := range lr.Factors {
			if c.Last.After(last) {
				last = c.Last
			}
		}
		return last
	}
	for id, lr := range sh.Users {
		if lastOf(lr).Before(cutoff) {
			delete(sh.Users, id)
		}
	}
	for len(sh.Users) > decoyShardEntries {
		var stalest string
		var at time.Time
		for id, lr := range sh.Users {
			if l := lastOf(lr); stalest == "" || l.Before(at) {
				stalest, at = id, l
			}
		}
		delete(sh.Users, stalest)
	}
}
