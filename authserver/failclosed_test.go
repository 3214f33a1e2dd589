package authserver

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantauth/tenantauth/authserver/token"

	"github.com/tenantauth/tenantauth/authserver/directory"

	"github.com/tenantauth/tenantauth/authserver/store"
)

// probeStore wraps a store.Store: it counts calls, fails reads of chosen kinds
// (a store that cannot answer), and, like the Kubernetes store, refuses
// IDs that are not valid object names with an error of its own, which the
// server would answer 503.
type probeStore struct {
	store.Store
	mu    sync.Mutex
	calls int
	fail  map[string]bool
}

func newProbeStore() *probeStore {
	return &probeStore{Store: store.NewMemoryStore(), fail: map[string]bool{}}
}

func (p *probeStore) note(kind, id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("invalid record name %q", id)
		}
	}
	if p.fail[kind] {
		return errTransient
	}
	return nil
}

func (p *probeStore) setFail(kind string, on bool) {
	p.mu.Lock()
	p.fail[kind] = on
	p.mu.Unlock()
}

func (p *probeStore) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls
}

func (p *probeStore) Get(ctx context.Context, kind, id string) (*store.Record, error) {
	if err := p.note(kind, id); err != nil {
		return nil, err
	}
	return p.Store.Get(ctx, kind, id)
}

func (p *probeStore) Create(ctx context.Context, r *store.Record) error {
	if err := p.note("", r.ID); err != nil {
		return err
	}
	return p.Store.Create(ctx, r)
}

func (p *probeStore) Update(ctx context.Context, kind, id string, change func(*store.Record) error) (*store.Record, error) {
	if err := p.note("", id); err != nil {
		return nil, err
	}
	return p.Store.Update(ctx, kind, id, change)
}

func (p *probeStore) ListByUser(ctx context.Context, kind, userID string) ([]*store.Record, error) {
	if err := p.note("", ""); err != nil {
		return nil, err
	}
	return p.Store.ListByUser(ctx, kind, userID)
}

// newFlowHarnessOn is newFlowHarness on the store st.
func newFlowHarnessOn(t *testing.T, st store.Store) *flowHarness {
	t.Helper()
	h := newHarness(t, st)
	fh := &flowHarness{harness: h, mail: &flowMailer{}, members: &flowMembers{}}
	h.srv = New(h.srv.Config(), h.dir, h.store, testKey, WithMailer(fh.mail), WithMembershipWriter(fh.members))
	h.http.Close()
	h.http = httptest.NewServer(h.srv)
	t.Cleanup(h.http.Close)
	return fh
}

