package postgres

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/tenantauth/tenantauth/authserver/store"
	"github.com/tenantauth/tenantauth/internal/pgtest"
)

// migrated is a store on a fresh database with the schema applied and no
// workers running: a test hands batches to exec itself.
func migrated(t *testing.T) *Store {
	t.Helper()
	s, err := Open(Config{DSN: pgtest.NewDB(t), Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if _, err := Migrate(context.Background(), s.pool); err != nil {
		t.Fatal(err)
	}
	return s
}

func pending(ctx context.Context, r *store.Record, guard *store.Guard) *pendingSwap {
	var old int64
	fmt.Sscan(r.Version, &old)
	return &pendingSwap{ctx: ctx, r: *r, old: old, guard: guard, done: make(chan swapResult, 1)}
}

// TestBatchDecidesEachSwap runs one statement of many swaps and wants
// each decided as it would be alone: version, guard and cancellation are
// each swap's own, and the losers' rows are untouched.
func TestBatchDecidesEachSwap(t *testing.T) {
	s := migrated(t)
	ctx := context.Background()
	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
	create := func(kind, id string, revoked bool) *store.Record {
		r := &store.Record{Kind: kind, ID: id, UserID: "usr_1", Revoked: revoked, ExpiresAt: exp, Data: []byte(id + "-v1")}
		if err := s.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	create(store.KindFamily, "fam_live", false)
	create(store.KindFamily, "fam_dead", true)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()

	type tc struct {
		rec     *store.Record
		old     string // the version swapped from; "" is the current one
		guard   *store.Guard
		ctx     context.Context
		wantWin bool
	}
	cases := map[string]*tc{
		"current":       {wantWin: true},
		"stale":         {old: "1"},
		"guard live":    {guard: &store.Guard{Kind: store.KindFamily, ID: "fam_live"}, wantWin: true},
		"guard revoked": {guard: &store.Guard{Kind: store.KindFamily, ID: "fam_dead"}},
		"guard missing": {guard: &store.Guard{Kind: store.KindFamily, ID: "fam_none"}},
		"guard empty":   {guard: &store.Guard{}}, // names no record, so none stands
		"cancelled":     {ctx: cancelled},
		"no expiry":     {wantWin: true},
	}
	var batch []*pendingSwap
	byName := map[*pendingSwap]string{}
	for name, c := range cases {
		c.rec = create(store.KindSession, "ses_"+name, false)
		next := *c.rec
		if c.old != "" {
			next.Version = c.old
		}
		next.Data = []byte(name + "-v2")
		next.UserID = "usr_2"
		if name == "no expiry" {
			next.ExpiresAt = time.Time{}
		}
		pctx := ctx
		if c.ctx != nil {
			pctx = c.ctx
		}
		p := pending(pctx, &next, c.guard)
		batch = append(batch, p)
		byName[p] = name
	}
	b := newBatcher(s, 1)
	b.exec(ctx, batch)
	if got := b.batched.Load(); got != int64(len(cases)-1) {
		t.Fatalf("%d swaps decided in a batch, want %d (all but the cancelled one)", got, len(cases)-1)
	}
	for _, p := range batch {
		name, c := byName[p], cases[byName[p]]
		res := <-p.done
		got, err := s.Get(ctx, store.KindSession, "ses_"+name)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case c.wantWin:
			if res.err != nil || fmt.Sprint(res.version) != got.Version || string(got.Data) != name+"-v2" || got.UserID != "usr_2" {
				t.Errorf("%s: %v, version %d; row %+v; want it written", name, res.err, res.version, got)
			}
		case name == "cancelled":
			if !errors.Is(res.err, context.Canceled) || got.Version != c.rec.Version {
				t.Errorf("%s: %v, row version %s; want context.Canceled and the row untouched", name, res.err, got.Version)
			}
		default:
			if !errors.Is(res.err, store.ErrConflict) || got.Version != c.rec.Version || string(got.Data) != "ses_"+name+"-v1" {
				t.Errorf("%s: %v; row %+v; want ErrConflict and the row untouched", name, res.err, got)
			}
		}
		wantExp := exp
		if name == "no expiry" {
			wantExp = time.Time{}
		}
		if !got.ExpiresAt.Equal(wantExp) {
			t.Errorf("%s: expires %v, want %v", name, got.ExpiresAt, wantExp)
		}
	}
}

// TestBatchRefusedIsDecidedSwapBySwap gives the server a batch it refuses
// (one swap's user ID holds a NUL, which text cannot): every swap goes
// back to run alone, as its caller does, and then that swap alone fails
// while its neighbours are written.
func TestBatchRefusedIsDecidedSwapBySwap(t *testing.T) {
	s := migrated(t)
	ctx := context.Background()
	var batch []*pendingSwap
	for i := range 5 {
		r := &store.Record{Kind: store.KindSession, ID: fmt.Sprint("ses_", i), UserID: "usr_1", Data: []byte("v1")}
		if err := s.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
		next := *r
		next.Data = []byte("v2")
		if i == 2 {
			next.UserID = "usr_\x00"
		}
		batch = append(batch, pending(ctx, &next, nil))
	}
	b := newBatcher(s, 1)
	b.exec(ctx, batch)
	if n := b.batched.Load(); n != 0 {
		t.Fatalf("%d swaps counted as decided by the refused batch", n)
	}
	for _, p := range batch {
		if res := <-p.done; !res.alone {
			t.Fatalf("%s in a refused batch: %+v, want it sent back to run alone", p.r.ID, res)
		}
		_, err := s.execOne(ctx, &p.r, p.old, p.guard)
		got, gerr := s.Get(ctx, store.KindSession, p.r.ID)
		if gerr != nil {
			t.Fatal(gerr)
		}
		if p.r.ID == "ses_2" {
			if err == nil || string(got.Data) != "v1" {
				t.Errorf("the bad swap alone: %v, data %q; want the server's refusal and the row untouched", err, got.Data)
			}
			continue
		}
		if err != nil || string(got.Data) != "v2" {
			t.Errorf("%s alone: %v, data %q; want it written", p.r.ID, err, got.Data)
		}
	}
}

// TestTakeOneSwapARecord: a second swap of a record waits for the next
// batch, in order, and a batch holds at most maxBatch.
func TestTakeOneSwapARecord(t *testing.T) {
	queue := make(chan *pendingSwap, 2*maxBatch)
	mk := func(id string) *pendingSwap {
		return &pendingSwap{r: store.Record{Kind: store.KindSession, ID: id}}
	}
	for _, id := range []string{"b", "b", "c", "a"} {
		queue <- mk(id)
	}
	waiting := drain([]*pendingSwap{mk("a")}, queue)
	batch, rest := take(waiting)
	if ids := keys(batch); ids != "a b c" {
		t.Fatalf("batch %q, want a b c", ids)
	}
	if ids := keys(rest); ids != "b a" {
		t.Fatalf("left waiting %q, want b a", ids)
	}
	batch, rest = take(rest)
	if ids := keys(batch); ids != "b a" || len(rest) != 0 {
		t.Fatalf("next batch %q, left %q; want b a and none", ids, keys(rest))
	}
	for i := range 2 * maxBatch {
		queue <- mk(fmt.Sprint(i))
	}
	batch, rest = take(drain(nil, queue))
	if len(batch) != maxBatch || len(rest) != maxBatch || keys(rest[:1]) != fmt.Sprint(maxBatch) {
		t.Fatalf("batch of %d, %d left (first %s); want %d and the newest %d", len(batch), len(rest), keys(rest[:1]), maxBatch, maxBatch)
	}
}

func keys(ps []*pendingSwap) string {
	s := ""
	for i, p := range ps {
		if i > 0 {
			s += " "
		}
		s += p.r.ID
	}
	return s
}

// running is a store whose batcher runs, with limits of lock timeout lock
// (0: the default); the store stops at cleanup, or at stop.
func running(t *testing.T, batchers int, lock time.Duration) (s *Store, stop func()) {
	t.Helper()
	s, err := Open(Config{DSN: pgtest.NewDB(t), Log: logr.Discard(), Batchers: batchers})
	if err != nil {
		t.Fatal(err)
	}
	if lock > 0 {
		s.batch.limits = batchLimits(lock)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; s.Close() })
	<-s.migrated
	waitFor(t, "the batcher to run", func() bool { return s.batch.running.Load() })
	return s, cancel
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("waited 10s for %s", what)
		}
	}
}

