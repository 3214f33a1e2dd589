// Package storetest is the conformance suite every store.Store
// backend must pass: the same cases run against memory and Kubernetes.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tenantauth/tenantauth/authserver/store"
)

// Run runs the conformance suite against st, which must be empty of the
// IDs it uses (it uses a fresh prefix per call).
func Run(t *testing.T, st store.Store) {
	ctx := context.Background()
	prefix := fmt.Sprintf("c%d", time.Now().UnixNano()%1_000_000_000)
	id := func(s string) string { return prefix + s }

	t.Run("get missing", func(t *testing.T) {
		if _, err := st.Get(ctx, store.KindSession, id("missing")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("got %v, want ErrNotFound", err)
		}
	})

	t.Run("create, get, conflict, update", func(t *testing.T) {
		exp := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
		r := &store.Record{Kind: store.KindSession, ID: id("a"), UserID: "usr_alice", ExpiresAt: exp, Data: []byte(`{"n":1}`)}
		if err := st.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
		if r.Version == "" {
			t.Fatal("Create set no version")
		}
		dup := &store.Record{Kind: store.KindSession, ID: id("a"), Data: []byte(`{}`)}
		if err := st.Create(ctx, dup); !errors.Is(err, store.ErrExists) {
			t.Fatalf("second create: %v, want ErrExists", err)
		}
		got, err := st.Get(ctx, store.KindSession, id("a"))
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Data) != `{"n":1}` || got.UserID != "usr_alice" || !got.ExpiresAt.Equal(exp) || got.Version != r.Version || got.Revoked {
			t.Fatalf("read back %+v", got)
		}
		updated, err := st.Update(ctx, store.KindSession, id("a"), func(r *store.Record) error {
			r.Data, r.Revoked = []byte(`{"n":2}`), true
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if updated.Version == got.Version || string(updated.Data) != `{"n":2}` {
			t.Fatalf("Update returned %+v", updated)
		}
		again, err := st.Get(ctx, store.KindSession, id("a"))
		if err != nil {
			t.Fatal(err)
		}
		if string(again.Data) != `{"n":2}` || !again.Revoked || again.Version != updated.Version || again.UserID != "usr_alice" {
			t.Fatalf("after update %+v", again)
		}
	})

	t.Run("update: a change's error writes nothing; ErrUnchanged is no error", func(t *testing.T) {
		before, err := st.Get(ctx, store.KindSession, id("a"))
		if err != nil {
			t.Fatal(err)
		}
		refuse := errors.New("refused")
		if _, err := st.Update(ctx, store.KindSession, id("a"), func(r *store.Record) error {
			r.Data = []byte(`{"n":99}`)
			return refuse
		}); !errors.Is(err, refuse) {
			t.Fatalf("got %v, want the change's error", err)
		}
		r, err := st.Update(ctx, store.KindSession, id("a"), func(r *store.Record) error {
			r.Data = []byte(`{"n":98}`)
			return store.ErrUnchanged
		})
		if err != nil || r.Version != before.Version {
			t.Fatalf("unchanged update: %+v, %v", r, err)
		}
		after, err := st.Get(ctx, store.KindSession, id("a"))
		if err != nil || string(after.Data) != string(before.Data) || after.Version != before.Version {
			t.Fatalf("a refused or unchanged update wrote: %+v, %v", after, err)
		}
	})

	t.Run("update missing", func(t *testing.T) {
		called := false
		_, err := st.Update(ctx, store.KindToken, id("ghost"), func(*store.Record) error { called = true; return nil })
		if !errors.Is(err, store.ErrNotFound) || called {
			t.Fatalf("got %v (change called: %v), want ErrNotFound without a call", err, called)
		}
	})

	t.Run("concurrent spends of one token: exactly one wins", func(t *testing.T) {
		// What single use rests on: every change sees the one before it,
		// so of n racing spends exactly one finds the token unspent.
		base := &store.Record{Kind: store.KindToken, ID: id("race"), Data: []byte(`{}`)}
		if err := st.Create(ctx, base); err != nil {
			t.Fatal(err)
		}
		spent := errors.New("already spent")
		const n = 20
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins, lost := 0, 0
		for i := range n {
			wg.Go(func() {
				_, err := st.Update(ctx, store.KindToken, id("race"), func(r *store.Record) error {
					if string(r.Data) != `{}` {
						return spent
					}
					r.Data = []byte(fmt.Sprintf(`{"winner":%d}`, i))
					return nil
				})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins++
				case errors.Is(err, spent):
					lost++
				default:
					t.Errorf("update: %v", err)
				}
			})
		}
		wg.Wait()
		if wins != 1 || lost != n-1 {
			t.Fatalf("wins %d, lost %d; want 1 and %d", wins, lost, n-1)
		}
	})

	t.Run("update from a read: a stale read falls back to a fresh one", func(t *testing.T) {
		r := &store.Record{Kind: store.KindToken, ID: id("from"), Data: []byte(`{"n":1}`)}
		if err := st.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
		read, err := st.Get(ctx, store.KindToken, id("from"))
		if err != nil {
			t.Fatal(err)
		}
		stale := *read
		// Fresh: the change sees what was read, once.
		calls := 0
		got, err := store.UpdateFrom(ctx, st, read, store.Guard{}, func(r *store.Record) error {
			calls++
			if string(r.Data) != `{"n":1}` {
				return fmt.Errorf("change saw %s", r.Data)
			}
			r.Data = []byte(`{"n":2}`)
			return nil
		})
		if err != nil || calls != 1 || got.Version == stale.Version {
			t.Fatalf("update from a fresh read: %+v, %v, %d calls", got, err, calls)
		}
		// Stale: the write in between wins and the change runs again on it,
		// so a token spent since the read is never spent twice.
		var seen []string
		got, err = store.UpdateFrom(ctx, st, &stale, store.Guard{}, func(r *store.Record) error {
			seen = append(seen, string(r.Data))
			if string(r.Data) != `{"n":2}` {
				r.Data = []byte(`{"n":"lost"}`)
				return nil
			}
			r.Data = []byte(`{"n":3}`)
			return nil
		})
		if err != nil || string(got.Data) != `{"n":3}` {
			t.Fatalf("update from a stale read: %+v, %v", got, err)
		}
		if _, ok := st.(store.Swapper); ok && (len(seen) != 2 || seen[1] != `{"n":2}`) {
			t.Fatalf("a stale read was not re-read: the change saw %q", seen)
		}
		final, err := st.Get(ctx, store.KindToken, id("from"))
		if err != nil || string(final.Data) != `{"n":3}` {
			t.Fatalf("stored %+v, %v", final, err)
		}
		if sw, ok := st.(store.Swapper); ok {
			if err := sw.Swap(ctx, &stale); !errors.Is(err, store.ErrConflict) {
				t.Fatalf("swap of a stale version: %v, want ErrConflict", err)
			}
			ghost := &store.Record{Kind: store.KindToken, ID: id("from-ghost"), Version: final.Version, Data: []byte(`{}`)}
			if err := sw.Swap(ctx, ghost); !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrConflict) {
				t.Fatalf("swap of a missing record: %v, want ErrNotFound or ErrConflict", err)
			}
			if _, err := st.Get(ctx, store.KindToken, id("from-ghost")); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("swap of a missing record made it: %v", err)
			}
		}
	})

	t.Run("update from a read, guarded: written only while the guard stands", func(t *testing.T) {
		fam := &store.Record{Kind: store.KindFamily, ID: id("guard-fam"), UserID: "usr_g", Data: []byte(`{}`)}
		if err := st.Create(ctx, fam); err != nil {
			t.Fatal(err)
		}
		r := &store.Record{Kind: store.KindSession, ID: id("guarded"), UserID: "usr_g", Data: []byte(`{"n":1}`)}
		if err := st.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
		guard := store.Guard{Kind: store.KindFamily, ID: fam.ID}
		set := func(n string) func(*store.Record) error {
			return func(r *store.Record) error { r.Data = []byte(`{"n":` + n + `}`); return nil }
		}
		read, err := st.Get(ctx, store.KindSession, id("guarded"))
		if err != nil {
			t.Fatal(err)
		}
		stale := *read
		if got, err := store.UpdateFrom(ctx, st, read, guard, set("2")); err != nil || string(got.Data) != `{"n":2}` {
			t.Fatalf("guard standing: %+v, %v", got, err)
		}
		// Stale, guard standing: falls back to a fresh read.
		if got, err := store.UpdateFrom(ctx, st, &stale, guard, set("3")); err != nil || string(got.Data) != `{"n":3}` {
			t.Fatalf("stale read, guard standing: %+v, %v", got, err)
		}
		if _, err := st.Update(ctx, store.KindFamily, fam.ID, func(r *store.Record) error { r.Revoked = true; return nil }); err != nil {
			t.Fatal(err)
		}
		fresh, err := st.Get(ctx, store.KindSession, id("guarded"))
		if err != nil {
			t.Fatal(err)
		}
		for name, rec := range map[string]*store.Record{"fresh": fresh, "stale": &stale} {
			c := *rec
			if _, err := store.UpdateFrom(ctx, st, &c, guard, set("4")); !errors.Is(err, store.ErrGuard) {
				t.Fatalf("%s read, guard revoked: %v, want ErrGuard", name, err)
			}
		}
		refuse := errors.New("refused")
		c := *fresh
		if _, err := store.UpdateFrom(ctx, st, &c, guard, func(*store.Record) error { return refuse }); !errors.Is(err, store.ErrGuard) {
			t.Fatalf("a failing change under a revoked guard: %v, want ErrGuard", err)
		}
		c = *fresh
		if _, err := store.UpdateFrom(ctx, st, &c, store.Guard{Kind: store.KindFamily, ID: id("guard-none")}, set("5")); !errors.Is(err, store.ErrGuard) {
			t.Fatalf("guard missing: %v, want ErrGuard", err)
		}
		if got, err := st.Get(ctx, store.KindSession, id("guarded")); err != nil || string(got.Data) != `{"n":3}` {
			t.Fatalf("a refused guarded update wrote: %+v, %v", got, err)
		}
	})

	t.Run("list by user", func(t *testing.T) {
		for i, u := range []string{"usr_bob", "usr_bob", "usr_carol"} {
			r := &store.Record{Kind: store.KindSession, ID: id(fmt.Sprintf("l%d", i)), UserID: u, Data: []byte(`{}`)}
			if err := st.Create(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		other := &store.Record{Kind: store.KindCredentials, ID: id("usr_bob"), UserID: "usr_bob", Data: []byte(`{}`)}
		if err := st.Create(ctx, other); err != nil {
			t.Fatal(err)
		}
		got, err := st.ListByUser(ctx, store.KindSession, "usr_bob")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 {
			t.Fatalf("got %d sessions of bob, want 2", len(got))
		}
		for _, r := range got {
			if r.UserID != "usr_bob" || r.Kind != store.KindSession || r.Version == "" {
				t.Fatalf("listed %+v", r)
			}
		}
	})

	t.Run("session families: kinds kept apart, revocation readable", func(t *testing.T) {
		// A family and a session may share an ID suffix; each kind is its
		// own namespace, and a family's Revoked flag reads back without
		// decoding, as the hot path needs.
		fam := &store.Record{Kind: store.KindFamily, ID: id("fam_x"), UserID: "usr_dora", Data: []byte(`{"f":1}`)}
		ses := &store.Record{Kind: store.KindSession, ID: id("fam_x"), UserID: "usr_dora", Data: []byte(`{"s":1}`)}
		for _, r := range []*store.Record{fam, ses} {
			if err := st.Create(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := st.Update(ctx, store.KindFamily, id("fam_x"), func(r *store.Record) error {
			r.Revoked = true
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		got, err := st.Get(ctx, store.KindFamily, id("fam_x"))
		if err != nil || !got.Revoked || string(got.Data) != `{"f":1}` {
			t.Fatalf("family read back: %+v, %v", got, err)
		}
		if s, err := st.Get(ctx, store.KindSession, id("fam_x")); err != nil || s.Revoked || string(s.Data) != `{"s":1}` {
			t.Fatalf("session of the same ID: %+v, %v", s, err)
		}
		fams, err := st.ListByUser(ctx, store.KindFamily, "usr_dora")
		if err != nil || len(fams) != 1 || fams[0].Kind != store.KindFamily || !fams[0].Revoked {
			t.Fatalf("families of dora: %+v, %v", fams, err)
		}
	})

	t.Run("headers read as Get reads them", func(t *testing.T) { checkHeaders(t, ctx, st, id) })

	t.Run("delete and expire", func(t *testing.T) {
		old := &store.Record{Kind: store.KindToken, ID: id("old"), ExpiresAt: time.Now().Add(-time.Minute), Data: []byte(`{}`)}
		keep := &store.Record{Kind: store.KindToken, ID: id("keep"), ExpiresAt: time.Now().Add(time.Hour), Data: []byte(`{}`)}
		for _, r := range []*store.Record{old, keep} {
			if err := st.Create(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := st.DeleteExpired(ctx, time.Now()); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Get(ctx, store.KindToken, id("old")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("expired record: %v", err)
		}
		if _, err := st.Get(ctx, store.KindToken, id("keep")); err != nil {
			t.Fatalf("live record: %v", err)
		}
		if err := st.Delete(ctx, store.KindToken, id("keep")); err != nil {
			t.Fatal(err)
		}
		if err := st.Delete(ctx, store.KindToken, id("keep")); err != nil {
			t.Fatalf("deleting twice: %v", err)
		}
		if _, err := st.Get(ctx, store.KindToken, id("keep")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleted record: %v", err)
		}
	})

	t.Run("lockout counts: concurrent upserts all count", func(t *testing.T) {
		// Every replica counts failed sign-ins in one record per user with
		// compare-and-swap; none may be lost, whichever replica wrote first.
		uid := id("usr_lock")
		if _, err := st.Get(ctx, store.KindLockout, uid); !errors.Is(err, store.ErrNotFound) {
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
		if err := st.Delete(ctx, store.KindLockout, uid); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Get(ctx, store.KindLockout, uid); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("after a reset: %v", err)
		}
	})
}

// increment adds one to a lockout record's count the way the auth server
// does: an upsert the store retries on conflict.
func increment(ctx context.Context, st store.Store, uid string) error {
	_, _, err := store.Upsert(ctx, st, store.Record{Kind: store.KindLockout, ID: uid, UserID: uid},
		func(_ *store.Record, c *struct {
			N int `json:"n"`
		}) error {
			c.N++
			return nil
		})
	return err
}

func readCount(t *testing.T, st store.Store, uid string) int {
	t.Helper()
	r, err := st.Get(context.Background(), store.KindLockout, uid)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	if _, err := fmt.Sscanf(string(r.Data), `{"n":%d}`, &n); err != nil {
		t.Fatalf("decode %q: %v", r.Data, err)
	}
	return n
}
