package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/jackc/pgx/v5"

	"github.com/tenantauth/tenantauth/authserver/store"
)

// The revocation view: how /verify checks a session without a network
// call. Every revocation of a session or family (revoked, deleted or
// collected) is a row of tenantauth_revocations, written in the
// transaction that revokes, and a NOTIFY at its commit. Each replica
// holds the revocations of the last Retention in memory: the NOTIFY adds
// one within milliseconds, and a poll every PollInterval reads the rows
// past its high-water mark, so nothing is missed while the listening
// connection is down. Rows commit in seq order (a lock serialises the
// writers), so "every row up to the mark" is exact.
//
// Why memory suffices: a JWT names a session that was live when the token
// was issued, and no token is issued for a revoked session or family. So a
// token issued at iat can only be invalidated by a revocation after iat;
// the view answers from memory for any token issued after its horizon
// (less ClockSkew), and asks the database only for an older one (an
// organization with an access-token lifetime longer than Retention, or
// after the view had to drop entries to stay within MaxEntries).
//
// While the database is unreachable the view keeps answering from what it
// holds (no revocation can be written then anyway, except by a replica on
// the other side of a partition), and /readyz says not ready; it is ready
// again once a poll has read every revocation it missed.

// ViewConfig tunes the revocation view; every replica should use the
// same values.
type ViewConfig struct {
	// Retention is how long a revocation is held in memory: at least the
	// longest access-token lifetime for /verify never to read the
	// database. Default 1h.
	Retention time.Duration
	// MaxEntries bounds the memory (about 100 bytes an entry); past it the
	// oldest go and tokens from before them are checked in the database.
	// Default 1,000,000.
	MaxEntries int
	// PollInterval is how often the revocation table is read. Default
	// 500ms.
	PollInterval time.Duration
	// ClockSkew is the leeway between a token's iat (the issuing replica's
	// clock) and revocation times (the database's). Default 1m.
	ClockSkew time.Duration
}

func (c *ViewConfig) defaults() {
	if c.Retention <= 0 {
		c.Retention = time.Hour
	}
	if c.MaxEntries <= 0 {
		c.MaxEntries = 1_000_000
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 500 * time.Millisecond
	}
	if c.ClockSkew <= 0 {
		c.ClockSkew = time.Minute
	}
}

// retentionMargin is how much longer than Retention revocation rows are
// kept in the table, so a replica that reloads finds every one it holds.
const retentionMargin = 10 * time.Minute

// errNotSynced answers while the view has never loaded: it cannot say.
var errNotSynced = errors.New("postgres: the revocation view has not loaded yet")

type entry struct {
	key string
	at  time.Time
}

type view struct {
	st      *Store
	connCfg *pgx.ConnConfig
	cfg     ViewConfig
	log     logr.Logger

	mu    sync.RWMutex
	set   map[string]time.Time
	order []entry // oldest first from head
	head  int
	// horizon: every revocation at or after it is in set. Zero until the
	// first load.
	horizon  time.Time
	loaded   bool
	hwm      int64
	notReady error
	lastOK   time.Time
}

func newView(st *Store, cc *pgx.ConnConfig, cfg ViewConfig, log logr.Logger) *view {
	cfg.defaults()
	return &view{st: st, connCfg: cc, cfg: cfg, log: log, set: map[string]time.Time{},
		notReady: errors.New("postgres: connecting")}
}

func viewKey(kind, id string) string { return kind + "/" + id }

func (v *view) revoked(ctx context.Context, kind, id string, since time.Time) (bool, error) {
	key := viewKey(kind, id)
	v.mu.RLock()
	_, hit := v.set[key]
	loaded, horizon := v.loaded, v.horizon
	v.mu.RUnlock()
	switch {
	case hit:
		return true, nil
	case !loaded:
		return false, errNotSynced
	case since.Add(-v.cfg.ClockSkew).Before(horizon):
		// Older than what memory holds: the database says.
		r, err := v.st.Get(ctx, kind, id)
		if errors.Is(err, store.ErrNotFound) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		return r.Revoked, nil
	}
	return false, nil
}

func (v *view) ready() error {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.notReady
}

func (v *view) setNotReady(err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.notReady = err
}

// run loads the view, then listens and polls until ctx ends.
func (v *view) run(ctx context.Context) error {
	go v.listen(ctx)
	t := time.NewTicker(v.cfg.PollInterval)
	defer t.Stop()
	for {
		v.sync(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// sync catches up with the table: a full load the first time and after an
// outage long enough that rows the view missed may have been pruned, a
// read past the high-water mark otherwise.
func (v *view) sync(ctx context.Context) {
	v.mu.RLock()
	full := !v.loaded || time.Since(v.lastOK) > v.cfg.Retention/2
	wasDown := v.notReady
	v.mu.RUnlock()
	var err error
	if full {
		err = v.load(ctx)
	} else {
		err = v.poll(ctx)
	}
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		err = fmt.Errorf("postgres: cannot read revocations: %w", err)
		// The pool's other connections are most likely as dead as this
		// one: drop them, so none fails a request after the database is
		// back, and the next poll connects afresh.
		v.st.pool.Reset()
		v.st.recent.clear()
		if wasDown == nil {
			v.log.Error(err, "postgres store not ready: lost the database; /verify answers from the revocations held in memory")
		}
		v.setNotReady(err)
		return
	}
	v.mu.Lock()
	v.notReady, v.lastOK = nil, time.Now()
	v.evictLocked(time.Now().Add(-v.cfg.Retention))
	v.mu.Unlock()
	if wasDown != nil {
		v.log.Info("postgres store ready: caught up on revocations", "entries", v.size())
	}
}

func (v *view) size() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.set)
}

