package authserver

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tenantauth/tenantauth/authserver/token"
)

// tokens are one session's access and refresh tokens.
type tokens struct{ access, refresh, sid string }

func tokensOf(r response) tokens {
	return tokens{access: r.str("access_token"), refresh: r.str("refresh_token"), sid: r.str("session.id")}
}

// switchTo switches organizations with a live session's bearer token.
func (h *harness) switchTo(access, org string) response {
	h.t.Helper()
	r := h.do("POST", "/users/exchange-session", map[string]string{"organization_id": org}, "Authorization", "Bearer "+access)
	if r.status != http.StatusOK || r.str("access_token") == "" {
		h.t.Fatalf("switch to %s: %d %s", org, r.status, r.raw)
	}
	return r
}

// assertDead checks that a session's access token is refused by /verify
// and /auth/me, and its refresh token by /auth/refresh.
func (h *harness) assertDead(t *testing.T, name string, tk tokens) {
	t.Helper()
	if r := h.do("GET", "/verify", nil, "Authorization", "Bearer "+tk.access); r.status != 401 {
		t.Errorf("%s: /verify answers %d %s, want 401", name, r.status, r.raw)
	}
	if r := h.do("GET", "/auth/me", nil, "Authorization", "Bearer "+tk.access); r.status != 401 {
		t.Errorf("%s: /auth/me answers %d %s, want 401", name, r.status, r.raw)
	}
	if r := h.do("POST", "/auth/refresh", map[string]string{"refresh_token": tk.refresh}); r.status != 401 {
		t.Errorf("%s: refresh answers %d %s, want 401", name, r.status, r.raw)
	}
}

// assertLive checks that a session works: /verify, /auth/me and one
// refresh, whose new tokens it returns.
func (h *harness) assertLive(t *testing.T, name string, tk tokens) tokens {
	t.Helper()
	if r := h.do("GET", "/verify", nil, "Authorization", "Bearer "+tk.access); r.status != 200 {
		t.Fatalf("%s: /verify answers %d %s, want 200", name, r.status, r.raw)
	}
	if r := h.do("GET", "/auth/me", nil, "Authorization", "Bearer "+tk.access); r.status != 200 {
		t.Fatalf("%s: /auth/me answers %d %s, want 200", name, r.status, r.raw)
	}
	r := h.do("POST", "/auth/refresh", map[string]string{"refresh_token": tk.refresh})
	if r.status != 200 {
		t.Fatalf("%s: refresh answers %d %s, want 200", name, r.status, r.raw)
	}
	return tokensOf(r)
}

// TestSwitchStaysInFamily plays issue 10's "session escape by switching":
// a session switched to another organization (or to the same one) must
// end with the session it came from, whichever way that ends.
func TestSwitchStaysInFamily(t *testing.T) {
	tests := []struct {
		name string
		// end ends the family, given the source and switched sessions.
		end func(h *flowHarness, src, sw tokens)
	}{
		{"logout of the source", func(h *flowHarness, src, _ tokens) {
			if r := h.do("POST", "/auth/logout", nil, "Authorization", "Bearer "+src.access); r.status != 204 {
				h.t.Fatalf("logout: %d %s", r.status, r.raw)
			}
		}},
		{"logout of the switched session", func(h *flowHarness, _, sw tokens) {
			if r := h.do("POST", "/auth/logout", nil, "Authorization", "Bearer "+sw.access); r.status != 204 {
				h.t.Fatalf("logout: %d %s", r.status, r.raw)
			}
		}},
		{"reuse of the source's spent refresh token", func(h *flowHarness, src, _ tokens) {
			if r := h.do("POST", "/auth/refresh", map[string]string{"refresh_token": src.refresh}); r.status != 200 {
				h.t.Fatalf("refresh: %d %s", r.status, r.raw)
			}
			h.clock.Add(10 * time.Second) // past the retry grace
			if r := h.do("POST", "/auth/refresh", map[string]string{"refresh_token": src.refresh}); r.errCode() != "refresh_token_reused" {
				h.t.Fatalf("reuse: %d %s", r.status, r.raw)
			}
		}},
		{"reuse of the switched session's spent refresh token", func(h *flowHarness, _, sw tokens) {
			if r := h.do("POST", "/auth/refresh", map[string]string{"refresh_token": sw.refresh}); r.status != 200 {
				h.t.Fatalf("refresh: %d %s", r.status, r.raw)
			}
			h.clock.Add(10 * time.Second)
			if r := h.do("POST", "/auth/refresh", map[string]string{"refresh_token": sw.refresh}); r.errCode() != "refresh_token_reused" {
				h.t.Fatalf("reuse: %d %s", r.status, r.raw)
			}
		}},
		{"password reset", func(h *flowHarness, _, _ tokens) {
			h.do("POST", "/auth/forgot-password", map[string]string{"email": "alice@acme.com"})
			r := h.do("POST", "/auth/reset-password", map[string]string{"token": h.tokenFromMail("alice@acme.com"), "password": "a brand new passphrase"})
			if r.status != 204 {
				h.t.Fatalf("reset: %d %s", r.status, r.raw)
			}
		}},
	}
	for _, tc := range tests {
		for _, target := range []string{"globex", "acme"} {
			t.Run(tc.name+" (switch to "+target+")", func(t *testing.T) {
				h := newFlowHarness(t)
				h.addMember("demo/acme", "alice@acme.com", "owner", alicePW)
				h.addMember("demo/globex", "alice@acme.com", "viewer", "")
				h.addMember("demo/acme", "bob@acme.com", "member", "bob's own passphrase")
				src := tokensOf(h.login("alice@acme.com", alicePW, "acme"))
				sw := tokensOf(h.switchTo(src.access, target))
				if sw.sid == src.sid {
					t.Fatalf("a switch makes a new session")
				}
				other := tokensOf(h.login("alice@acme.com", alicePW, "acme")) // another sign-in: another family
				bob := tokensOf(h.login("bob@acme.com", "bob's own passphrase", "acme"))

				tc.end(h, src, sw)
				h.assertDead(t, "source", src)
				h.assertDead(t, "switched", sw)
				h.assertLive(t, "bob, another user", bob)
				if tc.name != "password reset" {
					h.assertLive(t, "alice's other sign-in", other)
				}
			})
		}
	}
}

