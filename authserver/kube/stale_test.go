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
	ss := staleSession(t, tn, lagging, 1)
	code, body := lagging.post(t, "/auth/refresh", map[string]string{"refresh_token": ss[1].refresh})
	if code != 200 {
		t.Fatalf("the current token on the lagging replica: %d %v, want 200", code, body)
	}
	s3 := sessionOf(t, code, body)

	// A secret the session never held, on the session's ID: refused, and
	// the session is not ended by it.
	prefixed, _, ok := strings.Cut(s3.refresh, ".")
	if !ok {
		t.Fatalf("refresh token %q has no secret part", s3.refresh)
	}
	forged := prefixed + "." + token.NewSecret()
	code, body = lagging.post(t, "/auth/refresh", map[string]string{"refresh_token": forged})
	if e, _ := body["error"].(map[string]any); code != 401 || e["code"] != "invalid_refresh_token" {
		t.Fatalf("a made-up secret: %d %v, want 401 invalid_refresh_token", code, body)
	}
	tn.live(t, "the session after the made-up secret", s3)
}

// staleSession logs in on tn, has lagging index the session as it is, then
// rotates it on tn n times: lagging's index holds the first version, and
// the tokens are returned in order.
func staleSession(t *testing.T, tn, lagging *tenant, n int) []kubeSession {
	t.Helper()
	ss := []kubeSession{sessionOf(t, 200, tn.login(t))}
	if code, body := lagging.get(t, "/verify", "Authorization", "Bearer "+ss[0].access); code != 200 {
		t.Fatalf("verify on the lagging replica: %d %v", code, body)
	}
	before, ok := lagging.store.indexed(store.KindSession, ss[0].sid)
	if !ok {
		t.Fatal("the lagging replica did not index the session")
	}
	for range n {
		code, body := tn.post(t, "/auth/refresh", map[string]string{"refresh_token": ss[len(ss)-1].refresh})
		ss = append(ss, sessionOf(t, code, body))
	}
	if now, _ := lagging.store.indexed(store.KindSession, ss[0].sid); now.Version != before.Version {
		t.Fatal("the lagging replica's index moved on; the test plays nothing")
	}
	return ss
}

// TestReuseDetectedPastALaggingIndex: a token spent two rotations ago on
// another replica, replayed where the index still holds the session before
// those rotations, is reuse: the session is revoked, so its newest token
// is refused too.
//
// Old behaviour it catches: the lagging replica found the token unknown to
// its copy and answered invalid_refresh_token, and the thief's replay cost
// the stolen session nothing.
func TestReuseDetectedPastALaggingIndex(t *testing.T) {
	tn := newTenant(t)
	lagging := tn.laggingReplica(t)
	ss := staleSession(t, tn, lagging, 3)
	code, body := lagging.post(t, "/auth/refresh", map[string]string{"refresh_token": ss[1].refresh})
	if e, _ := body["error"].(map[string]any); code != 401 || e["code"] != "refresh_token_reused" {
		t.Fatalf("a replayed spent token on the lagging replica: %d %v, want 401 refresh_token_reused", code, body)
	}
	tn.dead(t, "the session after the replay", ss[3])
	tn.live(t, "another session of the user", sessionOf(t, 200, tn.login(t)))
}

// TestLiveReadsSpentAnswersBusy: when the lagging replica may not read
// past its index (an attacker spent its budget of live reads with garbage
// tokens), the current token is answered 503 busy, for the client to
// retry, not 401, which would make it drop the session; once reads are
// allowed again it is rotated.
func TestLiveReadsSpentAnswersBusy(t *testing.T) {
	tn := newTenant(t)
	lagging := tn.laggingReplica(t)
	ss := staleSession(t, tn, lagging, 1)
	live := lagging.store.live
	limit, burst := live.Limit(), live.Burst()
	live.SetBurst(0)
	code, body := lagging.post(t, "/auth/refresh", map[string]string{"refresh_token": ss[1].refresh})
	if e, _ := body["error"].(map[string]any); code != 503 || e["code"] != "busy" {
		t.Fatalf("the current token while live reads are spent: %d %v, want 503 busy", code, body)
	}
	live.SetLimit(limit)
	live.SetBurst(burst)
	// A client retries as Retry-After says; the budget refills at once
	// here, so a few quick retries do.
	for deadline := time.Now().Add(5 * time.Second); code == 503 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		code, body = lagging.post(t, "/auth/refresh", map[string]string{"refresh_token": ss[1].refresh})
	}
	tn.live(t, "the session, retried", sessionOf(t, code, body))
}
