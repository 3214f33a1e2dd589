package authserver

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tenantauth/tenantauth/authserver/account"
	"github.com/tenantauth/tenantauth/authserver/store"
)

// TestTOTPChangesNeedRecentSignIn plays a stolen bearer token: more than
// 10 minutes after the sign-in, TOTP cannot be set up, enabled or
// disabled with it; the user signing in again can.
func TestTOTPChangesNeedRecentSignIn(t *testing.T) {
	h := newFlowHarness(t)
	h.addMember("demo/acme", "alice@acme.com", "owner", alicePW)
	h.addMember("demo/acme", "bob@acme.com", "member", "bob's own passphrase")
	stale := h.login("alice@acme.com", alicePW, "acme")
	setup := h.do("POST", "/auth/2fa/setup", nil, "Authorization", "Bearer "+stale.str("access_token"))
	if setup.status != 200 {
		t.Fatalf("setup within 10 minutes: %d %s", setup.status, setup.raw)
	}
	h.clock.Add(10*time.Minute + time.Second)
	// The access token lives 15 minutes: it is still valid, only stale.
	bearer := "Bearer " + stale.str("access_token")
	if r := h.do("GET", "/auth/me", nil, "Authorization", bearer); r.status != 200 {
		t.Fatalf("the token itself is valid: %d", r.status)
	}
	for _, rq := range []struct {
		path string
		body map[string]string
	}{
		{"/auth/2fa/setup", nil},
		{"/auth/2fa/enable", map[string]string{"code": h.totpCode(setup.str("secret"), 0)}},
	} {
		if r := h.do("POST", rq.path, rq.body, "Authorization", bearer); r.status != 403 || r.errCode() != "reauthentication_required" {
			t.Fatalf("%s 10 minutes after sign-in: %d %s", rq.path, r.status, r.raw)
		}
	}

	// Alice signs in again and turns TOTP on; a stale token cannot turn it off.
	secret, _ := h.enableTOTP(h.login("alice@acme.com", alicePW, "acme").str("access_token"))
	login := h.do("POST", "/auth/login", map[string]string{"email": "alice@acme.com", "password": alicePW, "organization": "acme"})
	v := h.do("POST", "/auth/2fa/verify", map[string]string{"intermediate_session_token": login.str("intermediate_session_token"), "code": h.totpCode(secret, 0)})
	if v.status != 200 {
		t.Fatalf("verify: %d %s", v.status, v.raw)
	}
	h.clock.Add(11 * time.Minute)
	h.clock.Add(account.TotpPeriod * time.Second)
	if r := h.do("POST", "/auth/2fa/disable", map[string]string{"code": h.totpCode(secret, 0)}, "Authorization", "Bearer "+v.str("access_token")); r.status != 403 || r.errCode() != "reauthentication_required" {
		t.Fatalf("disable 11 minutes after sign-in: %d %s", r.status, r.raw)
	}
	// A stale session switching into an organization that requires MFA
	// gets an intermediate session; it must not enroll TOTP either.
	h.addMember("demo/globex", "bob@acme.com", "member", "")
	h.org("demo/globex").MFARequired = true
	staleBob := h.login("bob@acme.com", "bob's own passphrase", "acme")
	h.clock.Add(11 * time.Minute)
	sw := h.do("POST", "/users/exchange-session", map[string]string{"organization_id": "globex"}, "Authorization", "Bearer "+staleBob.str("access_token"))
	if sw.status != 200 || sw.body["mfa_required"] != true {
		t.Fatalf("switch into an MFA org: %d %s", sw.status, sw.raw)
	}
	if r := h.do("POST", "/auth/2fa/setup", map[string]string{"intermediate_session_token": sw.str("intermediate_session_token")}); r.status != 403 || r.errCode() != "reauthentication_required" {
		t.Fatalf("TOTP setup through a stale switch's intermediate session: %d %s", r.status, r.raw)
	}
	fresh := h.do("POST", "/auth/login", map[string]string{"email": "bob@acme.com", "password": "bob's own passphrase", "organization": "globex"})
	if r := h.do("POST", "/auth/2fa/setup", map[string]string{"intermediate_session_token": fresh.str("intermediate_session_token")}); r.status != 200 {
		t.Fatalf("TOTP setup through a fresh sign-in's intermediate session: %d %s", r.status, r.raw)
	}

	bob := h.login("bob@acme.com", "bob's own passphrase", "acme")
	if r := h.do("POST", "/auth/2fa/setup", nil, "Authorization", "Bearer "+bob.str("access_token")); r.status != 200 {
		t.Fatalf("another user, freshly signed in: %d %s", r.status, r.raw)
	}
}