// TestSwitchTwiceStaysInFamily switches acme → globex → acme: ending the
// last ends the first.
func TestSwitchTwiceStaysInFamily(t *testing.T) {
	h := newHarness(t, nil)
	h.addMember("demo/acme", "alice@acme.com", "owner", alicePW)
	h.addMember("demo/globex", "alice@acme.com", "viewer", "")
	first := tokensOf(h.login("alice@acme.com", alicePW, "acme"))
	second := tokensOf(h.switchTo(first.access, "globex"))
	third := tokensOf(h.switchTo(second.access, "acme"))
	if jwtAMR(t, third.access) != "pwd" {
		t.Fatalf("amr carried over: %q", jwtAMR(t, third.access))
	}
	other := tokensOf(h.login("alice@acme.com", alicePW, "acme"))
	if r := h.do("POST", "/auth/logout", nil, "Authorization", "Bearer "+third.access); r.status != 204 {
		t.Fatalf("logout: %d %s", r.status, r.raw)
	}
	for i, tk := range []tokens{first, second, third} {
		h.assertDead(t, []string{"first", "second", "third"}[i], tk)
	}
	h.assertLive(t, "another sign-in", other)
}

// TestSwitchKeepsSignInTimeAndAbsoluteExpiry: a session switched to late
// in a sign-in's life dies with the sign-in's absolute expiry (72h in the
// harness), and counts as signed in when the family did.
func TestSwitchKeepsSignInTimeAndAbsoluteExpiry(t *testing.T) {
	h := newFlowHarness(t)
	h.addMember("demo/acme", "alice@acme.com", "owner", alicePW)
	h.addMember("demo/globex", "alice@acme.com", "viewer", "")
	src := tokensOf(h.login("alice@acme.com", alicePW, "acme"))
	signIn := h.clock.Now()
	for range 3 { // keep the source alive past 60h: the idle TTL is 24h
		h.clock.Add(20 * time.Hour)
		r := h.do("POST", "/auth/refresh", map[string]string{"refresh_token": src.refresh})
		if r.status != 200 {
			t.Fatalf("refresh the source: %d %s", r.status, r.raw)
		}
		src = tokensOf(r)
	}
	sw := h.switchTo(src.access, "globex")
	exp, err := time.Parse(time.RFC3339, sw.str("session.expires_at"))
	if err != nil || exp.After(signIn.Add(72*time.Hour)) {
		t.Fatalf("switched access token expires %v, after the sign-in's absolute expiry %v", exp, signIn.Add(72*time.Hour))
	}
	if jwtAMR(t, sw.str("access_token")) != "pwd" {
		t.Fatalf("amr: %q", jwtAMR(t, sw.str("access_token")))
	}
	// Signed in 60h ago: too long for a sensitive change.
	if r := h.do("POST", "/auth/2fa/setup", nil, "Authorization", "Bearer "+sw.str("access_token")); r.status != 403 || r.errCode() != "reauthentication_required" {
		t.Fatalf("TOTP setup from a session switched to 60h after sign-in: %d %s", r.status, r.raw)
	}
	rt := sw.str("refresh_token")
	h.clock.Add(11 * time.Hour) // 71h
	r := h.do("POST", "/auth/refresh", map[string]string{"refresh_token": rt})
	if r.status != 200 {
		t.Fatalf("inside the family's lifetime: %d %s", r.status, r.raw)
	}
	h.clock.Add(2 * time.Hour) // 73h: past the sign-in's absolute expiry
	if r := h.do("POST", "/auth/refresh", map[string]string{"refresh_token": r.str("refresh_token")}); r.status != 401 || r.errCode() != "refresh_token_expired" {
		t.Fatalf("a switched session outlives its sign-in: %d %s", r.status, r.raw)
	}
	fresh := tokensOf(h.login("alice@acme.com", alicePW, "globex"))
	h.assertLive(t, "a new sign-in", fresh)
}

