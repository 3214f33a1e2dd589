package postgres_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantauth/tenantauth/internal/authcluster"
	"github.com/tenantauth/tenantauth/internal/pgtest"
)

// A replica tries a refresh from its recent copy of the session, without
// reading it. These play the copy being stale because another replica
// wrote the session since: a spent or stolen token that the copy still
// calls current must be judged on the stored record, and the session's
// owner must keep refreshing on any replica.

// refreshes spends token on base and wants status and code (code "" for
// 200); it returns the next refresh token, if any.
func refreshes(t *testing.T, base, token string, status int, code string) string {
	t.Helper()
	s, r, err := authcluster.Refresh(context.Background(), base, token)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != status || r.Code != code {
		t.Fatalf("refresh on %s: %d %s, want %d %q", base, r.Status, r.Body, status, code)
	}
	if s == nil {
		return ""
	}
	return s.RefreshToken
}

func login(t *testing.T, base string) *authcluster.Session {
	t.Helper()
	s, r, err := authcluster.Login(context.Background(), base, "alice@acme.com", password)
	if err != nil || s == nil {
		t.Fatalf("login on %s: %v %d %s", base, err, r.Status, r.Body)
	}
	return s
}

func TestStaleCopyNeverRotatesSpentToken(t *testing.T) {
	c := newCluster(t, pgtest.NewDB(t), 2, authcluster.Options{})
	if err := c.AddMember(context.Background(), "alice@acme.com", "owner", password); err != nil {
		t.Fatal(err)
	}
	a, b := c.Replicas[0].URL, c.Replicas[1].URL

	t1 := login(t, a).RefreshToken
	t2 := refreshes(t, a, t1, http.StatusOK, "") // a's copy: t2 is current
	t3 := refreshes(t, b, t2, http.StatusOK, "") // a's copy is stale now
	// t2 is a's copy's current token but spent in the database: a retry
	// within the grace, refused, and the session kept.
	refreshes(t, a, t2, http.StatusUnauthorized, "refresh_token_spent")
	// The owner goes on, alternating replicas.
	next := t3
	for i := range 6 {
		next = refreshes(t, []string{a, b}[i%2], next, http.StatusOK, "")
	}
}

func TestStaleCopyDetectsReuse(t *testing.T) {
	c := newCluster(t, pgtest.NewDB(t), 2, authcluster.Options{})
	if err := c.AddMember(context.Background(), "alice@acme.com", "owner", password); err != nil {
		t.Fatal(err)
	}
	a, b := c.Replicas[0].URL, c.Replicas[1].URL

	victim := login(t, a) // a's copy: t1 is current
	t2 := refreshes(t, b, victim.RefreshToken, http.StatusOK, "")
	t3 := refreshes(t, b, t2, http.StatusOK, "")
	// A stolen t1, two rotations old, replayed to the replica whose copy
	// still calls it current: reuse, and the whole session ends.
	refreshes(t, a, victim.RefreshToken, http.StatusUnauthorized, "refresh_token_reused")
	refreshes(t, b, t3, http.StatusUnauthorized, "session_revoked")
	refreshes(t, a, t3, http.StatusUnauthorized, "session_revoked")
	// A new sign-in works on both.
	refreshes(t, b, refreshes(t, a, login(t, b).RefreshToken, http.StatusOK, ""), http.StatusOK, "")
}

func TestStaleCopyOfRevokedSession(t *testing.T) {
	c := newCluster(t, pgtest.NewDB(t), 2, authcluster.Options{})
	ctx := context.Background()
	if err := c.AddMember(ctx, "alice@acme.com", "owner", password); err != nil {
		t.Fatal(err)
	}
	a, b := c.Replicas[0].URL, c.Replicas[1].URL

	s := login(t, a) // a's copy: live, t1 current
	other := login(t, a)
	if r, err := authcluster.Do(ctx, "POST", b+"/auth/logout", nil, s.AccessToken); err != nil || r.Status != http.StatusNoContent {
		t.Fatalf("logout on b: %v %d %s", err, r.Status, r.Body)
	}
	refreshes(t, a, s.RefreshToken, http.StatusUnauthorized, "session_revoked")
	refreshes(t, b, s.RefreshToken, http.StatusUnauthorized, "session_revoked")
	// The other session of the same user is untouched.
	refreshes(t, b, refreshes(t, a, other.RefreshToken, http.StatusOK, ""), http.StatusOK, "")
}

// TestStaleCopyThatExpiredDetectsReuse: the one refusal a copy could
// make by itself is idle expiry, since only a rotation moves the idle
// deadline on. A stolen token replayed to a replica whose copy has gone
// idle, while the owner kept the session alive on another replica, is
// reuse, not expiry: trusting the copy would answer refresh_token_expired
// and leave the thief's victim session alive.
func TestStaleCopyThatExpiredDetectsReuse(t *testing.T) {
	var offset atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	c := newCluster(t, pgtest.NewDB(t), 2, authcluster.Options{Now: now})
	if err := c.AddMember(context.Background(), "alice@acme.com", "owner", password); err != nil {
		t.Fatal(err)
	}
	a, b := c.Replicas[0].URL, c.Replicas[1].URL

	stolen := login(t, a).RefreshToken // a's copy: stolen is current, idle for 24h
	offset.Store(int64(20 * time.Hour))
	t2 := refreshes(t, b, stolen, http.StatusOK, "") // the stored session is idle from now on
	t3 := refreshes(t, b, t2, http.StatusOK, "")
	offset.Store(int64(25 * time.Hour)) // past the copy's idle deadline, not the stored one's
	refreshes(t, a, stolen, http.StatusUnauthorized, "refresh_token_reused")
	refreshes(t, b, t3, http.StatusUnauthorized, "session_revoked")
}
