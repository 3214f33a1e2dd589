package authserver

import (
	"bytes"
	"encoding/base64"
	"image/png"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantauth/tenantauth/authserver/account"
	"github.com/tenantauth/tenantauth/authserver/session"
)

const alicePW = "correct horse battery"

func TestTOTPSetupEnableVerify(t *testing.T) {
	h := newFlowHarness(t)
	h.addMember("demo/acme", "alice@acme.com", "owner", alicePW)
	s := h.login("alice@acme.com", alicePW, "acme")
	bearer := "Bearer " + s.str("access_token")

	setup := h.do("POST", "/auth/2fa/setup", nil, "Authorization", bearer)
	secret := setup.str("secret")
	u, err := url.Parse(setup.str("otpauth_url"))
	if setup.status != 200 || len(secret) != 32 || err != nil || u.Scheme != "otpauth" || u.Host != "totp" ||
		u.Query().Get("secret") != secret || u.Query().Get("issuer") != "auth.test" || !strings.Contains(u.Path, "alice@acme.com") {
		t.Fatalf("setup: %d %s", setup.status, setup.raw)
	}
	qr, ok := strings.CutPrefix(setup.str("qr_code"), "data:image/png;base64,")
	img, _ := base64.StdEncoding.DecodeString(qr)
	if _, err := png.Decode(bytes.NewReader(img)); !ok || err != nil {
		t.Fatalf("qr_code is not a PNG data URL: %v", err)
	}
	if r := h.do("POST", "/auth/2fa/enable", map[string]string{"code": "000000"}, "Authorization", bearer); r.status != 400 || r.errCode() != "invalid_code" {
		t.Fatalf("wrong code: %d %s", r.status, r.raw)
	}
	if r := h.do("POST", "/auth/2fa/enable", map[string]string{"code": h.totpCode(secret, 0)}, "Cookie", "tenantauth_session="+s.str("access_token")); r.status != 403 {
		t.Fatalf("cookie without CSRF: %d %s", r.status, r.raw)
	}
	en := h.do("POST", "/auth/2fa/enable", map[string]string{"code": h.totpCode(secret, 0)}, "Authorization", bearer)
	codes, _ := en.body["recovery_codes"].([]any)
	seen := map[any]bool{}
	for _, c := range codes {
		seen[c] = true
	}
	if en.status != 200 || len(seen) != 10 {
		t.Fatalf("enable: %d %s", en.status, en.raw)
	}
	if r := h.do("POST", "/auth/2fa/setup", nil, "Authorization", bearer); r.status != 409 || r.errCode() != "totp_already_enabled" {
		t.Fatalf("setup while on: %d %s", r.status, r.raw)
	}

	login := h.do("POST", "/auth/login", map[string]string{"email": "alice@acme.com", "password": alicePW})
	ist := login.str("intermediate_session_token")
	if login.status != 200 || login.body["mfa_required"] != true || ist == "" || login.str("access_token") != "" {
		t.Fatalf("login with TOTP on: %d %s", login.status, login.raw)
	}
	replay := h.do("POST", "/auth/2fa/verify", map[string]string{"intermediate_session_token": ist, "code": h.totpCode(secret, 0)})
	if replay.status != 401 || replay.errCode() != "invalid_code" || !strings.Contains(replay.str("error.message"), "already used") {
		t.Fatalf("the code used to enable, replayed: %d %s", replay.status, replay.raw)
	}
	h.clock.Add(account.TotpPeriod * time.Second)
	v := h.do("POST", "/auth/2fa/verify", map[string]string{"intermediate_session_token": ist, "code": h.totpCode(secret, 0)})
	if v.status != 200 || v.str("organization.slug") != "acme" || jwtAMR(t, v.str("access_token")) != "pwd,otp" {
		t.Fatalf("verify: %d %s", v.status, v.raw)
	}
	if r := h.do("POST", "/auth/2fa/verify", map[string]string{"intermediate_session_token": ist, "code": h.totpCode(secret, 1)}); r.status != 401 || r.errCode() != "token_used" {
		t.Fatalf("intermediate reused: %d %s", r.status, r.raw)
	}
}

