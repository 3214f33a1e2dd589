// Package postgres is the PostgreSQL store backend: the store.Store of
// every record kind in one table, compare-and-swap on a version column,
// a shared rate limiter, and an in-memory view of revocations that every
// replica keeps current through LISTEN/NOTIFY and polling, so /verify
// never waits on the database. Plain SQL, no extensions, so managed
// PostgreSQL serves (RDS, Cloud SQL, Azure, CloudNativePG).
package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantauth/tenantauth/authserver/store"
)

// Config configures the store.
type Config struct {
	// DSN is a libpq connection string or URL. It is never logged.
	DSN string
	Log logr.Logger
	// MaxConns bounds the pool; 0 means the DSN's pool_max_conns, else
	// defaultMaxConns.
	MaxConns int32
	// Revocations tune the in-memory view; zero values take the defaults.
	Revocations ViewConfig
	// RecentSessions bounds the session records kept in memory so that a
	// refresh needs no read (see recent); 0 means defaultRecentSessions,
	// a negative number keeps none.
	RecentSessions int
	// Batchers is how many batches of swaps run at once (see batcher); 0
	// means defaultBatchers, a negative number swaps one statement each.
	Batchers int
}

// Store is the PostgreSQL backend.
type Store struct {
	pool *pgxpool.Pool
	log  logr.Logger
	view *view
	// recent are the session records last read or written here.
	recent *recent
	// batch gathers concurrent swaps into one statement; nil swaps alone.
	batch *batcher
	// migrated is closed once the schema is current.
	migrated chan struct{}
}

var (
	_ store.Store          = (*Store)(nil)
	_ store.RevocationView = (*Store)(nil)
	_ store.Limiter        = (*Store)(nil)
	_ store.Readier        = (*Store)(nil)
	_ store.Swapper        = (*Store)(nil)
	_ store.HeaderReader   = (*Store)(nil)
	_ store.GuardedSwapper = (*Store)(nil)
	_ store.Recents        = (*Store)(nil)
)

// gcBatch bounds the rows one garbage-collection statement deletes, so
// no statement holds locks or WAL for long however much has expired.
const gcBatch = 1000

// defaultMaxConns is the pool's size unless the DSN sets pool_max_conns.
// pgxpool's own default (4 on a 2-core machine) leaves a refresh waiting
// for a connection while others wait on their commit; with more in
// flight, PostgreSQL flushes several commits at once. Each replica holds
// up to this many of the server's max_connections (100 by default).
const defaultMaxConns = 16

// connectTimeout bounds a connection attempt, so a request during an
// outage fails fast with 503 instead of hanging.
const connectTimeout = 3 * time.Second

// Open parses the DSN and makes the pool. It does not connect: Run does,
// and retries until the database answers.
func Open(cfg Config) (*Store, error) {
	pc, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		// pgx's parse errors may quote the DSN; say only that it is bad.
		return nil, errors.New("parse the PostgreSQL DSN: not a valid connection string or URL")
	}
	if pc.ConnConfig.ConnectTimeout == 0 || pc.ConnConfig.ConnectTimeout > connectTimeout {
		pc.ConnConfig.ConnectTimeout = connectTimeout
	}
	switch {
	case cfg.MaxConns > 0:
		pc.MaxConns = cfg.MaxConns
	case !strings.Contains(cfg.DSN, "pool_max_conns"):
		pc.MaxConns = max(pc.MaxConns, defaultMaxConns)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, fmt.Errorf("make the PostgreSQL pool: %w", err)
	}
	if cfg.RecentSessions == 0 {
		cfg.RecentSessions = defaultRecentSessions
	}
	s := &Store{pool: pool, log: cfg.Log, recent: newRecent(cfg.RecentSessions), migrated: make(chan struct{})}
	if cfg.Batchers == 0 {
		cfg.Batchers = defaultBatchers
	}
	if cfg.Batchers > 0 {
		s.batch = newBatcher(s, cfg.Batchers)
	}
	s.view = newView(s, pc.ConnConfig, cfg.Revocations, cfg.Log)
	return s, nil
}

// Close closes the pool.
func (s *Store) Close() { s.pool.Close() }

