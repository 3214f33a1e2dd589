package authserver

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tenantauth/tenantauth/authserver/account"
	"github.com/tenantauth/tenantauth/authserver/directory"
)

const goodPassword = "a fine long passphrase"

// signupHarness has acme open to self-signup from acme.com and
// partner.io, both verified for it (the operator's claims, joined with the
// live organization, as authserver/kube serves them).
func signupHarness(t *testing.T) *flowHarness {
	t.Helper()
	h := newFlowHarness(t)
	acme := h.org("demo/acme")
	acme.SignupDomain = []string{"acme.com", "@Partner.io"}
	acme.DefaultRole = "viewer"
	h.dir.PutVerifiedDomain("acme.com", "demo/acme")
	h.dir.PutVerifiedDomain("partner.io", "demo/acme")
	return h
}

func TestRegisterAndVerifyEmail(t *testing.T) {
	h := signupHarness(t)
	r := h.do("POST", "/auth/register", map[string]string{"email": "New@Acme.com", "password": goodPassword, "organization": "acme"})
	if r.status != http.StatusAccepted {
		t.Fatalf("register: %d %s", r.status, r.raw)
	}
	ms := h.mailsTo("new@acme.com")
	if len(ms) != 1 || ms[0].Subject != "Confirm your email to join Acme Inc." ||
		!strings.HasPrefix(h.lastLink("new@acme.com"), "http://auth.test/auth/verify-email?token=ve_") {
		t.Fatalf("mails %+v", ms)
	}
	if _, ok := h.dir.MemberOf("new@acme.com", "demo/acme"); ok || len(h.members.list()) != 0 {
		t.Fatalf("nothing is created before the email is verified")
	}

	// The client that registered verifies: it carries the signup cookie.
	v := h.do("POST", "/auth/verify-email", map[string]string{"token": h.tokenFromMail("new@acme.com")}, "Cookie", signupCookieOf(t, r))
	if v.status != 200 || v.str("organization.slug") != "acme" || v.str("role") != "viewer" || v.str("user.email") != "new@acme.com" ||
		v.str("user.id") != h.srv.userFor("new@acme.com").ID || len(v.cookies) != 2 {
		t.Fatalf("verify: %d %s", v.status, v.raw)
	}
	if got := h.members.list(); !slices.Equal(got, []string{"demo/acme|new@acme.com|viewer"}) {
		t.Fatalf("memberships created: %v", got)
	}
	m, ok := h.dir.MemberOf("new@acme.com", "demo/acme")
	if !ok || m.Ref != "demo/"+account.SignupMembershipName("acme", "new@acme.com") {
		t.Fatalf("the member is in the directory at once, under the Membership's name: %+v", m)
	}
	if me := h.do("GET", "/auth/me", nil, "Authorization", "Bearer "+v.str("access_token")); me.status != 200 || me.str("role") != "viewer" {
		t.Fatalf("me: %d %s", me.status, me.raw)
	}
	h.login("new@acme.com", goodPassword, "acme")
	if again := h.do("POST", "/auth/verify-email", map[string]string{"token": h.tokenFromMail("new@acme.com")}); again.status != 401 || again.errCode() != "token_used" {
		t.Fatalf("second verify: %d %s", again.status, again.raw)
	}
}

// signupCookieOf is the signup-binding cookie a register answer set.
func signupCookieOf(t *testing.T, r response) string {
	t.Helper()
	for _, c := range r.cookies {
		if c.Name == signupCookie && c.HttpOnly && c.Value != "" {
			return c.Name + "=" + c.Value
		}
	}
	t.Fatalf("register set no signup cookie: %v", r.cookies)
	return ""
}

