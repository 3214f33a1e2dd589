package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/go-logr/logr/testr"

	"github.com/tenantauth/tenantauth/authserver/postgres"
	"github.com/tenantauth/tenantauth/authserver/store"
	"github.com/tenantauth/tenantauth/internal/pgtest"
)

// TestBatchedSwapsLoseNoUpdate runs read-increment-swap loops on a few
// shared counters from many goroutines on two replicas, each gathering
// its swaps into batches. Every swap that answers success must be exactly
// one increment: a batch that let two swaps from one version both win,
// or reported a win it did not write, leaves a counter off.
func TestBatchedSwapsLoseNoUpdate(t *testing.T) {
	dsn := pgtest.NewDB(t)
	replicas := []*postgres.Store{
		openStoreWith(t, postgres.Config{DSN: dsn, Log: testr.New(t), Batchers: 1}),
		openStoreWith(t, postgres.Config{DSN: dsn, Log: testr.New(t), Batchers: 2}),
	}
	ctx := context.Background()
	const counters, goroutines, each = 6, 24, 25
	for i := range counters {
		if err := replicas[0].Create(ctx, &store.Record{Kind: store.KindToken, ID: fmt.Sprint("ctr_", i), Data: []byte("0")}); err != nil {
			t.Fatal(err)
		}
	}
	var (
		wg   sync.WaitGroup
		wins [counters]atomic.Int64
	)
	for g := range goroutines {
		wg.Go(func() {
			st := replicas[g%len(replicas)]
			for n := 0; n < each; {
				i := (g + n) % counters
				r, err := st.Get(ctx, store.KindToken, fmt.Sprint("ctr_", i))
				if err != nil {
					t.Error(err)
					return
				}
				v, _ := strconv.Atoi(string(r.Data))
				r.Data = []byte(strconv.Itoa(v + 1))
				switch err := st.Swap(ctx, r); {
				case errors.Is(err, store.ErrConflict):
					continue // another swap won from this version: read again
				case err != nil:
					t.Error(err)
					return
				}
				wins[i].Add(1)
				n++
			}
		})
	}
	wg.Wait()
	total := int64(0)
	for i := range counters {
		r, err := replicas[1].Get(ctx, store.KindToken, fmt.Sprint("ctr_", i))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(r.Data), strconv.FormatInt(wins[i].Load(), 10); got != want {
			t.Errorf("counter %d is %s after %s winning swaps", i, got, want)
		}
		total += wins[i].Load()
	}
	if total != goroutines*each {
		t.Fatalf("%d winning swaps, want %d", total, goroutines*each)
	}
	if replicas[0].BatchedSwaps()+replicas[1].BatchedSwaps() == 0 {
		t.Fatal("no swap was decided in a batch: the test did not exercise batching")
	}
}

// TestBatchedSwapsFromOneVersionHaveOneWinner: swaps of one record from
// one version, all at once, on a replica that batches. Exactly one wins,
// and the record holds what it wrote.
func TestBatchedSwapsFromOneVersionHaveOneWinner(t *testing.T) {
	st := openStoreWith(t, postgres.Config{DSN: pgtest.NewDB(t), Log: testr.New(t), Batchers: 1})
	ctx := context.Background()
	rec := &store.Record{Kind: store.KindSession, ID: "ses_1", UserID: "usr_1", Data: []byte("start")}
	if err := st.Create(ctx, rec); err != nil {
		t.Fatal(err)
	}
	// Busy the replica's one batcher with other records, so the racing
	// swaps queue up behind it; a batch takes one of them, the next batch
	// the next, and each one's version check decides it.
	for i := range 8 {
		if err := st.Create(ctx, &store.Record{Kind: store.KindSession, ID: fmt.Sprint("ses_other_", i), Data: []byte("0")}); err != nil {
			t.Fatal(err)
		}
	}
	for round := range 20 {
		var (
			wg     sync.WaitGroup
			winner atomic.Value
			wins   atomic.Int64
		)
		for i := range 8 {
			wg.Go(func() {
				r, err := st.Get(ctx, store.KindSession, fmt.Sprint("ses_other_", i))
				if err == nil {
					r.Data = []byte("busy")
					err = st.Swap(ctx, r)
				}
				if err != nil && !errors.Is(err, store.ErrConflict) {
					t.Error(err)
				}
			})
		}
		for i := range 16 {
			wg.Go(func() {
				r := *rec
				r.Data = []byte(fmt.Sprint("round ", round, " swap ", i))
				switch err := st.Swap(ctx, &r); {
				case err == nil:
					wins.Add(1)
					winner.Store(r)
				case !errors.Is(err, store.ErrConflict):
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if n := wins.Load(); n != 1 {
			t.Fatalf("round %d: %d swaps from one version won, want exactly 1", round, n)
		}
		w := winner.Load().(store.Record)
		got, err := st.Get(ctx, store.KindSession, "ses_1")
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Data) != string(w.Data) || got.Version != w.Version {
			t.Fatalf("round %d: the record holds %q at %s, the winner wrote %q at %s", round, got.Data, got.Version, w.Data, w.Version)
		}
		rec = got
	}
	if st.BatchedSwaps() == 0 {
		t.Fatal("no swap was decided in a batch: the test did not exercise batching")
	}
}
