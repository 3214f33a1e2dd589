package kube

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/tenantauth/tenantauth/authserver/account"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/authserver"
	"github.com/tenantauth/tenantauth/authserver/mail"
	"github.com/tenantauth/tenantauth/authserver/mail/mailtest"
	"github.com/tenantauth/tenantauth/authserver/store"
)

const alicePW = "correct horse battery"

// addOrg adds Organization name to the tenant's namespace, with signing
// keys and alice as a member with role, the way the operator would, and
// waits until the directory serves it. It returns the organization's ID.
func (tn *tenant) addOrg(t *testing.T, name, role string) string {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	org := &tav1.Organization{ObjectMeta: metav1.ObjectMeta{Namespace: tn.ns, Name: name}, Spec: tav1.OrganizationSpec{DisplayName: name}}
	g.Expect(k8s.Create(ctx, org)).To(Succeed())
	id := "org_" + name + "_" + tn.ns
	writeOrgRecords(t, tn.sys, org, id)
	g.Expect(k8s.Create(ctx, &tav1.Membership{ObjectMeta: metav1.ObjectMeta{Namespace: tn.ns, Name: "alice-" + name},
		Spec: tav1.MembershipSpec{Organization: name, Email: "alice@acme.com", Role: role}})).To(Succeed())
	g.Eventually(func() bool {
		_, ok := tn.dir.MemberOf("alice@acme.com", tn.ns+"/"+name)
		_, kok := tn.dir.Keys(tn.ns + "/" + name)
		return ok && kok
	}).WithTimeout(10 * time.Second).Should(BeTrue())
	return id
}

// kubeSession is one session's tokens.
type kubeSession struct{ access, refresh, sid string }

func sessionOf(t testing.TB, code int, body map[string]any) kubeSession {
	t.Helper()
	if code != 200 || body["access_token"] == nil {
		t.Fatalf("want a session: %d %v", code, body)
	}
	return kubeSession{access: body["access_token"].(string), refresh: body["refresh_token"].(string),
		sid: body["session"].(map[string]any)["id"].(string)}
}

func (tn *tenant) switchTo(t *testing.T, access, org string) kubeSession {
	t.Helper()
	code, body := tn.post(t, "/users/exchange-session", map[string]string{"organization_id": org}, "Authorization", "Bearer "+access)
	return sessionOf(t, code, body)
}

// dead checks that a session is refused by /verify, /auth/me and refresh.
func (tn *tenant) dead(t *testing.T, name string, s kubeSession) {
	t.Helper()
	for _, p := range []string{"/verify", "/auth/me"} {
		if code, body := tn.get(t, p, "Authorization", "Bearer "+s.access); code != 401 {
			t.Errorf("%s: %s answers %d %v, want 401", name, p, code, body)
		}
	}
	if code, body := tn.post(t, "/auth/refresh", map[string]string{"refresh_token": s.refresh}); code != 401 {
		t.Errorf("%s: refresh answers %d %v, want 401", name, code, body)
	}
}

// live checks that a session works, refreshing it once.
func (tn *tenant) live(t *testing.T, name string, s kubeSession) kubeSession {
	t.Helper()
	for _, p := range []string{"/verify", "/auth/me"} {
		if code, body := tn.get(t, p, "Authorization", "Bearer "+s.access); code != 200 {
			t.Fatalf("%s: %s answers %d %v, want 200", name, p, code, body)
		}
	}
	code, body := tn.post(t, "/auth/refresh", map[string]string{"refresh_token": s.refresh})
	if code != 200 {
		t.Fatalf("%s: refresh answers %d %v, want 200", name, code, body)
	}
	return sessionOf(t, code, body)
}

func (tn *tenant) loginTo(t *testing.T, orgID string) kubeSession {
	t.Helper()
	code, body := tn.post(t, "/auth/login", map[string]string{"email": "alice@acme.com", "password": alicePW, "organization": orgID})
	return sessionOf(t, code, body)
}