// TestSignupPasswordNeedsTheRegisteringClient plays eve, who registers a
// stranger's address (carol has no account anywhere) with a password of
// her own and waits for carol to click the genuine mail: the password is
// discarded, so eve cannot sign in as carol; carol is signed in by email
// and can set her own password.
func TestSignupPasswordNeedsTheRegisteringClient(t *testing.T) {
	h := signupHarness(t)
	const evePW = "eve knows this passphrase"
	reg := h.do("POST", "/auth/register", map[string]string{"email": "carol@acme.com", "password": evePW, "organization": "acme"})
	if reg.status != http.StatusAccepted {
		t.Fatalf("register: %d %s", reg.status, reg.raw)
	}
	signupCookieOf(t, reg) // eve's client has it; carol's does not
	v := h.do("POST", "/auth/verify-email", map[string]string{"token": h.tokenFromMail("carol@acme.com")})
	if v.status != 200 || v.str("user.email") != "carol@acme.com" {
		t.Fatalf("carol's verify: %d %s", v.status, v.raw)
	}
	if amr := jwtAMR(t, v.str("access_token")); amr != "email" {
		t.Fatalf("carol's sign-in is an email sign-in, amr %v", amr)
	}
	if r := h.do("POST", "/auth/login", map[string]string{"email": "carol@acme.com", "password": evePW, "organization": "acme"}); r.status != 401 {
		t.Fatalf("eve's password signs in as carol: %d %s", r.status, r.raw)
	}
	// Another client's cookie is no better than none.
	reg2 := h.do("POST", "/auth/register", map[string]string{"email": "dave@acme.com", "password": evePW, "organization": "acme"})
	other := h.do("POST", "/auth/register", map[string]string{"email": "erin@acme.com", "password": goodPassword, "organization": "acme"})
	signupCookieOf(t, reg2)
	if v := h.do("POST", "/auth/verify-email", map[string]string{"token": h.tokenFromMail("dave@acme.com")}, "Cookie", signupCookieOf(t, other)); v.status != 200 {
		t.Fatalf("dave's verify: %d %s", v.status, v.raw)
	}
	if r := h.do("POST", "/auth/login", map[string]string{"email": "dave@acme.com", "password": evePW, "organization": "acme"}); r.status != 401 {
		t.Fatalf("a password verified with another client's cookie signs in: %d %s", r.status, r.raw)
	}
	// The victim keeps working: carol sets her own password by reset.
	h.do("POST", "/auth/forgot-password", map[string]string{"email": "carol@acme.com"})
	if r := h.do("POST", "/auth/reset-password", map[string]string{"token": h.tokenFromMail("carol@acme.com"), "password": goodPassword}); r.status != 204 {
		t.Fatalf("reset: %d %s", r.status, r.raw)
	}
	h.login("carol@acme.com", goodPassword, "acme")
}

func TestRegisterRevealsNothing(t *testing.T) {
	h := signupHarness(t)
	h.addMember("demo/acme", "alice@acme.com", "owner", "correct horse battery")
	h.dir.PutMember(&directory.Member{Ref: "demo/acme-dave", OrgRef: "demo/acme", Email: "dave@acme.com", Role: "member", Disabled: true})
	acme := h.org("demo/acme")
	acme.SignupDomain = append(acme.SignupDomain, "legacy.io", "globex.io")
	h.dir.PutVerifiedDomain("globex.io", "demo/globex")
	tests := []struct {
		name, email, org string
		mail             bool
	}{
		{"admitted domain", "bob@acme.com", "acme", true},
		{"admitted domain written with @ and capitals", "eve@partner.io", "org_acme", true},
		{"existing member", "alice@acme.com", "acme", false},
		{"disabled member", "dave@acme.com", "acme", false},
		{"domain not admitted", "mallory@evil.com", "acme", false},
		{"subdomain not admitted", "sub@eng.acme.com", "acme", false},
		{"listed but not verified", "ann@legacy.io", "acme", false},
		{"listed but verified for another organization", "gus@globex.io", "acme", false},
		{"organization without self-signup", "bob@acme.com", "globex", false},
		{"unknown organization", "bob@acme.com", "nope", false},
	}
	var bodies []string
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(h.mailsTo(tc.email))
			r := h.do("POST", "/auth/register", map[string]string{"email": tc.email, "password": goodPassword, "organization": tc.org})
			if r.status != http.StatusAccepted {
				t.Fatalf("%d %s", r.status, r.raw)
			}
			bodies = append(bodies, r.raw)
			if got := len(h.mailsTo(tc.email)) - before; got != map[bool]int{true: 1}[tc.mail] {
				t.Fatalf("%d mails", got)
			}
		})
	}
	for _, b := range bodies {
		if b != bodies[0] {
			t.Fatalf("answers differ: %q", bodies)
		}
	}
	// The existing member's password is untouched.
	h.login("alice@acme.com", "correct horse battery", "acme")
}

func TestPasswordRules(t *testing.T) {
	h := signupHarness(t)
	tests := []struct {
		name, password string
		ok             bool
	}{
		{"7 characters", "abcdefg", false},
		{"8 characters", "zq7#kd9!", true},
		{"8 multibyte characters", "ääääöööö", true},
		{"256 characters", strings.Repeat("x9", 128), true},
		{"257 characters", strings.Repeat("x", 257), false},
		{"common password", "iloveyou", false},
		{"common password in capitals", "PASSWORD1", false},
		{"the email itself", "alice.smith@acme.com", false},
		{"the email's local part", "Alice.Smith", false},
		{"spaces and symbols allowed", "   ~ ~ ~ ~   ", true},
		{"empty", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do("POST", "/auth/register", map[string]string{"email": "alice.smith@acme.com", "password": tc.password, "organization": "acme"})
			if tc.ok && r.status != http.StatusAccepted {
				t.Fatalf("%d %s", r.status, r.raw)
			}
			if !tc.ok && (r.status != 400 || r.errCode() != "weak_password") {
				t.Fatalf("%d %s, want 400 weak_password", r.status, r.raw)
			}
		})
	}
	if len(account.CommonPasswords) < 9900 {
		t.Fatalf("the embedded list has %d passwords", len(account.CommonPasswords))
	}
	for _, bad := range []map[string]string{
		{"email": "nope", "password": goodPassword, "organization": "acme"},
		{"email": "bob@acme.com", "password": goodPassword},
	} {
		if r := h.do("POST", "/auth/register", bad); r.status != 400 {
			t.Fatalf("%v: %d %s", bad, r.status, r.raw)
		}
	}
}

