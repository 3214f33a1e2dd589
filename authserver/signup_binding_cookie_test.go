package authserver

import (
	"net/http"
	"strings"
	"testing"
)

// secureSignupHarness is signupHarness's acme (self-signup from acme.com,
// verified for it) on a server with the given options, e.g. an https
// public URL.
func secureSignupHarness(t *testing.T, opts ...harnessOption) *flowHarness {
	t.Helper()
	h := newFlowHarness(t, opts...)
	h.org("demo/acme").SignupDomain = []string{"acme.com"}
	h.dir.PutVerifiedDomain("acme.com", "demo/acme")
	return h
}

func withURL(publicURL, cookieDomain, pathPrefix string) harnessOption {
	return func(c *Config) { c.PublicURL, c.CookieDomain, c.PathPrefix = publicURL, cookieDomain, pathPrefix }
}

// signupSetCookie is the raw Set-Cookie header of the signup binding in a
// register answer, whichever name it has.
func signupSetCookie(t *testing.T, r response) string {
	t.Helper()
	for _, v := range r.header.Values("Set-Cookie") {
		if name, _, _ := strings.Cut(v, "="); strings.HasSuffix(name, signupCookie) {
			return v
		}
	}
	t.Fatalf("register set no signup cookie: %v", r.header.Values("Set-Cookie"))
	return ""
}

// TestSignupCookieIsHostOnly: the binding cookie never takes
// --cookie-domain, which would hand it to every sibling subdomain; over
// https it has the __Host- prefix, so browsers let no other host set it.
func TestSignupCookieIsHostOnly(t *testing.T) {
	tests := []struct {
		name               string
		opt                harnessOption
		register           string
		wantName, wantPath string
		wantSecure         bool
	}{
		{"https", withURL("https://auth.example.test", "example.test", ""), "/auth/register",
			hostSignupCookie, "/", true},
		{"https under a path prefix", withURL("https://example.test/api/v1", "example.test", "/api/v1"), "/api/v1/auth/register",
			hostSignupCookie, "/", true},
		{"http dev", withURL("http://localhost:8080", "localhost", "/api/v1"), "/api/v1/auth/register",
			signupCookie, "/api/v1/auth", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := secureSignupHarness(t, tt.opt)
			r := h.do("POST", tt.register, map[string]string{"email": "new@acme.com", "password": goodPassword, "organization": "acme"})
			if r.status != http.StatusAccepted {
				t.Fatalf("register: %d %s", r.status, r.raw)
			}
			raw := signupSetCookie(t, r)
			c, err := http.ParseSetCookie(raw)
			if err != nil {
				t.Fatalf("Set-Cookie %q: %v", raw, err)
			}
			if strings.Contains(strings.ToLower(raw), "domain=") || c.Domain != "" {
				t.Errorf("Set-Cookie %q has a Domain: the binding must stay with this host", raw)
			}
			if c.Name != tt.wantName || c.Path != tt.wantPath || c.Secure != tt.wantSecure || !c.HttpOnly ||
				c.SameSite != http.SameSiteLaxMode || c.Value == "" {
				t.Errorf("Set-Cookie %q: want %s, Path=%s, Secure %v, HttpOnly, SameSite=Lax", raw, tt.wantName, tt.wantPath, tt.wantSecure)
			}
		})
	}
}

// TestSignupCookiePlantedBySiblingBindsNothing plays eve, who controls a
// sibling subdomain of the auth server's cookie domain. She registers
// carol's address with her own password, takes the binding from her own
// answer, and plants it in carol's browser under the bare cookie name for
// the whole domain, the one cookie a sibling can set. Carol clicks the
// genuine mail: the password must not become carol's. A client that
// really registered keeps its password.
func TestSignupCookiePlantedBySiblingBindsNothing(t *testing.T) {
	h := secureSignupHarness(t, withURL("https://auth.example.test", "example.test", ""))
	const evePW = "eve knows this passphrase"
	reg := h.do("POST", "/auth/register", map[string]string{"email": "carol@acme.com", "password": evePW, "organization": "acme"})
	if reg.status != http.StatusAccepted {
		t.Fatalf("register: %d %s", reg.status, reg.raw)
	}
	c, err := http.ParseSetCookie(signupSetCookie(t, reg))
	if err != nil {
		t.Fatal(err)
	}
	planted := signupCookie + "=" + c.Value
	v := h.do("POST", "/auth/verify-email", map[string]string{"token": h.tokenFromMail("carol@acme.com")}, "Cookie", planted)
	if v.status != 200 || v.str("user.email") != "carol@acme.com" {
		t.Fatalf("carol's verify: %d %s", v.status, v.raw)
	}
	if amr := jwtAMR(t, v.str("access_token")); amr != "email" {
		t.Errorf("carol's sign-in is an email sign-in, amr %v", amr)
	}
	if r := h.do("POST", "/auth/login", map[string]string{"email": "carol@acme.com", "password": evePW, "organization": "acme"}); r.status != 401 {
		t.Fatalf("eve's password, bound by a planted cookie, signs in as carol: %d", r.status)
	}

	// The legitimate client sends back the cookie it was given.
	reg = h.do("POST", "/auth/register", map[string]string{"email": "dave@acme.com", "password": goodPassword, "organization": "acme"})
	own, err := http.ParseSetCookie(signupSetCookie(t, reg))
	if err != nil {
		t.Fatal(err)
	}
	v = h.do("POST", "/auth/verify-email", map[string]string{"token": h.tokenFromMail("dave@acme.com")}, "Cookie", own.Name+"="+own.Value)
	if v.status != 200 || v.str("user.email") != "dave@acme.com" {
		t.Fatalf("dave's verify: %d %s", v.status, v.raw)
	}
	h.login("dave@acme.com", goodPassword, "acme")
}

// TestSignupBoundReadsTheCookieItWasSetAs: a binding is honoured only from
// the cookie name it was issued under; one without a name (kept before
// the cookie became host-only) binds nothing.
func TestSignupBoundReadsTheCookieItWasSetAs(t *testing.T) {
	const value = "binding-value"
	hash := bindingHash(value)
	tests := []struct {
		name, cookie, want string
		bound              bool
	}{
		{"__Host- binding, __Host- cookie", hostSignupCookie, hostSignupCookie + ":" + hash, true},
		{"bare binding, bare cookie (http dev)", signupCookie, signupCookie + ":" + hash, true},
		{"__Host- binding, bare cookie", signupCookie, hostSignupCookie + ":" + hash, false},
		{"bare binding, __Host- cookie", hostSignupCookie, signupCookie + ":" + hash, false},
		{"binding without a name", signupCookie, hash, false},
		{"binding naming another cookie", "other", "other:" + hash, false},
		{"no binding", hostSignupCookie, "", false},
		{"empty hash", hostSignupCookie, hostSignupCookie + ":", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := http.NewRequest("POST", "https://auth.example.test/auth/verify-email", nil)
			if err != nil {
				t.Fatal(err)
			}
			r.AddCookie(&http.Cookie{Name: tt.cookie, Value: value})
			if got := signupBound(r, tt.want); got != tt.bound {
				t.Errorf("signupBound = %v, want %v", got, tt.bound)
			}
		})
	}
}