func TestTOTPRecoveryCodesAndSkew(t *testing.T) {
	h := newFlowHarness(t)
	h.addMember("demo/acme", "alice@acme.com", "owner", alicePW)
	secret, codes := h.enableTOTP(h.login("alice@acme.com", alicePW, "acme").str("access_token"))
	tests := []struct {
		name   string
		body   func() map[string]string
		status int
	}{
		{"recovery code", func() map[string]string { return map[string]string{"recovery_code": codes[3]} }, 200},
		{"recovery code typed loosely", func() map[string]string {
			return map[string]string{"recovery_code": " " + strings.ToUpper(strings.ReplaceAll(codes[4], "-", " "))}
		}, 200},
		{"recovery code used twice", func() map[string]string { return map[string]string{"recovery_code": codes[3]} }, 401},
		{"unknown recovery code", func() map[string]string { return map[string]string{"recovery_code": "aaaaa-aaaaa"} }, 401},
		{"code of the previous step", func() map[string]string {
			h.clock.Add(time.Minute)
			return map[string]string{"code": h.totpCode(secret, -1)}
		}, 200},
		{"code of the next step", func() map[string]string { return map[string]string{"code": h.totpCode(secret, 1)} }, 200},
		{"code two steps ahead", func() map[string]string {
			h.clock.Add(time.Minute)
			return map[string]string{"code": h.totpCode(secret, 2)}
		}, 401},
		{"neither code nor recovery code", func() map[string]string { return map[string]string{} }, 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ist := h.do("POST", "/auth/login", map[string]string{"email": "alice@acme.com", "password": alicePW}).str("intermediate_session_token")
			body := tc.body()
			body["intermediate_session_token"] = ist
			if r := h.do("POST", "/auth/2fa/verify", body); r.status != tc.status {
				t.Fatalf("%d %s", r.status, r.raw)
			}
		})
	}
}

func TestTOTPWrongCodesSpendTheSignIn(t *testing.T) {
	h := newFlowHarness(t)
	h.addMember("demo/acme", "alice@acme.com", "owner", alicePW)
	secret, _ := h.enableTOTP(h.login("alice@acme.com", alicePW, "acme").str("access_token"))
	ist := h.do("POST", "/auth/login", map[string]string{"email": "alice@acme.com", "password": alicePW}).str("intermediate_session_token")
	for i := 1; i <= session.MaxMFAFailures; i++ {
		r := h.do("POST", "/auth/2fa/verify", map[string]string{"intermediate_session_token": ist, "code": "123456"})
		if r.status != 401 || r.errCode() != "invalid_code" {
			t.Fatalf("wrong code %d: %d %s", i, r.status, r.raw)
		}
	}
	r := h.do("POST", "/auth/2fa/verify", map[string]string{"intermediate_session_token": ist, "code": h.totpCode(secret, 0)})
	if r.status != 401 || r.errCode() != "token_used" {
		t.Fatalf("the right code after %d wrong ones: %d %s", session.MaxMFAFailures, r.status, r.raw)
	}
}

func TestTOTPWrongCodesCountTowardRateLimit(t *testing.T) {
	h := newFlowHarness(t, func(c *Config) { c.RateLimitPerMinute = 4 })
	h.addMember("demo/acme", "alice@acme.com", "owner", alicePW)
	h.enableTOTP(h.login("alice@acme.com", alicePW, "acme").str("access_token"))
	ist := h.do("POST", "/auth/login", map[string]string{"email": "alice@acme.com", "password": alicePW}).str("intermediate_session_token")
	var statuses []int
	for range 3 {
		r := h.do("POST", "/auth/2fa/verify", map[string]string{"intermediate_session_token": ist, "code": "123456"})
		statuses = append(statuses, r.status)
		if r.status == 429 && r.header.Get("Retry-After") == "" {
			t.Fatalf("429 without Retry-After")
		}
	}
	// Four a minute per email: two wrong codes use them all up.
	if statuses[0] != 401 || statuses[1] != 401 || statuses[2] != 429 {
		t.Fatalf("statuses %v", statuses)
	}
}