// TestLeakedAccessTokenCannotBecomeLongerLived: an attacker holding only a
// victim's 15-minute access token switches with it. What they get must
// end when the victim logs out, and never outlive the victim's sign-in.
func TestLeakedAccessTokenCannotBecomeLongerLived(t *testing.T) {
	t.Run("the victim logs out", func(t *testing.T) {
		h := newHarness(t, nil)
		h.addMember("demo/acme", "alice@acme.com", "owner", alicePW)
		victim := tokensOf(h.login("alice@acme.com", alicePW, "acme"))
		stolen := tokensOf(h.switchTo(victim.access, "acme"))
		if r := h.do("POST", "/auth/logout", nil, "Authorization", "Bearer "+victim.access); r.status != 204 {
			t.Fatalf("victim logout: %d", r.status)
		}
		h.assertDead(t, "the attacker's switched session", stolen)
		h.assertLive(t, "the victim signing in again", tokensOf(h.login("alice@acme.com", alicePW, "acme")))
	})
	t.Run("the attacker keeps refreshing", func(t *testing.T) {
		h := newHarness(t, nil)
		h.addMember("demo/acme", "alice@acme.com", "owner", alicePW)
		victim := tokensOf(h.login("alice@acme.com", alicePW, "acme"))
		h.clock.Add(10 * time.Minute)
		rt := h.switchTo(victim.access, "acme").str("refresh_token")
		for range 3 { // 60h10m
			h.clock.Add(20 * time.Hour)
			r := h.do("POST", "/auth/refresh", map[string]string{"refresh_token": rt})
			if r.status != 200 {
				t.Fatalf("refresh inside the victim's sign-in: %d %s", r.status, r.raw)
			}
			rt = r.str("refresh_token")
		}
		h.clock.Add(12 * time.Hour) // 72h10m: past the victim's absolute expiry
		if r := h.do("POST", "/auth/refresh", map[string]string{"refresh_token": rt}); r.status != 401 {
			t.Fatalf("the stolen session outlives the sign-in it came from: %d %s", r.status, r.raw)
		}
		h.assertLive(t, "the victim signing in again", tokensOf(h.login("alice@acme.com", alicePW, "acme")))
	})
}

// TestSessionMustMatchToken: a token with a valid signature that names
// another user's live session, or the user's session in another
// organization, is refused everywhere a session is looked up, and does
// not touch the session it names.
func TestSessionMustMatchToken(t *testing.T) {
	h := newHarness(t, nil)
	h.addMember("demo/acme", "alice@acme.com", "owner", alicePW)
	h.addMember("demo/globex", "alice@acme.com", "viewer", "")
	h.addMember("demo/acme", "bob@acme.com", "member", "bob's own passphrase")
	alice := tokensOf(h.login("alice@acme.com", alicePW, "acme"))
	aliceGlobex := tokensOf(h.login("alice@acme.com", alicePW, "globex"))
	bob := tokensOf(h.login("bob@acme.com", "bob's own passphrase", "acme"))

	tests := []struct{ name, sid string }{
		{"another user's live session", bob.sid},
		{"the user's session in another organization", aliceGlobex.sid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			forged := h.resign(t, alice.access, "demo/acme", func(c *token.Claims) { c.SessionID = tc.sid })
			bearer := "Bearer " + forged
			for _, req := range []struct{ method, path string }{
				{"GET", "/verify"}, {"GET", "/auth/me"}, {"POST", "/auth/logout"},
			} {
				if r := h.do(req.method, req.path, nil, "Authorization", bearer); r.status != 401 {
					t.Errorf("%s %s: %d %s, want 401", req.method, req.path, r.status, r.raw)
				}
			}
			if r := h.do("POST", "/users/exchange-session", map[string]string{"organization_id": "acme"}, "Authorization", bearer); r.status != 401 {
				t.Errorf("switch: %d %s, want 401", r.status, r.raw)
			}
		})
	}
	bob = h.assertLive(t, "bob, whose session was named", bob)
	h.assertLive(t, "alice's globex session, which was named", aliceGlobex)
	h.assertLive(t, "alice's own session", alice)
}

// resign re-signs token's claims, changed by mutate, with the active key
// of orgRef: a token only a holder of the signing key could make.
func (h *harness) resign(t *testing.T, raw, orgRef string, mutate func(*token.Claims)) string {
	t.Helper()
	_, claims, _, _, err := token.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	mutate(&claims)
	ks, _ := h.dir.Keys(orgRef)
	out, err := token.Sign(&claims, ks.Active(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(out, ".") != 2 {
		t.Fatalf("not a JWT: %q", out)
	}
	return out
}