func TestVerifyEmailFailures(t *testing.T) {
	register := func(h *flowHarness, email string) string {
		h.do("POST", "/auth/register", map[string]string{"email": email, "password": goodPassword, "organization": "acme"})
		return h.tokenFromMail(email)
	}
	t.Run("a transient failure leaves the token usable", func(t *testing.T) {
		h := signupHarness(t)
		tok := register(h, "bob@acme.com")
		h.members.setErr(errTransient)
		if r := h.do("POST", "/auth/verify-email", map[string]string{"token": tok}); r.status != 503 {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		h.members.setErr(nil)
		if r := h.do("POST", "/auth/verify-email", map[string]string{"token": tok}); r.status != 200 {
			t.Fatalf("retry: %d %s", r.status, r.raw)
		}
	})
	t.Run("admission refuses the membership", func(t *testing.T) {
		h := signupHarness(t)
		tok := register(h, "bob@acme.com")
		h.members.setErr(fmt.Errorf("create: %w: denied", account.ErrMembershipRefused))
		if r := h.do("POST", "/auth/verify-email", map[string]string{"token": tok}); r.status != 409 || r.errCode() != "signup_refused" {
			t.Fatalf("%d %s", r.status, r.raw)
		}
	})
	t.Run("the domain was removed since", func(t *testing.T) {
		h := signupHarness(t)
		tok := register(h, "bob@acme.com")
		h.org("demo/acme").SignupDomain = nil
		if r := h.do("POST", "/auth/verify-email", map[string]string{"token": tok}); r.status != 403 || r.errCode() != "signup_closed" {
			t.Fatalf("%d %s", r.status, r.raw)
		}
	})
	t.Run("the domain lost its verification since", func(t *testing.T) {
		h := signupHarness(t)
		tok := register(h, "bob@acme.com")
		h.dir.PutVerifiedDomain("acme.com", "")
		if r := h.do("POST", "/auth/verify-email", map[string]string{"token": tok}); r.status != 403 || r.errCode() != "signup_closed" {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		if len(h.members.list()) != 0 {
			t.Fatalf("a membership was created on an unverified domain: %v", h.members.list())
		}
	})
	t.Run("an administrator added the member since", func(t *testing.T) {
		h := signupHarness(t)
		tok := register(h, "bob@acme.com")
		h.addMember("demo/acme", "bob@acme.com", "admin", "")
		if r := h.do("POST", "/auth/verify-email", map[string]string{"token": tok}); r.status != 409 || r.errCode() != "already_member" {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		if len(h.members.list()) != 0 {
			t.Fatalf("nothing is created for an existing member")
		}
	})
	t.Run("expired", func(t *testing.T) {
		h := signupHarness(t)
		tok := register(h, "bob@acme.com")
		h.clock.Add(account.VerifyEmailTTL)
		if r := h.do("POST", "/auth/verify-email", map[string]string{"token": tok}); r.status != 401 || r.errCode() != "token_expired" {
			t.Fatalf("%d %s", r.status, r.raw)
		}
	})
	t.Run("no membership writer", func(t *testing.T) {
		h := signupHarness(t)
		tok := register(h, "bob@acme.com")
		h.srv = New(h.srv.Config(), h.dir, h.store, testKey) // no MembershipWriter
		h.http.Close()
		h.http = httptest.NewServer(h.srv)
		if r := h.do("POST", "/auth/verify-email", map[string]string{"token": tok}); r.status != 503 || r.errCode() != "signup_unavailable" {
			t.Fatalf("%d %s", r.status, r.raw)
		}
	})
}

func TestForgotAndResetPassword(t *testing.T) {
	h := newFlowHarness(t)
	h.addMember("demo/acme", "alice@acme.com", "owner", "correct horse battery")
	h.addMember("demo/globex", "alice@acme.com", "viewer", "")
	s1 := h.login("alice@acme.com", "correct horse battery", "acme")
	s2 := h.login("alice@acme.com", "correct horse battery", "globex")
	pendingLogin := h.do("POST", "/auth/login", map[string]string{"email": "alice@acme.com", "password": "correct horse battery"})
	h.do("POST", "/users/send-magic-link", map[string]string{"email_address": "alice@acme.com"})
	magic := h.tokenFromMail("alice@acme.com")

	if r := h.do("POST", "/auth/forgot-password", map[string]string{"email": "ALICE@acme.com"}); r.status != http.StatusAccepted {
		t.Fatalf("forgot: %d %s", r.status, r.raw)
	}
	ms := h.mailsTo("alice@acme.com")
	if last := ms[len(ms)-1]; last.Subject != "Reset your password" || !strings.HasPrefix(h.lastLink("alice@acme.com"), "http://auth.test/auth/reset-password?token=pr_") {
		t.Fatalf("mail %+v", last)
	}
	tok := h.tokenFromMail("alice@acme.com")

	if r := h.do("POST", "/auth/reset-password", map[string]string{"token": tok, "password": "password"}); r.status != 400 || r.errCode() != "weak_password" {
		t.Fatalf("weak: %d %s", r.status, r.raw)
	}
	if r := h.do("POST", "/auth/reset-password", map[string]string{"token": tok, "password": "a new and better passphrase"}); r.status != 204 {
		t.Fatalf("reset (the weak try left the token usable): %d %s", r.status, r.raw)
	}
	for _, s := range []response{s1, s2} {
		if r := h.do("POST", "/auth/refresh", map[string]string{"refresh_token": s.str("refresh_token")}); r.status != 401 || r.errCode() != "session_revoked" {
			t.Fatalf("old refresh token: %d %s", r.status, r.raw)
		}
		if r := h.do("GET", "/auth/me", nil, "Authorization", "Bearer "+s.str("access_token")); r.status != 401 {
			t.Fatalf("old access token: %d %s", r.status, r.raw)
		}
	}
	if r := h.do("POST", "/users/exchange-session", map[string]string{"intermediate_session_token": pendingLogin.str("intermediate_session_token"), "organization_id": "acme"}); r.status != 401 {
		t.Fatalf("a sign-in begun before the reset: %d %s", r.status, r.raw)
	}
	if r := h.do("POST", "/users/authenticate-magic-link", map[string]string{"token": magic}); r.status != 401 || r.errCode() != "token_used" {
		t.Fatalf("a link mailed before the reset: %d %s", r.status, r.raw)
	}
	if r := h.do("POST", "/auth/login", map[string]string{"email": "alice@acme.com", "password": "correct horse battery", "organization": "acme"}); r.status != 401 {
		t.Fatalf("old password: %d %s", r.status, r.raw)
	}
	h.login("alice@acme.com", "a new and better passphrase", "acme")
	if r := h.do("POST", "/auth/reset-password", map[string]string{"token": tok, "password": "yet another passphrase"}); r.status != 401 || r.errCode() != "token_used" {
		t.Fatalf("reuse: %d %s", r.status, r.raw)
	}
}

func TestResetPasswordEdges(t *testing.T) {
	h := newFlowHarness(t)
	h.addMember("demo/acme", "kube@acme.com", "member", "") // made with kubectl: no password yet
	if r := h.do("POST", "/auth/forgot-password", map[string]string{"email": "nobody@acme.com"}); r.status != 202 || len(h.mailsTo("nobody@acme.com")) != 0 {
		t.Fatalf("unknown email: %d %s", r.status, r.raw)
	}
	h.do("POST", "/auth/forgot-password", map[string]string{"email": "kube@acme.com"})
	tok := h.tokenFromMail("kube@acme.com")
	if r := h.do("POST", "/auth/reset-password", map[string]string{"token": tok, "password": "first passphrase ever"}); r.status != 204 {
		t.Fatalf("first password: %d %s", r.status, r.raw)
	}
	h.login("kube@acme.com", "first passphrase ever", "")

	h.do("POST", "/auth/forgot-password", map[string]string{"email": "kube@acme.com"})
	tok = h.tokenFromMail("kube@acme.com")
	h.clock.Add(account.ResetTTL)
	if r := h.do("POST", "/auth/reset-password", map[string]string{"token": tok, "password": "second passphrase"}); r.status != 401 || r.errCode() != "token_expired" {
		t.Fatalf("expired: %d %s", r.status, r.raw)
	}
	if r := h.do("POST", "/auth/reset-password", map[string]string{"password": "second passphrase"}); r.status != 401 || r.errCode() != "token_invalid" {
		t.Fatalf("no token: %d %s", r.status, r.raw)
	}
	h.clock.Add(account.TokenRetention + time.Minute)
	if n, _ := h.store.DeleteExpired(t.Context(), h.clock.Now()); n == 0 {
		t.Fatalf("expired token records are garbage-collected")
	}
}