func TestTOTPRequiredByOrganization(t *testing.T) {
	h := newFlowHarness(t)
	h.org("demo/acme").MFARequired = true
	h.addMember("demo/acme", "alice@acme.com", "owner", alicePW)
	h.addMember("demo/globex", "alice@acme.com", "viewer", "")

	login := h.do("POST", "/auth/login", map[string]string{"email": "alice@acme.com", "password": alicePW, "organization": "acme"})
	ist := login.str("intermediate_session_token")
	if login.status != 200 || login.body["mfa_required"] != true || ist == "" {
		t.Fatalf("login: %d %s", login.status, login.raw)
	}
	if r := h.do("POST", "/auth/2fa/verify", map[string]string{"intermediate_session_token": ist, "code": "123456"}); r.status != 400 || r.errCode() != "totp_not_enabled" {
		t.Fatalf("verify without TOTP: %d %s", r.status, r.raw)
	}
	setup := h.do("POST", "/auth/2fa/setup", map[string]string{"intermediate_session_token": ist})
	if setup.status != 200 || setup.str("secret") == "" {
		t.Fatalf("setup with the intermediate token: %d %s", setup.status, setup.raw)
	}
	en := h.do("POST", "/auth/2fa/enable", map[string]string{"intermediate_session_token": ist, "code": h.totpCode(setup.str("secret"), 0)})
	codes, _ := en.body["recovery_codes"].([]any)
	if en.status != 200 || len(codes) != 10 || en.str("organization.slug") != "acme" || en.str("access_token") == "" ||
		jwtAMR(t, en.str("access_token")) != "pwd,otp" || len(en.cookies) != 2 || en.header.Get("Content-Type") != "application/json" {
		t.Fatalf("enable with the intermediate token: %d %s", en.status, en.raw)
	}
	if r := h.do("POST", "/users/exchange-session", map[string]string{"intermediate_session_token": ist, "organization_id": "globex"}); r.status != 401 || r.errCode() != "token_used" {
		t.Fatalf("the intermediate session is spent: %d %s", r.status, r.raw)
	}
	if r := h.do("POST", "/auth/2fa/disable", map[string]string{"code": h.totpCode(setup.str("secret"), 1)}, "Authorization", "Bearer "+en.str("access_token")); r.status != 403 || r.errCode() != "mfa_required_by_organization" {
		t.Fatalf("disable where MFA is required: %d %s", r.status, r.raw)
	}

	t.Run("intermediate tokens may not set up TOTP elsewhere", func(t *testing.T) {
		h.addMember("demo/globex", "bob@globex.com", "member", alicePW)
		h.addMember("demo/acme", "bob@globex.com", "member", "")
		multi := h.do("POST", "/auth/login", map[string]string{"email": "bob@globex.com", "password": alicePW}).str("intermediate_session_token")
		if r := h.do("POST", "/auth/2fa/setup", map[string]string{"intermediate_session_token": multi}); r.status != 403 || r.errCode() != "mfa_setup_not_allowed" {
			t.Fatalf("no organization chosen: %d %s", r.status, r.raw)
		}
		if r := h.do("POST", "/auth/2fa/setup", map[string]string{"intermediate_session_token": ist}); r.status != 401 {
			t.Fatalf("spent token: %d %s", r.status, r.raw)
		}
		alice := h.do("POST", "/auth/login", map[string]string{"email": "alice@acme.com", "password": alicePW, "organization": "acme"}).str("intermediate_session_token")
		if r := h.do("POST", "/auth/2fa/setup", map[string]string{"intermediate_session_token": alice}); r.status != 403 || r.errCode() != "mfa_verify_required" {
			t.Fatalf("a user with TOTP on: %d %s", r.status, r.raw)
		}
		if r := h.do("POST", "/auth/2fa/setup", nil); r.status != 401 {
			t.Fatalf("no credential: %d %s", r.status, r.raw)
		}
	})
}

func TestTOTPVerifyBeforeChoosingOrganization(t *testing.T) {
	h := newFlowHarness(t)
	h.addMember("demo/acme", "alice@acme.com", "owner", alicePW)
	h.addMember("demo/globex", "alice@acme.com", "viewer", "")
	secret, _ := h.enableTOTP(h.login("alice@acme.com", alicePW, "acme").str("access_token"))

	login := h.do("POST", "/auth/login", map[string]string{"email": "alice@acme.com", "password": alicePW})
	ist := login.str("intermediate_session_token")
	v := h.do("POST", "/auth/2fa/verify", map[string]string{"intermediate_session_token": ist, "code": h.totpCode(secret, 0)})
	if v.status != 200 || v.str("intermediate_session_token") != ist || v.body["mfa_required"] != false || v.str("access_token") != "" {
		t.Fatalf("verify without an organization: %d %s", v.status, v.raw)
	}
	ex := h.do("POST", "/users/exchange-session", map[string]string{"intermediate_session_token": ist, "organization_id": "globex"})
	if ex.status != 200 || ex.str("organization.slug") != "globex" || jwtAMR(t, ex.str("access_token")) != "pwd,otp" {
		t.Fatalf("exchange after verify: %d %s", ex.status, ex.raw)
	}

	h.clock.Add(account.TotpPeriod * time.Second)
	login = h.do("POST", "/auth/login", map[string]string{"email": "alice@acme.com", "password": alicePW})
	ex = h.do("POST", "/users/exchange-session", map[string]string{"intermediate_session_token": login.str("intermediate_session_token"), "organization_id": "acme"})
	if ex.status != 200 || ex.body["mfa_required"] != true {
		t.Fatalf("exchange owes MFA: %d %s", ex.status, ex.raw)
	}
	v = h.do("POST", "/auth/2fa/verify", map[string]string{"intermediate_session_token": ex.str("intermediate_session_token"), "code": h.totpCode(secret, 0), "organization": "globex"})
	if v.status != 200 || v.str("organization.slug") != "globex" {
		t.Fatalf("verify naming another organization: %d %s", v.status, v.raw)
	}
}

