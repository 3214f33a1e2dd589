package postgres_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"

	"github.com/tenantauth/tenantauth/authserver/postgres"
	"github.com/tenantauth/tenantauth/authserver/store"
	"github.com/tenantauth/tenantauth/authserver/store/storetest"
	"github.com/tenantauth/tenantauth/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// openStore opens a store on dsn and runs it until the test ends.
func openStore(t *testing.T, dsn string, vc postgres.ViewConfig) *postgres.Store {
	t.Helper()
	return openStoreWith(t, postgres.Config{DSN: dsn, Log: testr.New(t), Revocations: vc})
}

// openStoreWith opens a store of cfg and runs it until the test ends.
func openStoreWith(t *testing.T, cfg postgres.Config) *postgres.Store {
	t.Helper()
	st, err := postgres.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := st.Run(ctx); err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done; st.Close() })
	waitReady(t, st)
	return st
}

func waitReady(t *testing.T, st *postgres.Store) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for st.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("store not ready: %v", st.Ready())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestConformance(t *testing.T) {
	st := openStore(t, pgtest.NewDB(t), postgres.ViewConfig{})
	storetest.Run(t, st)
}

func TestDeleteExpiredInBatches(t *testing.T) {
	st := openStore(t, pgtest.NewDB(t), postgres.ViewConfig{})
	ctx := context.Background()
	_, err := st.Pool().Exec(ctx, `INSERT INTO tenantauth_records (kind, id, version, user_id, expires_at, data)
		SELECT 'session', 'ses_' || g, nextval('tenantauth_record_version'), 'usr_x', now() - interval '1 minute', '{}'
		FROM generate_series(1, 2500) g`)
	if err != nil {
		t.Fatal(err)
	}
	n, err := st.DeleteExpired(ctx, time.Now())
	if err != nil || n != 2500 {
		t.Fatalf("deleted %d, %v; want 2500", n, err)
	}
	// Collected sessions are published: a JWT may still name one.
	if revoked, err := st.Revoked(ctx, store.KindSession, "ses_7", time.Now()); err != nil {
		t.Fatal(err)
	} else if !revoked {
		deadline := time.Now().Add(2 * time.Second)
		for !revoked && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			revoked, _ = st.Revoked(ctx, store.KindSession, "ses_7", time.Now())
		}
		if !revoked {
			t.Fatal("a collected session is not seen as revoked")
		}
	}
}

func TestMigrationRefusesNewerSchema(t *testing.T) {
	dsn := pgtest.NewDB(t)
	st := openStore(t, dsn, postgres.ViewConfig{})
	ctx := context.Background()
	if _, err := st.Pool().Exec(ctx, "INSERT INTO tenantauth_schema_migrations (version, name) VALUES ($1, 'from_the_future.sql')",
		postgres.SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	newer, err := postgres.Open(postgres.Config{DSN: dsn, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer newer.Close()
	err = newer.Run(ctx)
	if !errors.Is(err, postgres.ErrSchemaTooNew) || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("run on a newer schema: %v, want ErrSchemaTooNew", err)
	}
	if newer.Ready() == nil {
		t.Fatal("a store that refused the schema says it is ready")
	}
}

func TestConcurrentMigratorsApplyOnce(t *testing.T) {
	dsn := pgtest.NewDB(t)
	const n = 4
	var wg sync.WaitGroup
	applied := make([]int, n)
	errs := make([]error, n)
	for i := range n {
		st, err := postgres.Open(postgres.Config{DSN: dsn, Log: logr.Discard()})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		wg.Go(func() { applied[i], errs[i] = postgres.Migrate(context.Background(), st.Pool()) })
	}
	wg.Wait()
	total := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("migrator %d: %v", i, errs[i])
		}
		total += applied[i]
	}
	if total != postgres.SchemaVersion() {
		t.Fatalf("%d migrations applied in all, want %d exactly once each (%v)", total, postgres.SchemaVersion(), applied)
	}
}

func TestInsecureRemote(t *testing.T) {
	tests := []struct {
		dsn      string
		insecure bool
	}{
		{"postgres://u:secret@db.example.com/x?sslmode=disable", true},
		{"postgres://u:secret@db.example.com/x?sslmode=prefer", true},
		{"postgres://u:secret@db.example.com/x", true},
		{"postgres://u:secret@db.example.com/x?sslmode=allow", true},
		{"postgres://u:secret@db.example.com/x?sslmode=require", false},
		{"postgres://u:secret@db.example.com/x?sslmode=verify-full", false},
		{"postgres://u@127.0.0.1/x?sslmode=disable", false},
		{"host=localhost user=u sslmode=disable", false},
		{"host=/var/run/postgresql user=u", false},
	}
	for _, tt := range tests {
		host, insecure := postgres.InsecureRemote(tt.dsn)
		if insecure != tt.insecure {
			t.Errorf("%s: insecure %v (host %q), want %v", tt.dsn, insecure, host, tt.insecure)
		}
	}
}

func TestOpenHidesDSN(t *testing.T) {
	_, err := postgres.Open(postgres.Config{DSN: "postgres://u:hunter2@[bad/x"})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("bad DSN: %v", err)
	}
}

func TestSharedLimiter(t *testing.T) {
	dsn := pgtest.NewDB(t)
	a := openStore(t, dsn, postgres.ViewConfig{})
	b := openStore(t, dsn, postgres.ViewConfig{})
	ctx := context.Background()
	allowed := 0
	var wait time.Duration
	for i := range 30 {
		st := a
		if i%2 == 1 {
			st = b
		}
		w, ok, err := st.Allow(ctx, "login|email|x@y.z", 5, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			allowed++
		} else {
			wait = w
		}
	}
	if allowed != 5 {
		t.Fatalf("allowed %d of 30 on two stores, want 5", allowed)
	}
	if wait < 50*time.Second || wait > time.Minute {
		t.Fatalf("retry after %v, want about a minute", wait)
	}
	// The window slides: past it, requests pass again.
	if _, ok, _ := a.Allow(ctx, "other", 1, 300*time.Millisecond); !ok {
		t.Fatal("first request of a fresh key refused")
	}
	if _, ok, _ := a.Allow(ctx, "other", 1, 300*time.Millisecond); ok {
		t.Fatal("second request within the window allowed")
	}
	time.Sleep(400 * time.Millisecond)
	if _, ok, _ := b.Allow(ctx, "other", 1, 300*time.Millisecond); !ok {
		t.Fatal("a request after the window refused")
	}
}