// TestMembershipRemovalEndsSessions: disabling or deleting alice's acme
// Membership ends her acme sessions at once; making it again revives none
// of them, while her globex session and a new sign-in work.
func TestMembershipRemovalEndsSessions(t *testing.T) {
	acmeMember := &directory.Member{Ref: "demo/acme-alice@acme.com", OrgRef: "demo/acme", Email: "alice@acme.com", Role: "owner"}
	tests := []struct {
		name           string
		remove, revive func(d *directory.Directory)
	}{
		{"disable, then enable", func(d *directory.Directory) {
			m := *acmeMember
			m.Disabled = true
			d.PutMember(&m)
		}, func(d *directory.Directory) { m := *acmeMember; d.PutMember(&m) }},
		{"delete, then create again", func(d *directory.Directory) { d.DeleteMember(acmeMember.Ref) },
			func(d *directory.Directory) { m := *acmeMember; d.PutMember(&m) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			h.addMember("demo/acme", "alice@acme.com", "owner", alicePW)
			h.addMember("demo/globex", "alice@acme.com", "viewer", "")
			acme := tokensOf(h.login("alice@acme.com", alicePW, "acme"))
			switched := tokensOf(h.switchTo(acme.access, "globex"))
			globex := tokensOf(h.login("alice@acme.com", alicePW, "globex"))

			tc.remove(h.dir)
			if r := h.do("GET", "/verify", nil, "Authorization", "Bearer "+acme.access); r.status != 401 {
				t.Fatalf("acme token right after removal: %d %s", r.status, r.raw)
			}
			h.clock.Add(time.Second)
			tc.revive(h.dir)
			h.assertDead(t, "acme session after the membership came back", acme)
			waitFor(t, func() bool { // the store learns it too, in the background
				rec, err := h.store.Get(t.Context(), store.KindSession, acme.sid)
				return err == nil && rec.Revoked
			})
			h.assertLive(t, "the globex session switched from it", switched)
			h.assertLive(t, "the globex session", globex)
			h.assertLive(t, "a new acme sign-in", tokensOf(h.login("alice@acme.com", alicePW, "acme")))
		})
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 5s")
}

// TestMFADecisionFailsClosed: when the store cannot read whether a user
// has TOTP on, no path answers a session; once it can, the user gets the
// second-factor step as before.
func TestMFADecisionFailsClosed(t *testing.T) {
	tests := []struct {
		name string
		// start signs alice in up to the MFA decision, which it returns.
		start func(h *flowHarness) func() response
	}{
		{"magic link for one organization", func(h *flowHarness) func() response {
			h.do("POST", "/users/send-magic-link", map[string]string{"email_address": "alice@acme.com", "organization": "acme"})
			tok := h.tokenFromMail("alice@acme.com")
			return func() response {
				return h.do("POST", "/users/authenticate-magic-link", map[string]string{"token": tok})
			}
		}},
		{"exchange of an intermediate session", func(h *flowHarness) func() response {
			h.do("POST", "/users/send-magic-link", map[string]string{"email_address": "alice@acme.com"})
			in := h.do("POST", "/users/authenticate-magic-link", map[string]string{"token": h.tokenFromMail("alice@acme.com")})
			ist := in.str("intermediate_session_token")
			return func() response {
				return h.do("POST", "/users/exchange-session", map[string]string{"intermediate_session_token": ist, "organization_id": "acme"})
			}
		}},
		{"switch with a session", func(h *flowHarness) func() response {
			// A globex session from before TOTP was turned on.
			g := h.globexSession
			return func() response {
				return h.do("POST", "/users/exchange-session", map[string]string{"organization_id": "acme"}, "Authorization", "Bearer "+g)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := newProbeStore()
			h := newFlowHarnessOn(t, st)
			h.addMember("demo/acme", "alice@acme.com", "owner", alicePW)
			h.addMember("demo/globex", "alice@acme.com", "viewer", "")
			h.globexSession = h.login("alice@acme.com", alicePW, "globex").str("access_token")
			h.enableTOTP(h.login("alice@acme.com", alicePW, "acme").str("access_token"))
			try := tc.start(h)

			st.setFail(store.KindCredentials, true)
			r := try()
			if r.status != 503 || r.errCode() != "store_unavailable" || r.str("access_token") != "" || r.header.Get("Retry-After") == "" {
				t.Fatalf("MFA unknown: %d %s, want 503 store_unavailable and no session", r.status, r.raw)
			}
			st.setFail(store.KindCredentials, false)
			r = try()
			if r.status != 200 || r.body["mfa_required"] != true || r.str("access_token") != "" {
				t.Fatalf("once the store answers: %d %s, want the second-factor step", r.status, r.raw)
			}
		})
	}
}

// TestSessionLivenessFailsClosed: when the store cannot read a session or
// its family, /verify and /auth/me answer 503, never 200.
func TestSessionLivenessFailsClosed(t *testing.T) {
	for _, kind := range []string{store.KindSession, store.KindFamily} {
		t.Run(kind, func(t *testing.T) {
			st := newProbeStore()
			h := newHarness(t, st)
			h.addMember("demo/acme", "alice@acme.com", "owner", alicePW)
			tk := tokensOf(h.login("alice@acme.com", alicePW, "acme"))
			st.setFail(kind, true)
			for _, p := range []string{"/verify", "/auth/me"} {
				if r := h.do("GET", p, nil, "Authorization", "Bearer "+tk.access); r.status != 503 {
					t.Errorf("%s with the %s record unreadable: %d %s, want 503", p, kind, r.status, r.raw)
				}
			}
			if r := h.do("POST", "/auth/refresh", map[string]string{"refresh_token": tk.refresh}); r.status != 503 {
				t.Errorf("refresh with the %s record unreadable: %d %s, want 503", kind, r.status, r.raw)
			}
			st.setFail(kind, false)
			h.assertLive(t, "once the store answers", tk)
		})
	}
}

// TestMalformedTokenIDsNeverReachTheStore: tokens and IDs the server
// could not have made are 401 before any store call.
func TestMalformedTokenIDsNeverReachTheStore(t *testing.T) {
	st := newProbeStore()
	h := newFlowHarnessOn(t, st)
	h.addMember("demo/acme", "alice@acme.com", "owner", alicePW)
	legit := tokensOf(h.login("alice@acme.com", alicePW, "acme"))
	secret := strings.Repeat("A", 43)
	ids := map[string]string{
		"slash":           "aaaaaaaaa/aaaaaaaaaa",
		"percent":         "aaaaaaaaa%2faaaaaaaa",
		"upper case":      "AAAAAAAAAAAAAAAAAAAA",
		"dot segments":    "../../../../aaaaaaaa",
		"non-ASCII":       "aaaaaaaaaaaaaaaaaé",
		"too short":       "aaaa",
		"outside base32":  "aaaaaaaaaaaaaaaaaa01",
		"secret bad char": "aaaaaaaaaaaaaaaaaaaa",
	}
	for name, id := range ids {
		sec := secret
		if name == "secret bad char" {
			sec = strings.Repeat("A", 42) + "/"
		}
		requests := []struct {
			path string
			body map[string]string
		}{
			{"/auth/refresh", map[string]string{"refresh_token": "rt_" + id + "." + sec}},
			{"/auth/verify-email", map[string]string{"token": "ve_" + id + "." + sec}},
			{"/users/authenticate-magic-link", map[string]string{"token": "ml_" + id + "." + sec}},
			{"/auth/reset-password", map[string]string{"token": "pr_" + id + "." + sec, "password": "a brand new passphrase"}},
			{"/users/exchange-session", map[string]string{"intermediate_session_token": "ist_" + id + "." + sec, "organization_id": "acme"}},
			{"/auth/2fa/verify", map[string]string{"intermediate_session_token": "ist_" + id + "." + sec, "code": "123456"}},
			{"/auth/2fa/setup", map[string]string{"intermediate_session_token": "ist_" + id + "." + sec}},
		}
		for _, rq := range requests {
			t.Run(name+" "+rq.path, func(t *testing.T) {
				before := st.count()
				r := h.do("POST", rq.path, rq.body)
				if r.status != 401 {
					t.Errorf("%d %s, want 401", r.status, r.raw)
				}
				if n := st.count() - before; n != 0 {
					t.Errorf("%d store calls for a token the server never made", n)
				}
			})
		}
		if name == "secret bad char" {
			continue // its ID is well formed
		}
		t.Run(name+" in a signed token's sid", func(t *testing.T) {
			forged := h.resign(t, legit.access, "demo/acme", func(c *token.Claims) { c.SessionID = "ses_" + id })
			before := st.count()
			if r := h.do("GET", "/verify", nil, "Authorization", "Bearer "+forged); r.status != 401 {
				t.Errorf("%d %s, want 401", r.status, r.raw)
			}
			if n := st.count() - before; n != 0 {
				t.Errorf("%d store calls for a session ID the server never made", n)
			}
		})
	}
	h.assertLive(t, "alice's own session", legit)
}