// holdRow locks a session row in an open transaction, as a revoking write
// waiting on revocationLock does, until release.
func holdRow(t *testing.T, s *Store, id string) (release func()) {
	t.Helper()
	ctx := context.Background()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT 1 FROM tenantauth_records WHERE kind = $1 AND id = $2 FOR UPDATE", store.KindSession, id); err != nil {
		t.Fatal(err)
	}
	release = func() { _ = tx.Rollback(ctx) }
	t.Cleanup(release)
	return release
}

// lockWaiters counts the statements waiting on a lock.
func lockWaiters(t *testing.T, s *Store) int {
	var n int
	if err := s.pool.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func session(t *testing.T, s *Store, id string) *store.Record {
	t.Helper()
	r := &store.Record{Kind: store.KindSession, ID: id, UserID: "usr_" + id, Data: []byte("v1"), ExpiresAt: time.Now().Add(time.Hour)}
	if err := s.Create(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return r
}

func swapTo(s *Store, ctx context.Context, r *store.Record, data string) error {
	next := *r
	next.Data = []byte(data)
	return s.Swap(ctx, &next)
}

// TestBatchHeldRowHoldsUpNoNeighbour plays a tenant that holds its own
// session's row (a logout waiting its turn) while refreshing that session
// on every batcher: another tenant's refresh is written while the row is
// still held, and once it is let go the tenant's own refreshes are
// decided, one winner from one version.
func TestBatchHeldRowHoldsUpNoNeighbour(t *testing.T) {
	s, _ := running(t, defaultBatchers, 0)
	ctx := context.Background()
	att, victim := session(t, s, "ses_attacker"), session(t, s, "ses_victim")
	release := holdRow(t, s, att.ID)
	results := make(chan error, defaultBatchers)
	for i := range defaultBatchers {
		go func() { results <- swapTo(s, ctx, att, fmt.Sprint("a", i)) }()
	}
	waitFor(t, "the attacker's swaps to wait on its row", func() bool { return lockWaiters(t, s) > 0 })
	// Well short of the batcher's statement timeout, which would also
	// end the attacker's batches.
	vctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := swapTo(s, vctx, victim, "v2"); err != nil {
		t.Fatalf("the victim's swap while another tenant's row is held: %v", err)
	}
	if got, _ := s.Get(ctx, store.KindSession, victim.ID); string(got.Data) != "v2" {
		t.Fatalf("the victim's row holds %q, want v2", got.Data)
	}
	if lockWaiters(t, s) == 0 {
		t.Fatal("the attacker's swaps stopped waiting before the row was let go")
	}
	release()
	won := 0
	for range defaultBatchers {
		switch err := <-results; {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("an attacker's swap: %v, want a win or ErrConflict", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of the swaps from one version won, want 1", won)
	}
}

// TestBatchStartedRunsThroughStop stops the store with one batch in flight
// (held up by a row lock) and another swap waiting: the waiting swap runs
// alone at once, and the batch in flight is written and answers so, as
// the request the server is still draining needs.
func TestBatchStartedRunsThroughStop(t *testing.T) {
	s, stop := running(t, 1, time.Minute)
	ctx := context.Background()
	a, b := session(t, s, "ses_a"), session(t, s, "ses_b")
	release := holdRow(t, s, a.ID)
	resA, resB := make(chan error, 1), make(chan error, 1)
	go func() { resA <- swapTo(s, ctx, a, "v2") }()
	waitFor(t, "a's batch to wait on its row", func() bool { return lockWaiters(t, s) > 0 })
	go func() { resB <- swapTo(s, ctx, b, "v2") }()
	time.Sleep(100 * time.Millisecond) // b is handed to the batcher, which runs one batch at a time
	stop()
	select {
	case err := <-resB:
		if err != nil {
			t.Fatalf("the waiting swap after stop: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting swap got no answer when the store stopped")
	}
	release()
	if err := <-resA; err != nil {
		t.Fatalf("the swap in flight when the store stopped: %v, want it written", err)
	}
	for _, id := range []string{a.ID, b.ID} {
		if got, _ := s.Get(ctx, store.KindSession, id); string(got.Data) != "v2" {
			t.Errorf("%s holds %q, want v2", id, got.Data)
		}
	}
}