// recorder is a Mailer that keeps what it is given.
type recorder struct {
	mu   sync.Mutex
	msgs []mail.Message
}

func (r *recorder) Send(_ context.Context, m mail.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, m)
	return nil
}

// replica starts a second auth server on the tenant's directory and
// Kubernetes store, as another replica would be, mailing into a recorder.
func (tn *tenant) replica(t *testing.T) (*httptest.Server, *recorder) {
	t.Helper()
	rec := &recorder{}
	srv := authserver.New(authserver.Config{PublicURL: "http://auth.test", Secret: key, RequestTimeout: 3 * time.Second,
		Argon2: account.Argon2Params{MemoryKiB: 64, Time: 1, Threads: 1}, RateLimitPerMinute: 10_000}, tn.dir, tn.store, key,
		authserver.WithMailer(rec))
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return hs, rec
}

// resetPassword runs forgot-password and reset-password on a second
// replica.
func (tn *tenant) resetPassword(t *testing.T, newPW string) {
	t.Helper()
	hs, rec := tn.replica(t)
	other := &tenant{ns: tn.ns, http: hs}
	if code, body := other.post(t, "/auth/forgot-password", map[string]string{"email": "alice@acme.com"}); code != 202 {
		t.Fatalf("forgot-password: %d %v", code, body)
	}
	var token string
	NewWithT(t).Eventually(func() string {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		for _, m := range rec.msgs {
			for _, l := range mailtest.Links(m.Text) {
				if u, err := url.Parse(l); err == nil && u.Query().Get("token") != "" {
					token = u.Query().Get("token")
				}
			}
		}
		return token
	}).WithTimeout(10 * time.Second).ShouldNot(BeEmpty())
	if code, body := other.post(t, "/auth/reset-password", map[string]string{"token": token, "password": newPW}); code != 204 {
		t.Fatalf("reset-password: %d %v", code, body)
	}
}

// storedSession reads a session's record from the Kubernetes store.
func (tn *tenant) storedSession(t *testing.T, sid string) (abs, authTime time.Time) {
	t.Helper()
	rec, err := tn.store.Get(context.Background(), store.KindSession, sid)
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Abs      time.Time `json:"absolute_expires_at"`
		AuthTime time.Time `json:"auth_time"`
	}
	if err := json.Unmarshal(rec.Data, &s); err != nil {
		t.Fatal(err)
	}
	return s.Abs, s.AuthTime
}

// TestSessionFamiliesOnKubernetes: on the Kubernetes store, a session
// switched to another organization ends with the one it came from, by
// logout, refresh-token reuse or password reset (on another replica),
// and inherits its sign-in time and absolute expiry.
func TestSessionFamiliesOnKubernetes(t *testing.T) {
	tests := []struct {
		name string
		end  func(t *testing.T, tn *tenant, src kubeSession)
	}{
		{"logout", func(t *testing.T, tn *tenant, src kubeSession) {
			if code, body := tn.post(t, "/auth/logout", nil, "Authorization", "Bearer "+src.access); code != 204 {
				t.Fatalf("logout: %d %v", code, body)
			}
		}},
		{"refresh-token reuse", func(t *testing.T, tn *tenant, src kubeSession) {
			if code, _ := tn.post(t, "/auth/refresh", map[string]string{"refresh_token": src.refresh}); code != 200 {
				t.Fatalf("refresh: %d", code)
			}
			time.Sleep(6 * time.Second) // past the 5s retry grace
			if code, body := tn.post(t, "/auth/refresh", map[string]string{"refresh_token": src.refresh}); body["error"].(map[string]any)["code"] != "refresh_token_reused" {
				t.Fatalf("reuse: %d %v", code, body)
			}
		}},
		{"password reset", func(t *testing.T, tn *tenant, _ kubeSession) { tn.resetPassword(t, "a brand new passphrase") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tn := newTenant(t)
			acme := "org_" + tn.ns
			globex := tn.addOrg(t, "globex", "viewer")
			src := tn.loginTo(t, acme)
			sw := tn.switchTo(t, src.access, globex)
			twice := tn.switchTo(t, sw.access, acme)
			other := tn.loginTo(t, globex) // another sign-in

			srcAbs, srcAuth := tn.storedSession(t, src.sid)
			for _, s := range []kubeSession{sw, twice} {
				abs, auth := tn.storedSession(t, s.sid)
				if abs.After(srcAbs) || !auth.Equal(srcAuth) {
					t.Errorf("switched session: absolute expiry %v, sign-in %v; the source's are %v and %v", abs, auth, srcAbs, srcAuth)
				}
			}
			tc.end(t, tn, src)
			tn.dead(t, "source", src)
			tn.dead(t, "switched", sw)
			tn.dead(t, "switched twice", twice)
			if tc.name == "password reset" {
				code, body := tn.post(t, "/auth/login", map[string]string{"email": "alice@acme.com", "password": "a brand new passphrase", "organization": acme})
				tn.live(t, "a sign-in with the new password", sessionOf(t, code, body))
				return
			}
			tn.live(t, "another sign-in of the same user", other)
		})
	}
}

