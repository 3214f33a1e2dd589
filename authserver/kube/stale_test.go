package kube

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantauth/tenantauth/authserver"
	"github.com/tenantauth/tenantauth/authserver/account"
	"github.com/tenantauth/tenantauth/authserver/store"
	"github.com/tenantauth/tenantauth/authserver/token"
)

// laggingReplica is a second server beside tn's, on the same namespace and
// directory, whose store never watches: its index holds only what it read
// or wrote itself, as a replica's informer does when it lags.
func (tn *tenant) laggingReplica(t *testing.T) *tenant {
	t.Helper()
	direct, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	st := NewStore(direct, direct, tn.sys)
	srv := authserver.New(authserver.Config{PublicURL: "http://auth.test", Secret: key, RequestTimeout: 3 * time.Second,
		Argon2: account.Argon2Params{MemoryKiB: 64, Time: 1, Threads: 1}, RateLimitPerMinute: 10_000}, tn.dir, st, key)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	lagging := *tn
	lagging.store, lagging.srv, lagging.http = st, srv, hs
	return &lagging
}

// TestRefreshPastALaggingIndex: a session rotated on one replica is
// refreshed with the token that replica issued on another, whose index
// still holds the session as it was before. The token is the current one,
// so it is rotated, not refused. A secret the session never held is still
// refused there, and the session keeps working.
//
// Old behaviour it catches: the lagging replica compared the token with
// the session as its index held it and answered 401
// invalid_refresh_token, so a client whose refreshes went to two replicas
// lost its session.
func TestRefreshPastALaggingIndex(t *testing.T) {
	tn := newTenant(t)
	lagging := tn.laggingReplica(t)
	s1 := sessionOf(t, 200, tn.login(t))
	// The lagging replica learns the session as it is now.
	if code, body := lagging.get(t, "/verify", "Authorization", "Bearer "+s1.access); code != 200 {
		t.Fatalf("verify on the lagging replica: %d %v", code, body)
	}
	before, ok := lagging.store.indexed(store.KindSession, s1.sid)
	if !ok {
		t.Fatal("the lagging replica did not index the session")
	}

	code, body := tn.post(t, "/auth/refresh", map[string]string{"refresh_token": s1.refresh})
	s2 := sessionOf(t, code, body)
	if now, _ := lagging.store.indexed(store.KindSession, s1.sid); now.Version != before.Version {
		t.Fatal("the lagging replica's index moved on; the test plays nothing")
	}

	code, body = lagging.post(t, "/auth/refresh", map[string]string{"refresh_token": s2.refresh})
	if code != 200 {
		t.Fatalf("the current token on the lagging replica: %d %v, want 200", code, body)
	}
	s3 := sessionOf(t, code, body)

	// A secret the session never held, on the session's ID: refused, and
	// the session is not ended by it.
	id, _, ok := strings.Cut(s3.refresh, ".")
	if !ok {
		t.Fatalf("refresh token %q has no secret part", s3.refresh)
	}
	forged := id + "." + token.NewSecret()
	code, body = lagging.post(t, "/auth/refresh", map[string]string{"refresh_token": forged})
	if e, _ := body["error"].(map[string]any); code != 401 || e["code"] != "invalid_refresh_token" {
		t.Fatalf("a made-up secret: %d %v, want 401 invalid_refresh_token", code, body)
	}
	tn.live(t, "the session after the made-up secret", s3)
}
