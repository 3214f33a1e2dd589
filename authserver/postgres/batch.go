package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tenantauth/tenantauth/authserver/store"
)

// Swaps in batches: under load, the compare-and-swaps that publish nothing
// (every refresh rotation) are gathered into one UPDATE of many rows. Each
// row keeps its own version check and guard, so a batch decides exactly
// what the swaps alone would have: a row whose version moved, or whose
// guard is revoked, is simply not updated, and its swap answers
// ErrConflict as it would alone. What the batch saves is PostgreSQL's
// per-statement and per-commit work (bind, executor start and end, lock
// release, the commit record and its flush), which is most of a one-row
// UPDATE's cost, and a round trip each.
//
// Nothing waits to fill a batch. With no batch running, the swaps queued
// so far go at once; at low load that is one swap, and it runs the
// one-row statement. While one runs, newcomers gather for the next, which
// starts when it ends, so batches grow with load. Another starts beside it
// only when the running one is full or slow (batchPatience), up to
// Config.Batchers at once: a batch held up by a row lock does not hold up
// the replica.
//
// A batch takes at most one swap of a record (a second waits for the next
// batch, where its version check decides it), and is sorted by key. The
// sort does not fix the order the rows are locked in, which is the plan's
// (a hash join locks in heap order), so batches on this replica or
// another may wait on each other, and any batch may wait on a row another
// transaction holds (a revoking write queued on revocationLock). So every
// batcher statement runs with a short lock_timeout: a batch whose row is
// held is refused at once rather than holding up its neighbours, and a
// deadlock ends at that timeout instead of deadlock_timeout. A batch the
// server refuses (a lock, a deadlock, one swap's bad value) sends each of
// its swaps back to run alone on its caller's goroutine, where only the
// swap of the held row waits. A refusal is then one swap's alone.
//
// A batch that has started runs to its end even while the store stops: its
// swaps may commit, and their callers (requests the server is still
// draining) must learn so. Swaps not yet started when it stops run alone.

// batchSQL is swapSQL and guardedSwapSQL for many rows: b.i says which
// swaps won.
const batchSQL = `UPDATE tenantauth_records r SET version = nextval('tenantauth_record_version'),
	user_id = b.user_id, revoked = b.revoked, expires_at = b.expires_at, data = b.data
	FROM unnest($1::int[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::bool[], $7::timestamptz[], $8::bytea[], $9::bool[], $10::text[], $11::text[])
		AS b(i, kind, id, old, user_id, revoked, expires_at, data, guarded, gkind, gid)
	WHERE r.kind = b.kind AND r.id = b.id AND r.version = b.old
	AND (NOT b.guarded OR EXISTS (SELECT 1 FROM tenantauth_records g WHERE g.kind = b.gkind AND g.id = b.gid AND NOT g.revoked))
	RETURNING b.i, r.version`

// batchLimitSQL sets the batcher's timeouts for the rest of the transaction:
// it is sent with the swap statement in one pipeline, an implicit
// transaction, so it costs no round trip and ends with the statement.
const batchLimitSQL = `SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true)`

// batchLockTimeout is how long a batcher statement waits for a row lock
// before the server refuses it (55P03) and its swaps run alone. It is
// longer than a commit holds a swap's row, so batches of a busy replica
// seldom refuse each other.
const batchLockTimeout = 50 * time.Millisecond

// maxBatch bounds the swaps of one statement.
const maxBatch = 64

// defaultBatchers bounds the batches that run at once, each on a
// connection of its own.
const defaultBatchers = 4

// batchPatience is how long a running batch may take before the next one
// starts beside it rather than after it.
const batchPatience = 5 * time.Millisecond

// batchTimeout bounds one batch statement at the client; the server's
// statement_timeout ends it a second earlier, so a slow batch ends in a
// rollback its swaps can run alone after, not an unknown outcome.
const (
	batchTimeout          = 10 * time.Second
	batchStatementTimeout = batchTimeout - time.Second
)

// batchLimits are batchLimitSQL's arguments for a lock timeout.
func batchLimits(lock time.Duration) []any {
	return []any{fmt.Sprintf("%dms", lock.Milliseconds()), fmt.Sprintf("%dms", batchStatementTimeout.Milliseconds())}
}

