// Package storetest is the conformance suite every authserver.Store
// backend must pass: the same cases run against memory and Kubernetes.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tenantauth/tenantauth/authserver"
)

// Run runs the conformance suite against st, which must be empty of the
// IDs it uses (it uses a fresh prefix per call).
func Run(t *testing.T, st authserver.Store) {
	ctx := context.Background()
	prefix := fmt.Sprintf("c%d", time.Now().UnixNano()%1_000_000_000)
	id := func(s string) string { return prefix + s }

	t.Run("get missing", func(t *testing.T) {
		if _, err := st.Get(ctx, authserver.KindSession, id("missing")); !errors.Is(err, authserver.ErrNotFound) {
			t.Fatalf("got %v, want ErrNotFound", err)
		}
	})

	t.Run("create, get, conflict, update", func(t *testing.T) {
		exp := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
		r := &authserver.Record{Kind: authserver.KindSession, ID: id("a"), UserID: "usr_alice", ExpiresAt: exp, Data: []byte(`{"n":1}`)}
		if err := st.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
		if r.Version == "" {
			t.Fatal("Create set no version")
		}
		dup := &authserver.Record{Kind: authserver.KindSession, ID: id("a"), Data: []byte(`{}`)}
		if err := st.Create(ctx, dup); !errors.Is(err, authserver.ErrExists) {
			t.Fatalf("second create: %v, want ErrExists", err)
		}
		got, err := st.Get(ctx, authserver.KindSession, id("a"))
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Data) != `{"n":1}` || got.UserID != "usr_alice" || !got.ExpiresAt.Equal(exp) || got.Version != r.Version || got.Revoked {
			t.Fatalf("read back %+v", got)
		}
		stale := *got
		got.Data, got.Revoked = []byte(`{"n":2}`), true
		if err := st.Update(ctx, got); err != nil {
			t.Fatal(err)
		}
		if got.Version == stale.Version {
			t.Fatal("Update kept the version")
		}
		stale.Data = []byte(`{"n":3}`)
		if err := st.Update(ctx, &stale); !errors.Is(err, authserver.ErrConflict) {
			t.Fatalf("stale update: %v, want ErrConflict", err)
		}
		again, err := st.Get(ctx, authserver.KindSession, id("a"))
		if err != nil {
			t.Fatal(err)
		}
		if string(again.Data) != `{"n":2}` || !again.Revoked {
			t.Fatalf("after update %+v", again)
		}
	})

	t.Run("update missing", func(t *testing.T) {
		r := &authserver.Record{Kind: authserver.KindToken, ID: id("ghost"), Version: "1", Data: []byte(`{}`)}
		if err := st.Update(ctx, r); !errors.Is(err, authserver.ErrNotFound) && !errors.Is(err, authserver.ErrConflict) {
			t.Fatalf("got %v", err)
		}
	})

	t.Run("concurrent updates of one version: exactly one wins", func(t *testing.T) {
		base := &authserver.Record{Kind: authserver.KindToken, ID: id("race"), Data: []byte(`{}`)}
		if err := st.Create(ctx, base); err != nil {
			t.Fatal(err)
		}
		const n = 20
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins, conflicts := 0, 0
		for i := range n {
			wg.Go(func() {
				r := *base
				r.Data = []byte(fmt.Sprintf(`{"winner":%d}`, i))
				err := st.Update(ctx, &r)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins++
				case errors.Is(err, authserver.ErrConflict):
					conflicts++
				default:
					t.Errorf("update: %v", err)
				}
			})
		}
		wg.Wait()
		if wins != 1 || conflicts != n-1 {
			t.Fatalf("wins %d, conflicts %d; want 1 and %d", wins, conflicts, n-1)
		}
	})

	t.Run("list by user", func(t *testing.T) {
		for i, u := range []string{"usr_bob", "usr_bob", "usr_carol"} {
			r := &authserver.Record{Kind: authserver.KindSession, ID: id(fmt.Sprintf("l%d", i)), UserID: u, Data: []byte(`{}`)}
			if err := st.Create(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		other := &authserver.Record{Kind: authserver.KindCredentials, ID: id("usr_bob"), UserID: "usr_bob", Data: []byte(`{}`)}
		if err := st.Create(ctx, other); err != nil {
			t.Fatal(err)
		}
		got, err := st.ListByUser(ctx, authserver.KindSession, "usr_bob")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 {
			t.Fatalf("got %d sessions of bob, want 2", len(got))
		}
		for _, r := range got {
			if r.UserID != "usr_bob" || r.Kind != authserver.KindSession || r.Version == "" {
				t.Fatalf("listed %+v", r)
			}
		}
	})

	t.Run("session families: kinds kept apart, revocation readable", func(t *testing.T) {
		// A family and a session may share an ID suffix; each kind is its
		// own namespace, and a family's Revoked flag reads back without
		// decoding, as the hot path needs.
		fam := &authserver.Record{Kind: authserver.KindFamily, ID: id("fam_x"), UserID: "usr_dora", Data: []byte(`{"f":1}`)}
		ses := &authserver.Record{Kind: authserver.KindSession, ID: id("fam_x"), UserID: "usr_dora", Data: []byte(`{"s":1}`)}
		for _, r := range []*authserver.Record{fam, ses} {
			if err := st.Create(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		fam.Revoked = true
		if err := st.Update(ctx, fam); err != nil {
			t.Fatal(err)
		}
		got, err := st.Get(ctx, authserver.KindFamily, id("fam_x"))
		if err != nil || !got.Revoked || string(got.Data) != `{"f":1}` {
			t.Fatalf("family read back: %+v, %v", got, err)
		}
		if s, err := st.Get(ctx, authserver.KindSession, id("fam_x")); err != nil || s.Revoked || string(s.Data) != `{"s":1}` {
			t.Fatalf("session of the same ID: %+v, %v", s, err)
		}
		fams, err := st.ListByUser(ctx, authserver.KindFamily, "usr_dora")
		if err != nil || len(fams) != 1 || fams[0].Kind != authserver.KindFamily || !fams[0].Revoked {
			t.Fatalf("families of dora: %+v, %v", fams, err)
		}
	})

	t.Run("delete and expire", func(t *testing.T) {
		old := &authserver.Record{Kind: authserver.KindToken, ID: id("old"), ExpiresAt: time.Now().Add(-time.Minute), Data: []byte(`{}`)}
		keep := &authserver.Record{Kind: authserver.KindToken, ID: id("keep"), ExpiresAt: time.Now().Add(time.Hour), Data: []byte(`{}`)}
		for _, r := range []*authserver.Record{old, keep} {
			if err := st.Create(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := st.DeleteExpired(ctx, time.Now()); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Get(ctx, authserver.KindToken, id("old")); !errors.Is(err, authserver.ErrNotFound) {
			t.Fatalf("expired record: %v", err)
		}
		if _, err := st.Get(ctx, authserver.KindToken, id("keep")); err != nil {
			t.Fatalf("live record: %v", err)
		}
		if err := st.Delete(ctx, authserver.KindToken, id("keep")); err != nil {
			t.Fatal(err)
		}
		if err := st.Delete(ctx, authserver.KindToken, id("keep")); err != nil {
			t.Fatalf("deleting twice: %v", err)
		}
		if _, err := st.Get(ctx, authserver.KindToken, id("keep")); !errors.Is(err, authserver.ErrNotFound) {
			t.Fatalf("deleted record: %v", err)
		}
	})

	t.Run("lockout counts: concurrent increments all count", func(t *testing.T) {
		// Every replica counts failed sign-ins in one record per user with
		// compare-and-swap; none may be lost, whichever replica wrote first.
		uid := id("usr_lock")
		if _, err := st.Get(ctx, authserver.KindLockout, uid); !errors.Is(err, authserver.ErrNotFound) {
			t.Fatalf("missing lockout record: %v, want ErrNotFound", err)
		}
		const n = 10
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				if err := increment(ctx, st, uid); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if got := readCount(t, st, uid); got != n {
			t.Fatalf("count %d after %d concurrent increments", got, n)
		}
		// A locked account's record has no expiry and survives collection.
		if _, err := st.DeleteExpired(ctx, time.Now().Add(365*24*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if got := readCount(t, st, uid); got != n {
			t.Fatalf("count %d after garbage collection", got)
		}
		if err := st.Delete(ctx, authserver.KindLockout, uid); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Get(ctx, authserver.KindLockout, uid); !errors.Is(err, authserver.ErrNotFound) {
			t.Fatalf("after a reset: %v", err)
		}
	})
}

// increment adds one to a lockout record's count the way the auth server
// does: read, change, compare-and-swap, retry on conflict.
func increment(ctx context.Context, st authserver.Store, uid string) error {
	for range 100 {
		r, err := st.Get(ctx, authserver.KindLockout, uid)
		n := 0
		switch {
		case errors.Is(err, authserver.ErrNotFound):
			r = &authserver.Record{Kind: authserver.KindLockout, ID: uid, UserID: uid}
		case err != nil:
			return err
		default:
			if _, err := fmt.Sscanf(string(r.Data), `{"n":%d}`, &n); err != nil {
				return fmt.Errorf("decode %q: %w", r.Data, err)
			}
		}
		r.Data = []byte(fmt.Sprintf(`{"n":%d}`, n+1))
		if r.Version == "" {
			err = st.Create(ctx, r)
		} else {
			err = st.Update(ctx, r)
		}
		if errors.Is(err, authserver.ErrConflict) || errors.Is(err, authserver.ErrExists) || errors.Is(err, authserver.ErrNotFound) {
			continue
		}
		return err
	}
	return errors.New("increment: too many conflicts")
}

func readCount(t *testing.T, st authserver.Store, uid string) int {
	t.Helper()
	r, err := st.Get(context.Background(), authserver.KindLockout, uid)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	if _, err := fmt.Sscanf(string(r.Data), `{"n":%d}`, &n); err != nil {
		t.Fatalf("decode %q: %v", r.Data, err)
	}
	return n
}