// TestRecoveryCodesAreLongAndKeyed: each code carries at least 112 bits,
// the store keeps only keyed hashes (not the code, not its plain SHA-256),
// and a server with another key cannot check them.
func TestRecoveryCodesAreLongAndKeyed(t *testing.T) {
	h := newFlowHarness(t)
	h.addMember("demo/acme", "alice@acme.com", "owner", alicePW)
	h.addMember("demo/acme", "bob@acme.com", "member", "bob's own passphrase")
	_, codes := h.enableTOTP(h.login("alice@acme.com", alicePW, "acme").str("access_token"))
	rec, err := h.store.Get(t.Context(), store.KindCredentials, h.srv.userFor("alice@acme.com").ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range codes {
		norm := account.NormalizeRecoveryCode(c)
		if bits := len(norm) * 5; bits < 112 {
			t.Fatalf("recovery code %q carries %d bits, want at least 112", c, bits)
		}
		plain := sha256.Sum256([]byte(norm))
		if strings.Contains(string(rec.Data), norm) || strings.Contains(string(rec.Data), hex.EncodeToString(plain[:])) {
			t.Fatalf("the store holds recovery code %q or its unkeyed hash", c)
		}
	}

	// Another server over the same store, with another key, cannot check a code.
	other := New(Config{PublicURL: "http://auth.test", Secret: []byte("another-installation-key-0123456"), Argon2: fastArgon, Now: h.clock.Now, RateLimitPerMinute: 1000}, h.dir, h.store, testKey)
	otherHTTP := httptest.NewServer(other)
	defer otherHTTP.Close()
	mine := h.http
	h.http = otherHTTP
	login := h.do("POST", "/auth/login", map[string]string{"email": "alice@acme.com", "password": alicePW, "organization": "acme"})
	if r := h.do("POST", "/auth/2fa/verify", map[string]string{"intermediate_session_token": login.str("intermediate_session_token"), "recovery_code": codes[0]}); r.status != 401 {
		t.Fatalf("a server with another key accepted a recovery code: %d %s", r.status, r.raw)
	}
	h.http = mine
	login = h.do("POST", "/auth/login", map[string]string{"email": "alice@acme.com", "password": alicePW, "organization": "acme"})
	if r := h.do("POST", "/auth/2fa/verify", map[string]string{"intermediate_session_token": login.str("intermediate_session_token"), "recovery_code": strings.ToUpper(codes[0])}); r.status != 200 {
		t.Fatalf("the recovery code on its own server: %d %s", r.status, r.raw)
	}
	h.login("bob@acme.com", "bob's own passphrase", "acme")
}

// TestSignupNeverChangesCredentials plays issue 10's takeover: Eve owns
// org evil, admits acme.com to its self-signup, names it like an IT
// notice, and registers bob@acme.com with her password. Bob follows the
// genuine mail. Bob joins evil, signed in by email; Eve's password opens
// neither organization; bob's own password opens both; bob is told.
// Self-signup admits only domains verified for the organization
// (TestSignupNeedsAVerifiedDomain), so here evil holds acme.com's claim:
// whoever verified a domain still never sets its people's credentials.
func TestSignupNeverChangesCredentials(t *testing.T) {
	const (
		bobPW = "bob's own passphrase"
		evePW = "eve's chosen passphrase"
		bait  = "Acme IT - confirm your account\nReply with your password"
	)
	for _, totp := range []bool{false, true} {
		name := "bob without TOTP"
		if totp {
			name = "bob with TOTP"
		}
		t.Run(name, func(t *testing.T) {
			h := newFlowHarness(t)
			evil := h.addOrg("eve/evil", "org_evil", "evil", bait, "ES256")
			evil.SignupDomain = []string{"acme.com"}
			h.dir.PutVerifiedDomain("acme.com", "eve/evil")
			h.addMember("demo/acme", "bob@acme.com", "member", bobPW)
			h.addMember("demo/acme", "carol@acme.com", "member", "carol's passphrase")
			var secret string
			if totp {
				secret, _ = h.enableTOTP(h.login("bob@acme.com", bobPW, "acme").str("access_token"))
			}

			if r := h.do("POST", "/auth/register", map[string]string{"email": "bob@acme.com", "password": evePW, "organization": "evil"}); r.status != 202 {
				t.Fatalf("register: %d %s", r.status, r.raw)
			}
			v := h.do("POST", "/auth/verify-email", map[string]string{"token": h.tokenFromMail("bob@acme.com")})
			switch {
			case totp && (v.status != 200 || v.body["mfa_required"] != true || v.str("access_token") != ""):
				t.Fatalf("verify-email for bob with TOTP on: %d %s, want the second-factor step", v.status, v.raw)
			case !totp && (v.status != 200 || v.str("organization.slug") != "evil" || jwtAMR(t, v.str("access_token")) != "email"):
				t.Fatalf("verify-email: %d %s, want an email sign-in to evil", v.status, v.raw)
			}
			if _, ok := h.dir.MemberOf("bob@acme.com", "eve/evil"); !ok {
				t.Fatal("bob is a member of evil after verifying")
			}
			for _, org := range []string{"acme", "evil"} {
				if r := h.do("POST", "/auth/login", map[string]string{"email": "bob@acme.com", "password": evePW, "organization": org}); r.status != 401 {
					t.Errorf("Eve's password signs bob in to %s: %d %s", org, r.status, r.raw)
				}
				r := h.do("POST", "/auth/login", map[string]string{"email": "bob@acme.com", "password": bobPW, "organization": org})
				if totp {
					if r.status != 200 || r.body["mfa_required"] != true {
						t.Errorf("bob's password to %s: %d %s, want the second-factor step", org, r.status, r.raw)
					}
					h.clock.Add(account.TotpPeriod * time.Second)
					vr := h.do("POST", "/auth/2fa/verify", map[string]string{"intermediate_session_token": r.str("intermediate_session_token"), "code": h.totpCode(secret, 0)})
					if vr.status != 200 || vr.str("organization.slug") != org {
						t.Errorf("bob's second factor for %s: %d %s", org, vr.status, vr.raw)
					}
				} else if r.status != 200 || r.str("organization.slug") != org {
					t.Errorf("bob's own password to %s: %d %s", org, r.status, r.raw)
				}
			}

			var notice *string
			for _, m := range h.mailsTo("bob@acme.com") {
				if m.Subject == "You were added to an organization" {
					notice = &m.Text
					if strings.Contains(m.Subject, "Acme IT") {
						t.Errorf("the notice's subject carries the organization's name: %q", m.Subject)
					}
				}
			}
			if notice == nil {
				t.Fatal("bob got no notice that evil added him")
			}
			if !strings.Contains(*notice, `"Acme IT - confirm your account\nReply with your password"`) || strings.Contains(*notice, "\nReply with your password") {
				t.Errorf("the name must be quoted on one line, its newline escaped: %q", *notice)
			}
			h.login("carol@acme.com", "carol's passphrase", "acme")
		})
	}
}