// pendingSwap is one swap waiting for a batch.
type pendingSwap struct {
	ctx   context.Context
	r     store.Record // the caller's, copied: it may return before the batch runs
	old   int64
	guard *store.Guard
	done  chan swapResult // buffered: the batcher never waits for the caller
}

type swapResult struct {
	version int64
	err     error
	// alone says the batch could not decide the swap: its caller runs it
	// as a statement of its own.
	alone bool
}

// batcher gathers swaps and runs their batches. queue is unbuffered: a
// swap is handed to the batcher, or waits in the channel, so none is
// stranded when it stops.
type batcher struct {
	s       *Store
	max     int // batches at once
	queue   chan *pendingSwap
	running atomic.Bool   // the batcher takes swaps
	stopped chan struct{} // closed once it has stopped
	limits  []any         // batchLimits of batchLockTimeout
	// batches counts the statements run, batched the swaps decided by a
	// statement of many, and refusals the batches the server refused, by
	// SQLSTATE (see metrics.go).
	batches   atomic.Int64
	batched   atomic.Int64
	refusalMu sync.Mutex
	refusals  map[string]int64
}

// countRefusal counts a batch the server refused with code.
func (b *batcher) countRefusal(code string) {
	b.refusalMu.Lock()
	b.refusals[code]++
	b.refusalMu.Unlock()
}

// refusalCounts returns a copy of the refusals by SQLSTATE.
func (b *batcher) refusalCounts() map[string]int64 {
	b.refusalMu.Lock()
	defer b.refusalMu.Unlock()
	return maps.Clone(b.refusals)
}

func newBatcher(s *Store, max int) *batcher {
	return &batcher{s: s, max: max, queue: make(chan *pendingSwap), stopped: make(chan struct{}), limits: batchLimits(batchLockTimeout),
		refusals: map[string]int64{}}
}

// swap runs one swap in a batch and answers its new version. ok is false
// when the batcher does not run (before Run, after it, or with batching
// off) or could not decide the swap: the caller swaps alone.
func (b *batcher) swap(ctx context.Context, r store.Record, old int64, guard *store.Guard) (version int64, ok bool, err error) {
	if b == nil || !b.running.Load() {
		return 0, false, nil
	}
	p := &pendingSwap{ctx: ctx, r: r, old: old, guard: guard, done: make(chan swapResult, 1)}
	select {
	case b.queue <- p:
	case <-b.stopped:
		return 0, false, nil
	case <-ctx.Done():
		return 0, true, ctx.Err()
	}
	select {
	case res := <-p.done:
		return res.version, !res.alone, res.err
	case <-ctx.Done():
		// The batch may still write it: the caller must treat the record
		// as unknown, as after any failed statement.
		return 0, true, ctx.Err()
	}
}

// run gathers swaps and runs their batches until ctx ends.
func (b *batcher) run(ctx context.Context) {
	b.running.Store(true)
	var (
		waiting  []*pendingSwap // taken from the queue, in no batch yet
		running  int
		finished = make(chan struct{}, b.max)
		// patience fires batchPatience after the newest batch started.
		patience  = time.NewTimer(0)
		impatient bool
	)
	defer patience.Stop()
	// A batch that has started runs to its end (see above).
	bctx := context.WithoutCancel(ctx)
	for ctx.Err() == nil {
		waiting = drain(waiting, b.queue)
		if len(waiting) > 0 && (running == 0 || running < b.max && (impatient || len(waiting) >= maxBatch)) {
			var batch []*pendingSwap
			batch, waiting = take(waiting)
			running++
			impatient = false
			patience.Reset(batchPatience)
			go func() {
				b.exec(bctx, batch)
				finished <- struct{}{}
			}()
			continue
		}
		select {
		case p := <-b.queue:
			waiting = append(waiting, p)
		case <-finished:
			running--
		case <-patience.C:
			impatient = running > 0
		case <-ctx.Done():
		}
	}
	for _, p := range waiting {
		p.done <- swapResult{alone: true}
	}
	for ; running > 0; running-- {
		<-finished
	}
	close(b.stopped)
}

// drain takes what the queue holds now, without waiting.
func drain(waiting []*pendingSwap, queue <-chan *pendingSwap) []*pendingSwap {
	for {
		select {
		case p := <-queue:
			waiting = append(waiting, p)
		default:
			return waiting
		}
	}
}