// Pool is the store's connection pool (tests and tools).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Run applies the migrations, retrying while the database cannot be
// reached, then keeps the revocation view current until ctx ends. It
// returns early only for a fault no retry fixes, such as a schema newer
// than the binary.
func (s *Store) Run(ctx context.Context) error {
	for wait := 250 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		n, err := Migrate(ctx, s.pool)
		if err == nil {
			s.log.Info("postgres schema current", "version", SchemaVersion(), "applied", n)
			break
		}
		if errors.Is(err, ErrSchemaTooNew) {
			return err
		}
		s.view.setNotReady(fmt.Errorf("postgres: cannot apply the schema: %w", err))
		s.log.Error(err, "postgres store not ready: cannot reach the database or apply the schema; retrying", "in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
	close(s.migrated)
	if s.batch != nil {
		go s.batch.run(ctx)
	}
	return s.view.run(ctx)
}

// Ready reports why the store cannot serve yet: no schema, or the
// revocation view not caught up with the database.
func (s *Store) Ready() error { return s.view.ready() }

// Revoked answers from the revocation view (see store.RevocationView).
func (s *Store) Revoked(ctx context.Context, kind, id string, since time.Time) (bool, error) {
	return s.view.revoked(ctx, kind, id, since)
}

const recordColumns = "kind, id, version, user_id, revoked, expires_at, data"

func scanRecord(row pgx.Row) (*store.Record, error) {
	var (
		r   store.Record
		v   int64
		exp *time.Time
	)
	if err := row.Scan(&r.Kind, &r.ID, &v, &r.UserID, &r.Revoked, &exp, &r.Data); err != nil {
		return nil, err
	}
	r.Version = strconv.FormatInt(v, 10)
	if exp != nil {
		r.ExpiresAt = exp.UTC()
	}
	return &r, nil
}

func expiry(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// Get reads one record.
func (s *Store) Get(ctx context.Context, kind, id string) (*store.Record, error) {
	r, err := scanRecord(s.pool.QueryRow(ctx, "SELECT "+recordColumns+" FROM tenantauth_records WHERE kind = $1 AND id = $2", kind, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read %s record: %w", kind, err)
	}
	s.recent.put(r)
	return r, nil
}

// Recent returns the session record as this replica last read or wrote
// it (see store.Recents).
func (s *Store) Recent(kind, id string) (*store.Record, bool) { return s.recent.get(kind, id) }

// GetHeader reads a record's owner and revocation without its data (the
// family check of every refresh).
func (s *Store) GetHeader(ctx context.Context, kind, id string) (store.Header, error) {
	var h store.Header
	err := s.pool.QueryRow(ctx, "SELECT user_id, revoked FROM tenantauth_records WHERE kind = $1 AND id = $2", kind, id).Scan(&h.UserID, &h.Revoked)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Header{}, store.ErrNotFound
	}
	if err != nil {
		return store.Header{}, fmt.Errorf("read %s record: %w", kind, err)
	}
	return h, nil
}

// Create inserts a record that must not exist yet.
func (s *Store) Create(ctx context.Context, r *store.Record) error {
	var v int64
	err := s.pool.QueryRow(ctx, `INSERT INTO tenantauth_records (kind, id, version, user_id, revoked, expires_at, data)
		VALUES ($1, $2, nextval('tenantauth_record_version'), $3, $4, $5, $6) RETURNING version`,
		r.Kind, r.ID, r.UserID, r.Revoked, expiry(r.ExpiresAt), r.Data).Scan(&v)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return store.ErrExists
	}
	if err != nil {
		return fmt.Errorf("create %s record: %w", r.Kind, err)
	}
	r.Version = strconv.FormatInt(v, 10)
	s.recent.put(r)
	return nil
}

// Update is a compare-and-swap on the version column, retried on conflict
// (see store.Store). An update that revokes a session or a family also
// publishes the revocation, in the same transaction.
func (s *Store) Update(ctx context.Context, kind, id string, change func(*store.Record) error) (*store.Record, error) {
	for range store.MaxAttempts {
		r, err := s.Get(ctx, kind, id)
		if err != nil {
			return nil, err
		}
		wasRevoked := r.Revoked
		if err := change(r); err != nil {
			if errors.Is(err, store.ErrUnchanged) {
				return r, nil
			}
			return nil, err
		}
		r.Kind, r.ID = kind, id
		err = s.swap(ctx, r, !wasRevoked && r.Revoked && published(kind))
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return r, nil
	}
	return nil, fmt.Errorf("update %s record %s: %w %d times", kind, id, store.ErrConflict, store.MaxAttempts)
}

// published says whether revoking or deleting a record of kind must reach
// every replica's view: the kinds the hot path checks.
func published(kind string) bool { return kind == store.KindSession || kind == store.KindFamily }

const swapSQL = `UPDATE tenantauth_records SET version = nextval('tenantauth_record_version'),
	user_id = $4, revoked = $5, expires_at = $6, data = $7
	WHERE kind = $1 AND id = $2 AND version = $3 RETURNING version`

// Swap writes r if its version is still current (see store.Swapper). Not
// knowing whether r was revoked before, it publishes every revoked
// session or family it writes; a second publication of one revocation is
// harmless.
func (s *Store) Swap(ctx context.Context, r *store.Record) error {
	return s.swap(ctx, r, r.Revoked && published(r.Kind))
}

// guardedSwapSQL is swapSQL that also needs the guard's record, live.
const guardedSwapSQL = `UPDATE tenantauth_records SET version = nextval('tenantauth_record_version'),
	user_id = $4, revoked = $5, expires_at = $6, data = $7
	WHERE kind = $1 AND id = $2 AND version = $3
	AND EXISTS (SELECT 1 FROM tenantauth_records g WHERE g.kind = $8 AND g.id = $9 AND NOT g.revoked)
	RETURNING version`

// SwapGuarded is Swap in one statement with the guard's check (see
// store.GuardedSwapper): a refresh is one round trip for its write and
// its family.
func (s *Store) SwapGuarded(ctx context.Context, r *store.Record, guard store.Guard) error {
	return s.swapIf(ctx, r, r.Revoked && published(r.Kind), &guard)
}

// swap writes r if its version is still current.
func (s *Store) swap(ctx context.Context, r *store.Record, revoking bool) error {
	return s.swapIf(ctx, r, revoking, nil)
}

// swapIf writes r if its version is still current and, with a guard, the
// guard's record stands; a revoking write publishes in the same
// transaction. Others go in a batch when workers run.
func (s *Store) swapIf(ctx context.Context, r *store.Record, revoking bool, guard *store.Guard) error {
	old, err := strconv.ParseInt(r.Version, 10, 64)
	if err != nil {
		return fmt.Errorf("update %s record %s: bad version %q", r.Kind, r.ID, r.Version)
	}
	var (
		v       int64
		batched bool
	)
	switch {
	case revoking:
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			q, args := swapStatement(r, old, guard)
			if err := tx.QueryRow(ctx, q, args...).Scan(&v); err != nil {
				return err
			}
			return publish(ctx, tx, r.Kind, r.ID)
		})
	default:
		if v, batched, err = s.batch.swap(ctx, *r, old, guard); !batched {
			v, err = s.execOne(ctx, r, old, guard)
		}
	}
	if errors.Is(err, pgx.ErrNoRows) || errors.Is(err, store.ErrConflict) {
		s.recent.forget(r.Kind, r.ID)
		return store.ErrConflict
	}
	if err != nil {
		s.recent.forget(r.Kind, r.ID)
		return fmt.Errorf("update %s record: %w", r.Kind, err)
	}
	r.Version = strconv.FormatInt(v, 10)
	s.recent.put(r)
	return nil
}

