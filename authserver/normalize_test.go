package authserver

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/tenantauth/tenantauth/authserver/account"
	"github.com/tenantauth/tenantauth/internal/identity"
)

// TestLookalikeEmailsAreOneUser signs in with other spellings of a
// member's address: fullwidth letters and the NFD form are the same user;
// addresses that cannot be one identity are refused.
func TestLookalikeEmailsAreOneUser(t *testing.T) {
	h := newFlowHarness(t)
	alice := h.addMember("demo/acme", "alice@acme.com", "owner", alicePassword)
	jose := h.addMember("demo/acme", "jos\u00e9@acme.com", "member", alicePassword)
	same := []struct{ name, email, id string }{
		{"plain", "alice@acme.com", alice},
		{"fullwidth a", "\uff41lice@acme.com", alice},
		{"upper case and fullwidth domain", "ALICE@\uff41cme.com", alice},
		{"NFC", "jos\u00e9@acme.com", jose},
		{"NFD", "jose\u0301@acme.com", jose},
	}
	for _, tt := range same {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do("POST", "/auth/login", map[string]string{"email": tt.email, "password": alicePassword})
			if r.status != 200 || r.str("user.id") != tt.id {
				t.Fatalf("%q: %d %s (want user %s)", tt.email, r.status, r.raw, tt.id)
			}
		})
	}
	refused := []struct{ name, email string }{
		{"local part over 64 octets", strings.Repeat("a", 65) + "@acme.com"},
		{"zero-width space", "al\u200bice@acme.com"},
		{"bad internationalised domain", "alice@\u0300acme.com"},
	}
	for _, tt := range refused {
		for _, path := range []string{"/auth/login", "/auth/register", "/auth/forgot-password"} {
			t.Run(tt.name+" "+path, func(t *testing.T) {
				r := h.do("POST", path, map[string]string{"email": tt.email, "password": goodPassword, "organization": "acme"})
				if r.status != 400 || r.errCode() != "invalid_email" {
					t.Fatalf("%q: %d %s", tt.email, r.status, r.raw)
				}
			})
		}
	}
	// A magic link asked for with a look-alike goes to the member's one
	// address.
	if r := h.do("POST", "/users/send-magic-link", map[string]string{"email_address": "\uff41lice@acme.com"}); r.status != 202 {
		t.Fatalf("magic link: %d %s", r.status, r.raw)
	}
	if len(h.mailsTo("alice@acme.com")) != 1 {
		t.Fatal("no magic link to alice's address")
	}
}

// TestPasswordsAreNormalised checks the password rules: valid UTF-8,
// NFKC before hashing and comparing, and something visible.
func TestPasswordsAreNormalised(t *testing.T) {
	h := newFlowHarness(t)
	uid := h.addMember("demo/acme", "alice@acme.com", "owner", "")
	// Set through the reset flow, with fullwidth letters.
	setPassword := func(pw string) response {
		if r := h.do("POST", "/auth/forgot-password", map[string]string{"email": "alice@acme.com"}); r.status != 202 {
			t.Fatalf("forgot: %d %s", r.status, r.raw)
		}
		return h.do("POST", "/auth/reset-password", map[string]string{"token": h.tokenFromMail("alice@acme.com"), "password": pw})
	}
	for _, blank := range []string{"            ", strings.Repeat("\u200b", 12), strings.Repeat("\x00", 12),
		strings.Repeat("\u3164", 10), " \t\u00a0\u2003\u200d\ufeff\u2060\u180e\u3000\u200c  "} {
		if r := setPassword(blank); r.status != 400 || r.errCode() != "weak_password" {
			t.Fatalf("blank password %q: %d %s", blank, r.status, r.raw)
		}
	}
	if r := setPassword("\uff33ecret \uff50assphrase"); r.status != http.StatusNoContent {
		t.Fatalf("fullwidth password: %d %s", r.status, r.raw)
	}
	tests := []struct {
		name, password string
		status         int
	}{
		{"the ASCII spelling of a fullwidth password", "Secret passphrase", 200},
		{"the fullwidth spelling itself", "\uff33ecret \uff50assphrase", 200},
		{"another password", "Secret passphrasf", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r := h.do("POST", "/auth/login", map[string]string{"email": "alice@acme.com", "password": tt.password}); r.status != tt.status {
				t.Fatalf("%d %s, want %d", r.status, r.raw, tt.status)
			}
		})
	}
	// Bytes that are no UTF-8 never become a password.
	for _, body := range []string{"{\"email\":\"alice@acme.com\",\"password\":\"Secret \xff\xfe passphrase\"}",
		`{"email":"alice@acme.com","password":"Secret \udc00 passphrase"}`} {
		r := h.do("POST", "/auth/login", body)
		if r.status != 400 {
			t.Fatalf("invalid UTF-8 password: %d %s", r.status, r.raw)
		}
	}
	// A hash made before normalisation from a non-NFKC password still
	// verifies for the bytes it was made from.
	legacy, err := account.HashPassword("\uff4cegacy passphrase", h.srv.cfg.Argon2)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.srv.accounts.UpdateCredentials(context.Background(), uid, func(c *account.Credentials) error { c.PasswordHash = legacy; return nil }); err != nil {
		t.Fatal(err)
	}
	if r := h.do("POST", "/auth/login", map[string]string{"email": "alice@acme.com", "password": "\uff4cegacy passphrase"}); r.status != 200 {
		t.Fatalf("legacy hash: %d %s", r.status, r.raw)
	}
	if identity.UserID(testKey, "alice@acme.com") != uid {
		t.Fatal("alice's ID moved")
	}
}