func TestTOTPCodeUsedOnceUnderConcurrency(t *testing.T) {
	h := newFlowHarness(t)
	h.addMember("demo/acme", "alice@acme.com", "owner", alicePW)
	secret, _ := h.enableTOTP(h.login("alice@acme.com", alicePW, "acme").str("access_token"))
	ists := make([]string, 8)
	for i := range ists {
		ists[i] = h.do("POST", "/auth/login", map[string]string{"email": "alice@acme.com", "password": alicePW}).str("intermediate_session_token")
	}
	code := h.totpCode(secret, 0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for _, ist := range ists {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := h.do("POST", "/auth/2fa/verify", map[string]string{"intermediate_session_token": ist, "code": code})
			mu.Lock()
			ok += map[bool]int{true: 1}[r.status == http.StatusOK]
			mu.Unlock()
		}()
	}
	wg.Wait()
	if ok != 1 {
		t.Fatalf("%d sign-ins with one code; exactly one may succeed", ok)
	}
}

func TestTOTPDisable(t *testing.T) {
	h := newFlowHarness(t)
	h.addMember("demo/acme", "alice@acme.com", "owner", alicePW)
	s := h.login("alice@acme.com", alicePW, "acme")
	secret, _ := h.enableTOTP(s.str("access_token"))
	bearer := "Bearer " + s.str("access_token")
	tests := []struct {
		name   string
		body   map[string]string
		status int
		code   string
	}{
		{"no code", map[string]string{}, 400, "invalid_code"},
		{"wrong code", map[string]string{"code": "111111"}, 400, "invalid_code"},
		{"right code", map[string]string{"code": h.totpCode(secret, 0)}, 204, ""},
		{"already off", map[string]string{"code": h.totpCode(secret, 1)}, 400, "totp_not_enabled"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do("POST", "/auth/2fa/disable", tc.body, "Authorization", bearer)
			if r.status != tc.status || r.errCode() != tc.code {
				t.Fatalf("%d %s", r.status, r.raw)
			}
		})
	}
	h.login("alice@acme.com", alicePW, "acme") // a session again without a second factor
}

func TestTOTPAfterMagicLink(t *testing.T) {
	h := newFlowHarness(t)
	h.addMember("demo/acme", "alice@acme.com", "owner", alicePW)
	secret, _ := h.enableTOTP(h.login("alice@acme.com", alicePW, "acme").str("access_token"))
	h.do("POST", "/users/send-magic-link", map[string]string{"email_address": "alice@acme.com"})
	auth := h.do("POST", "/users/authenticate-magic-link", map[string]string{"token": h.tokenFromMail("alice@acme.com")})
	ex := h.do("POST", "/users/exchange-session", map[string]string{"intermediate_session_token": auth.str("intermediate_session_token"), "organization_id": "acme"})
	if ex.status != 200 || ex.body["mfa_required"] != true || ex.str("access_token") != "" {
		t.Fatalf("exchange of a magic-link sign-in with TOTP on: %d %s", ex.status, ex.raw)
	}
	v := h.do("POST", "/auth/2fa/verify", map[string]string{"intermediate_session_token": ex.str("intermediate_session_token"), "code": h.totpCode(secret, 0)})
	if v.status != 200 || jwtAMR(t, v.str("access_token")) != "email,otp" {
		t.Fatalf("verify: %d %s", v.status, v.raw)
	}
}