// load replaces the view with the revocations of the last Retention.
func (v *view) load(ctx context.Context) error {
	var (
		hwm int64
		now time.Time
	)
	if err := v.st.pool.QueryRow(ctx, "SELECT coalesce(max(seq), 0), now() FROM tenantauth_revocations").Scan(&hwm, &now); err != nil {
		return err
	}
	from := now.Add(-v.cfg.Retention)
	rows, err := v.st.pool.Query(ctx, `SELECT kind, id, at FROM tenantauth_revocations
		WHERE at >= $1 AND seq <= $2 ORDER BY seq`, from, hwm)
	if err != nil {
		return err
	}
	var es []entry
	for rows.Next() {
		var kind, id string
		var at time.Time
		if err := rows.Scan(&kind, &id, &at); err != nil {
			rows.Close()
			return err
		}
		es = append(es, entry{key: viewKey(kind, id), at: at})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.set, v.order, v.head = make(map[string]time.Time, len(es)), nil, 0
	v.horizon, v.hwm, v.loaded = from, hwm, true
	for _, e := range es {
		v.addLocked(e)
	}
	return nil
}

// pollBatch bounds the rows one poll statement reads.
const pollBatch = 10_000

// poll reads the revocations past the high-water mark.
func (v *view) poll(ctx context.Context) error {
	for {
		v.mu.RLock()
		hwm := v.hwm
		v.mu.RUnlock()
		rows, err := v.st.pool.Query(ctx, `SELECT seq, kind, id, at FROM tenantauth_revocations
			WHERE seq > $1 ORDER BY seq LIMIT $2`, hwm, pollBatch)
		if err != nil {
			return err
		}
		var es []entry
		last := hwm
		for rows.Next() {
			var kind, id string
			var at time.Time
			if err := rows.Scan(&last, &kind, &id, &at); err != nil {
				rows.Close()
				return err
			}
			es = append(es, entry{key: viewKey(kind, id), at: at})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		v.mu.Lock()
		for _, e := range es {
			v.addLocked(e)
		}
		v.hwm = max(v.hwm, last)
		v.mu.Unlock()
		if len(es) < pollBatch {
			return nil
		}
	}
}

// addLocked adds a revocation; past MaxEntries the oldest goes and the
// horizon moves up to it.
func (v *view) addLocked(e entry) {
	if _, ok := v.set[e.key]; ok {
		return
	}
	v.set[e.key] = e.at
	v.order = append(v.order, e)
	for len(v.set) > v.cfg.MaxEntries {
		v.dropOldestLocked()
	}
}

// evictLocked drops the revocations older than before.
func (v *view) evictLocked(before time.Time) {
	for v.head < len(v.order) && v.order[v.head].at.Before(before) {
		v.dropOldestLocked()
	}
	if v.horizon.Before(before) && v.loaded {
		v.horizon = before
	}
}

func (v *view) dropOldestLocked() {
	e := v.order[v.head]
	v.order[v.head] = entry{}
	v.head++
	if at, ok := v.set[e.key]; ok && at.Equal(e.at) {
		delete(v.set, e.key)
	}
	if e.at.After(v.horizon) {
		v.horizon = e.at
	}
	if v.head > 1024 && v.head > len(v.order)/2 {
		v.order = append([]entry(nil), v.order[v.head:]...)
		v.head = 0
	}
}

// listen adds each notified revocation at once, reconnecting after a
// lost connection; the poll covers whatever arrives while it is down.
func (v *view) listen(ctx context.Context) {
	for wait := 250 * time.Millisecond; ctx.Err() == nil; wait = min(2*wait, 5*time.Second) {
		err := v.listenOnce(ctx, func() { wait = 250 * time.Millisecond })
		if ctx.Err() != nil {
			return
		}
		v.st.recent.clear() // the database may not be the one it was (recent.clear)
		v.log.V(1).Info("postgres revocation listener disconnected; polling covers it", "error", err.Error())
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (v *view) listenOnce(ctx context.Context, connected func()) error {
	conn, err := pgx.ConnectConfig(ctx, v.connCfg.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return err
	}
	connected()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if !strings.Contains(n.Payload, "/") {
			continue
		}
		v.mu.Lock()
		v.addLocked(entry{key: n.Payload, at: time.Now()})
		v.mu.Unlock()
	}
}