// take makes a batch of the oldest waiting swaps, at most maxBatch and one
// a record; the rest wait, in order.
func take(waiting []*pendingSwap) (batch, rest []*pendingSwap) {
	seen := make(map[[2]string]bool, min(len(waiting), maxBatch))
	for _, p := range waiting {
		k := [2]string{p.r.Kind, p.r.ID}
		if seen[k] || len(batch) == maxBatch {
			rest = append(rest, p)
			continue
		}
		seen[k] = true
		batch = append(batch, p)
	}
	return batch, rest
}

// exec runs one batch and answers each swap.
func (b *batcher) exec(ctx context.Context, batch []*pendingSwap) {
	live := make([]*pendingSwap, 0, len(batch))
	for _, p := range batch {
		if err := p.ctx.Err(); err != nil {
			p.done <- swapResult{err: err}
			continue
		}
		live = append(live, p)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, batchTimeout)
	defer cancel()
	won, err := b.s.execBatch(ctx, b.limits, live)
	b.batches.Add(1)
	var pe *pgconn.PgError
	refused := errors.As(err, &pe)
	switch {
	case refused:
		// The code only: a refusal's message may quote a value.
		b.s.log.V(1).Info("postgres refused a batch of swaps; each runs alone", "swaps", len(live), "code", pe.Code)
		b.countRefusal(pe.Code)
	case err == nil && len(live) > 1:
		b.batched.Add(int64(len(live)))
	}
	// execBatch sorted live (batchStatement): won's indexes are its.
	for i, p := range live {
		switch v, ok := won[i]; {
		case refused:
			p.done <- swapResult{alone: true}
		case err != nil:
			p.done <- swapResult{err: err}
		case ok:
			p.done <- swapResult{version: v}
		default:
			p.done <- swapResult{err: store.ErrConflict}
		}
	}
}

// execBatch runs the swaps in one statement under limits, and answers the
// new version of each that won, by its index after batchStatement's sort.
func (s *Store) execBatch(ctx context.Context, limits []any, swaps []*pendingSwap) (map[int]int64, error) {
	q, args := batchStatement(swaps)
	won := make(map[int]int64, len(swaps))
	b := &pgx.Batch{}
	b.Queue(batchLimitSQL, limits...)
	b.Queue(q, args...).Query(func(rows pgx.Rows) error {
		var (
			i    int32 // the one-row statement answers only the version
			v    int64
			dest = []any{&i, &v}
		)
		if len(swaps) == 1 {
			dest = dest[1:]
		}
		for rows.Next() {
			if err := rows.Scan(dest...); err != nil {
				return err
			}
			won[int(i)] = v
		}
		return rows.Err()
	})
	return won, s.pool.SendBatch(ctx, b).Close()
}

// batchStatement is the statement of the swaps: the one-row swap for one,
// else batchSQL with the swaps sorted by key in place.
func batchStatement(swaps []*pendingSwap) (string, []any) {
	if len(swaps) == 1 {
		p := swaps[0]
		return swapStatement(&p.r, p.old, p.guard)
	}
	slices.SortFunc(swaps, func(a, b *pendingSwap) int {
		return cmp.Or(cmp.Compare(a.r.Kind, b.r.Kind), cmp.Compare(a.r.ID, b.r.ID))
	})
	n := len(swaps)
	var (
		idx                  = make([]int32, n)
		kinds, ids, users    = make([]string, n), make([]string, n), make([]string, n)
		olds                 = make([]int64, n)
		revoked, guarded     = make([]bool, n), make([]bool, n)
		expires              = make([]pgtype.Timestamptz, n)
		data                 = make([][]byte, n)
		guardKinds, guardIDs = make([]string, n), make([]string, n)
	)
	for i, p := range swaps {
		idx[i], kinds[i], ids[i], olds[i] = int32(i), p.r.Kind, p.r.ID, p.old
		users[i], revoked[i], data[i] = p.r.UserID, p.r.Revoked, p.r.Data
		if !p.r.ExpiresAt.IsZero() {
			expires[i] = pgtype.Timestamptz{Time: p.r.ExpiresAt, Valid: true}
		}
		if p.guard != nil {
			guarded[i], guardKinds[i], guardIDs[i] = true, p.guard.Kind, p.guard.ID
		}
	}
	return batchSQL, []any{idx, kinds, ids, olds, users, revoked, expires, data, guarded, guardKinds, guardIDs}
}