// TestMembershipRemovalOnKubernetes: disabling or deleting a Membership
// ends that user's sessions in that organization as the informer event
// arrives; making it active again revives none of them, while the user's
// sessions in another organization and new sign-ins work.
func TestMembershipRemovalOnKubernetes(t *testing.T) {
	tests := []struct {
		name           string
		remove, revive func(g Gomega, ns string)
	}{
		{"disable, then enable", func(g Gomega, ns string) { setDisabled(g, ns, true) }, func(g Gomega, ns string) { setDisabled(g, ns, false) }},
		{"delete, then create again", func(g Gomega, ns string) {
			g.Expect(k8s.Delete(context.Background(), &tav1.Membership{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "alice"}})).To(Succeed())
		}, func(g Gomega, ns string) {
			g.Expect(k8s.Create(context.Background(), &tav1.Membership{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "alice"},
				Spec: tav1.MembershipSpec{Organization: "acme", Email: "alice@acme.com", Role: "owner"}})).To(Succeed())
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			tn := newTenant(t)
			acme := "org_" + tn.ns
			globex := tn.addOrg(t, "globex", "viewer")
			old := tn.loginTo(t, acme)
			inGlobex := tn.loginTo(t, globex)

			tc.remove(g, tn.ns)
			g.Eventually(func() int { c, _ := tn.get(t, "/verify", "Authorization", "Bearer "+old.access); return c }).
				WithTimeout(2 * time.Second).WithPolling(20 * time.Millisecond).Should(Equal(401))
			// The store learns it too: the refresh token is revoked, not only refused.
			g.Eventually(func() any {
				_, body := tn.post(t, "/auth/refresh", map[string]string{"refresh_token": old.refresh})
				e, _ := body["error"].(map[string]any)
				return e["code"]
			}).WithTimeout(5 * time.Second).Should(Equal("session_revoked"))

			tc.revive(g, tn.ns)
			var fresh kubeSession
			g.Eventually(func() int {
				c, body := tn.post(t, "/auth/login", map[string]string{"email": "alice@acme.com", "password": alicePW, "organization": acme})
				if c == 200 {
					fresh = sessionOf(t, c, body)
				}
				return c
			}).WithTimeout(5 * time.Second).Should(Equal(200))
			tn.dead(t, "the session from before the removal", old)
			tn.live(t, "a sign-in after the membership came back", fresh)
			tn.live(t, "the session in the other organization", inGlobex)
		})
	}
}

func setDisabled(g Gomega, ns string, disabled bool) {
	m := &tav1.Membership{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "alice"}, m)).To(Succeed())
	m.Spec.Disabled = disabled
	g.Expect(k8s.Update(context.Background(), m)).To(Succeed())
}