// swapStatement is the one-row swap of r from version old.
func swapStatement(r *store.Record, old int64, guard *store.Guard) (string, []any) {
	q, args := swapSQL, []any{r.Kind, r.ID, old, r.UserID, r.Revoked, expiry(r.ExpiresAt), r.Data}
	if guard != nil {
		q, args = guardedSwapSQL, append(args, guard.Kind, guard.ID)
	}
	return q, args
}

// execOne runs the one-row swap of r from version old and answers the new
// version, or pgx.ErrNoRows when r's version moved or its guard fell.
func (s *Store) execOne(ctx context.Context, r *store.Record, old int64, guard *store.Guard) (int64, error) {
	var v int64
	q, args := swapStatement(r, old, guard)
	err := s.pool.QueryRow(ctx, q, args...).Scan(&v)
	return v, err
}

// revocationLock serialises writers of tenantauth_revocations: a writer
// holds it from drawing its seq to its commit, so rows become visible in
// seq order and the view's high-water mark never skips one.
const revocationLock int64 = 0x74612d7265766f6b

// notifyChannel carries "kind/id" of each revocation to listening
// replicas the moment it commits.
const notifyChannel = "tenantauth_revocations"

// publish records a revocation of kind/id in tx and notifies listeners at
// commit.
func publish(ctx context.Context, tx pgx.Tx, kind, id string) error {
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", revocationLock); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO tenantauth_revocations (seq, kind, id) VALUES (nextval('tenantauth_revocation_seq'), $1, $2);
		`, kind, id)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, "SELECT pg_notify($1, $2)", notifyChannel, kind+"/"+id)
	return err
}

// Delete removes a record; a missing one is not an error. Deleting a
// session or family is published like a revocation.
func (s *Store) Delete(ctx context.Context, kind, id string) error {
	const del = "DELETE FROM tenantauth_records WHERE kind = $1 AND id = $2"
	s.recent.forget(kind, id)
	var err error
	if !published(kind) {
		_, err = s.pool.Exec(ctx, del, kind, id)
	} else {
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, del, kind, id)
			if err != nil || tag.RowsAffected() == 0 {
				return err
			}
			return publish(ctx, tx, kind, id)
		})
	}
	if err != nil {
		return fmt.Errorf("delete %s record: %w", kind, err)
	}
	return nil
}

// ListByUser returns the user's records of a kind.
func (s *Store) ListByUser(ctx context.Context, kind, userID string) ([]*store.Record, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+recordColumns+" FROM tenantauth_records WHERE kind = $1 AND user_id = $2", kind, userID)
	if err != nil {
		return nil, fmt.Errorf("list %s records: %w", kind, err)
	}
	defer rows.Close()
	var out []*store.Record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("list %s records: %w", kind, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list %s records: %w", kind, err)
	}
	return out, nil
}

// gcSQL deletes one batch of expired records and publishes the sessions
// and families among them, since a JWT may still name one. SKIP LOCKED
// lets replicas collect at once without waiting on each other.
const gcSQL = `WITH d AS (
		DELETE FROM tenantauth_records WHERE (kind, id) IN (
			SELECT kind, id FROM tenantauth_records WHERE expires_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)
		RETURNING kind, id),
	p AS (INSERT INTO tenantauth_revocations (seq, kind, id)
		SELECT nextval('tenantauth_revocation_seq'), kind, id FROM d WHERE kind IN ('session', 'family'))
	SELECT count(*) FROM d`

// DeleteExpired removes records whose expiry is before now, gcBatch rows a
// statement, and prunes revocations and rate-limit windows nobody needs
// any more.
func (s *Store) DeleteExpired(ctx context.Context, now time.Time) (int, error) {
	total := 0
	for {
		var n int
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", revocationLock); err != nil {
				return err
			}
			return tx.QueryRow(ctx, gcSQL, now, gcBatch).Scan(&n)
		})
		if err != nil {
			return total, fmt.Errorf("delete expired records: %w", err)
		}
		total += n
		if n < gcBatch {
			break
		}
	}
	keep := (s.view.cfg.Retention + retentionMargin).Milliseconds()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`DELETE FROM tenantauth_revocations WHERE seq IN (
			SELECT seq FROM tenantauth_revocations WHERE at < now() - $1 * interval '1 millisecond' LIMIT $2)`, []any{keep, gcBatch}},
		{`DELETE FROM tenantauth_rate_limits WHERE key IN (
			SELECT key FROM tenantauth_rate_limits WHERE expires_at < now() LIMIT $1 FOR UPDATE SKIP LOCKED)`, []any{gcBatch}},
	} {
		for {
			tag, err := s.pool.Exec(ctx, q.sql, q.args...)
			if err != nil {
				return total, fmt.Errorf("prune: %w", err)
			}
			if tag.RowsAffected() < gcBatch {
				break
			}
		}
	}
	return total, nil
}
