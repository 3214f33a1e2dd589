package postgres_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantauth/tenantauth/authserver/postgres"
	"github.com/tenantauth/tenantauth/authserver/store"
	"github.com/tenantauth/tenantauth/internal/authcluster"
	"github.com/tenantauth/tenantauth/internal/pgtest"
)

const password = "correct horse battery"

// newCluster starts n auth servers, each with its own store (pool and
// revocation view) on dsn.
func newCluster(t *testing.T, dsn string, n int, opts authcluster.Options) *authcluster.Cluster {
	t.Helper()
	var stores []store.Store
	for range n {
		stores = append(stores, openStore(t, dsn, postgres.ViewConfig{}))
	}
	c, err := authcluster.New(stores, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// waitStatus polls /verify on base until it answers want, and returns how
// long that took.
func waitStatus(t *testing.T, base, jwt string, want int, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		r, err := authcluster.Verify(context.Background(), base, jwt)
		if err == nil && r.Status == want {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s/verify: %d %s (%v) after %v, want %d", base, r.Status, r.Body, err, within, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRevocationReachesEveryReplica: a logout on one replica is seen by
// /verify on the others within a second, though none of them reads the
// database on /verify.
func TestRevocationReachesEveryReplica(t *testing.T) {
	c := newCluster(t, pgtest.NewDB(t), 3, authcluster.Options{})
	ctx := context.Background()
	if err := c.AddMember(ctx, "alice@acme.com", "owner", password); err != nil {
		t.Fatal(err)
	}
	a, b, cc := c.Replicas[0].URL, c.Replicas[1].URL, c.Replicas[2].URL
	for round := range 3 {
		s, r, err := authcluster.Login(ctx, a, "alice@acme.com", password)
		if err != nil || s == nil {
			t.Fatalf("login: %v %d %s", err, r.Status, r.Body)
		}
		for _, base := range []string{a, b, cc} {
			waitStatus(t, base, s.AccessToken, http.StatusOK, time.Second)
		}
		if r, err := authcluster.Do(ctx, "POST", a+"/auth/logout", nil, s.AccessToken); err != nil || r.Status != http.StatusNoContent {
			t.Fatalf("logout: %v %d %s", err, r.Status, r.Body)
		}
		for _, base := range []string{b, cc} {
			took := waitStatus(t, base, s.AccessToken, http.StatusUnauthorized, time.Second)
			t.Logf("round %d: %s saw the logout after %v", round, base, took)
		}
	}
	// A refresh token presented twice revokes the family: seen elsewhere too.
	s, _, err := authcluster.Login(ctx, b, "alice@acme.com", password)
	if err != nil {
		t.Fatal(err)
	}
	next, r, err := authcluster.Refresh(ctx, cc, s.RefreshToken)
	if err != nil || next == nil {
		t.Fatalf("refresh: %v %d %s", err, r.Status, r.Body)
	}
	waitStatus(t, a, next.AccessToken, http.StatusOK, time.Second)
	if _, r, _ := authcluster.Refresh(ctx, b, s.RefreshToken); r.Code != "refresh_token_reused" {
		// Inside the grace window a retry is answered, not punished; wait it out.
		time.Sleep(6 * time.Second)
		if _, r, _ = authcluster.Refresh(ctx, b, s.RefreshToken); r.Code != "refresh_token_reused" {
			t.Fatalf("reuse: %d %s", r.Status, r.Body)
		}
	}
	waitStatus(t, a, next.AccessToken, http.StatusUnauthorized, time.Second)
}

// TestDatabaseOutage kills the database under load and restarts it: JWTs
// keep verifying throughout, writes answer 503 store_unavailable, /readyz
// says not ready, and after the restart writes work and revocations reach
// every replica again.
func TestDatabaseOutage(t *testing.T) {
	// Durable: a crash of a server without fsync loses recent commits.
	pg := pgtest.Own(t, pgtest.Options{Durable: true})
	ctx := context.Background()
	dsn, err := pg.CreateDB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, dsn, 2, authcluster.Options{})
	if err := c.AddMember(ctx, "alice@acme.com", "owner", password); err != nil {
		t.Fatal(err)
	}
	a, b := c.Replicas[0].URL, c.Replicas[1].URL
	live, _, err := authcluster.Login(ctx, a, "alice@acme.com", password)
	if err != nil {
		t.Fatal(err)
	}
	doomed, _, err := authcluster.Login(ctx, a, "alice@acme.com", password)
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, b, doomed.AccessToken, http.StatusOK, time.Second)
	storeA := c.Replicas[0].Store.(*postgres.Store)
	if n := storeA.RecentLen(); n < 2 {
		t.Fatalf("a keeps %d recent sessions after two logins", n)
	}

	// Load: /verify on both replicas, all the time.
	loadCtx, stopLoad := context.WithCancel(ctx)
	var ok, bad atomic.Int64
	var wg sync.WaitGroup
	t.Cleanup(func() { stopLoad(); wg.Wait() })
	for _, base := range []string{a, b} {
		for range 4 {
			wg.Go(func() {
				for loadCtx.Err() == nil {
					r, err := authcluster.Verify(loadCtx, base, live.AccessToken)
					switch {
					case loadCtx.Err() != nil:
					case err == nil && r.Status == http.StatusOK:
						ok.Add(1)
					default:
						bad.Add(1)
						t.Errorf("/verify on %s during the outage test: %d %s %v", base, r.Status, r.Body, err)
					}
				}
			})
		}
	}

	time.Sleep(300 * time.Millisecond)
	if err := pg.Kill(); err != nil {
		t.Fatal(err)
	}
	before := ok.Load()
	// Not ready, once the view's poll has failed.
	waitReady := func(base string, want int) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			r, err := authcluster.Do(ctx, "GET", base+"/readyz", nil, "")
			if err == nil && r.Status == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s/readyz: %d %s, want %d", base, r.Status, r.Body, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitReady(a, http.StatusServiceUnavailable)
	waitReady(b, http.StatusServiceUnavailable)
	// The database that comes back may be a restore whose version sequence
	// stands behind the copies' versions: none is kept across the outage.
	if n := storeA.RecentLen(); n != 0 {
		t.Fatalf("a keeps %d recent sessions through the outage", n)
	}
	for _, base := range []string{a, b} {
		_, r, err := authcluster.Login(ctx, base, "alice@acme.com", password)
		if err != nil || r.Status != http.StatusServiceUnavailable || r.Code != "store_unavailable" {
			t.Fatalf("login during the outage on %s: %d %s %v, want 503 store_unavailable", base, r.Status, r.Body, err)
		}
		r, _ = authcluster.Do(ctx, "POST", base+"/auth/logout", nil, doomed.AccessToken)
		if r.Status != http.StatusServiceUnavailable || r.Code != "store_unavailable" {
			t.Fatalf("logout during the outage on %s: %d %s, want 503 store_unavailable", base, r.Status, r.Body)
		}
	}
	time.Sleep(time.Second)
	if ok.Load() <= before {
		t.Fatal("no /verify answered 200 while the database was down")
	}
	t.Logf("%d /verify answered 200 during the outage", ok.Load()-before)

	if err := pg.StartAgain(); err != nil {
		t.Fatal(err)
	}
	// Writes work again, and a revocation made now reaches the other replica.
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := authcluster.Do(ctx, "POST", a+"/auth/logout", nil, doomed.AccessToken)
		if err == nil && r.Status == http.StatusNoContent {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("logout after the restart: %d %s %v", r.Status, r.Body, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitStatus(t, b, doomed.AccessToken, http.StatusUnauthorized, time.Second)
	waitReady(b, http.StatusOK)
	waitReady(a, http.StatusOK)
	if _, r, err := authcluster.Login(ctx, b, "alice@acme.com", password); err != nil || r.Status != http.StatusOK {
		t.Fatalf("login after the restart: %d %s %v", r.Status, r.Body, err)
	}
	stopLoad()
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d /verify requests failed", bad.Load())
	}
	t.Logf("%d /verify answered 200 in all", ok.Load())
}

// TestSharedRateLimit: three replicas on one database hold the limit of
// 20 a minute together, for a minute of hammering on one email (with
// the right password, so the lockout of failed sign-ins plays no part).
func TestSharedRateLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("hammers for a minute")
	}
	c := newCluster(t, pgtest.NewDB(t), 3, authcluster.Options{RateLimitPerMinute: 20})
	ctx := context.Background()
	if err := c.AddMember(ctx, "bob@acme.com", "member", password); err != nil {
		t.Fatal(err)
	}
	var passed, limited atomic.Int64
	end := time.Now().Add(time.Minute)
	var wg sync.WaitGroup
	for i := range 6 {
		base := c.Replicas[i%3].URL
		wg.Go(func() {
			for time.Now().Before(end) {
				r, err := authcluster.Do(ctx, "POST", base+"/auth/login",
					map[string]string{"email": "bob@acme.com", "password": password, "organization": "acme"}, "")
				switch {
				case err != nil:
					t.Error(err)
					return
				case r.Status == http.StatusTooManyRequests && r.Code == "rate_limited":
					limited.Add(1)
				default:
					passed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("in a minute on 3 replicas: %d passed the limiter, %d got 429", passed.Load(), limited.Load())
	if passed.Load() > 22 || passed.Load() < 15 || limited.Load() == 0 {
		t.Fatalf("%d requests passed a limit of 20 a minute (%d limited), want at most 22", passed.Load(), limited.Load())
	}
}

// TestPartitionedReplicaCatchesUp cuts one replica off the database while
// another revokes a session: the cut-off replica is not ready, and once it
// is ready again it has caught up, so the revoked token fails there.
func TestPartitionedReplicaCatchesUp(t *testing.T) {
	dsn := pgtest.NewDB(t)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := pgtest.NewProxy(fmt.Sprintf("%s:%d", cfg.Host, cfg.Port))
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	host, port, _ := net.SplitHostPort(proxy.Addr)
	viaProxy := fmt.Sprintf("postgres://%s@%s:%s/%s?sslmode=disable", cfg.User, host, port, cfg.Database)
	stA := openStore(t, dsn, postgres.ViewConfig{})
	stB := openStore(t, viaProxy, postgres.ViewConfig{})
	c, err := authcluster.New([]store.Store{stA, stB}, authcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := c.AddMember(ctx, "carol@acme.com", "owner", password); err != nil {
		t.Fatal(err)
	}
	a, b := c.Replicas[0].URL, c.Replicas[1].URL
	s, _, err := authcluster.Login(ctx, a, "carol@acme.com", password)
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, b, s.AccessToken, http.StatusOK, time.Second)

	proxy.Cut()
	deadline := time.Now().Add(10 * time.Second)
	for stB.Ready() == nil {
		if time.Now().After(deadline) {
			t.Fatal("a replica cut off the database stays ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r, err := authcluster.Do(ctx, "POST", a+"/auth/logout", nil, s.AccessToken); err != nil || r.Status != http.StatusNoContent {
		t.Fatalf("logout on the connected replica: %d %s %v", r.Status, r.Body, err)
	}
	// Cut off, b answers from memory: the token still verifies there.
	r, _ := authcluster.Verify(ctx, b, s.AccessToken)
	t.Logf("cut-off replica answers a token revoked meanwhile with %d (from memory)", r.Status)
	if r, _ := authcluster.Do(ctx, "GET", b+"/readyz", nil, ""); r.Status != http.StatusServiceUnavailable {
		t.Fatalf("cut-off replica /readyz: %d", r.Status)
	}

	proxy.Restore()
	deadline = time.Now().Add(15 * time.Second)
	for stB.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("replica not ready after the partition healed: %v", stB.Ready())
		}
		time.Sleep(time.Millisecond)
	}
	// Ready means caught up: the revocation is known at once.
	if r, _ := authcluster.Verify(ctx, b, s.AccessToken); r.Status != http.StatusUnauthorized {
		t.Fatalf("ready again but not caught up: /verify %d %s", r.Status, r.Body)
	}
}
