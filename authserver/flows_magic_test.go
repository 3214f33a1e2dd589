package authserver

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantauth/tenantauth/authserver/token"

	"github.com/tenantauth/tenantauth/authserver/account"
	"github.com/tenantauth/tenantauth/authserver/directory"

	"github.com/tenantauth/tenantauth/authserver/store"
)

func TestMagicLinkThreeSteps(t *testing.T) {
	h := newFlowHarness(t)
	uid := h.addMember("demo/acme", "alice@acme.com", "owner", "")
	h.addMember("demo/globex", "alice@acme.com", "viewer", "")

	send := h.do("POST", "/users/send-magic-link", map[string]string{"email_address": "Alice@Acme.com"})
	if send.status != http.StatusAccepted || send.str("status") != "accepted" {
		t.Fatalf("send: %d %s", send.status, send.raw)
	}
	ms := h.mailsTo("alice@acme.com")
	if len(ms) != 1 || ms[0].Subject != "Your sign-in link" {
		t.Fatalf("mails: %+v", ms)
	}
	link := h.lastLink("alice@acme.com")
	if !strings.HasPrefix(link, "http://auth.test/users/authenticate-magic-link?token=ml_") ||
		!strings.Contains(ms[0].HTML, `href="`+link+`"`) || ms[0].Expires.Sub(h.clock.Now()) != account.MagicLinkTTL {
		t.Fatalf("link %q, html %q, expires %v", link, ms[0].HTML, ms[0].Expires)
	}

	auth := h.do("POST", "/users/authenticate-magic-link", map[string]string{"token": h.tokenFromMail("alice@acme.com")})
	orgs, _ := auth.body["organizations"].([]any)
	if auth.status != 200 || auth.str("intermediate_session_token") == "" || len(orgs) != 2 ||
		auth.body["mfa_required"] != false || auth.str("user.id") != uid || auth.str("access_token") != "" {
		t.Fatalf("authenticate: %d %s", auth.status, auth.raw)
	}
	ex := h.do("POST", "/users/exchange-session", map[string]string{
		"intermediate_session_token": auth.str("intermediate_session_token"), "organization_id": "org_acme"})
	if ex.status != 200 || ex.str("organization.slug") != "acme" || ex.str("role") != "owner" || ex.str("session.jwt") == "" {
		t.Fatalf("exchange: %d %s", ex.status, ex.raw)
	}
	if amr := jwtAMR(t, ex.str("session.jwt")); amr != "email" {
		t.Fatalf("amr %q, want email", amr)
	}
	if me := h.do("GET", "/auth/me", nil, "Authorization", "Bearer "+ex.str("session.jwt")); me.status != 200 {
		t.Fatalf("me: %d %s", me.status, me.raw)
	}
	again := h.do("POST", "/users/authenticate-magic-link", map[string]string{"token": h.tokenFromMail("alice@acme.com")})
	if again.status != 401 || again.errCode() != "token_used" {
		t.Fatalf("second use: %d %s", again.status, again.raw)
	}
}

func TestMagicLinkForOneOrganization(t *testing.T) {
	h := newFlowHarness(t)
	h.addMember("demo/acme", "alice@acme.com", "owner", "")
	h.addMember("demo/globex", "alice@acme.com", "viewer", "")
	strict := h.addOrg("demo/strict", "org_strict", "strict", "Strict", "ES256")
	strict.MFARequired = true
	h.addMember("demo/strict", "alice@acme.com", "member", "")

	h.do("POST", "/users/send-magic-link", map[string]string{"email_address": "alice@acme.com", "organization": "globex"})
	if ms := h.mailsTo("alice@acme.com"); len(ms) != 1 || ms[0].Subject != "Your sign-in link for Globex" {
		t.Fatalf("mails %+v", ms)
	}
	r := h.do("POST", "/users/authenticate-magic-link", map[string]string{"token": h.tokenFromMail("alice@acme.com")})
	if r.status != 200 || r.str("organization.slug") != "globex" || r.str("role") != "viewer" || r.str("access_token") == "" {
		t.Fatalf("a link for one organization leads into it: %d %s", r.status, r.raw)
	}

	h.do("POST", "/users/send-magic-link", map[string]string{"email_address": "alice@acme.com", "organization": "org_strict"})
	r = h.do("POST", "/users/authenticate-magic-link", map[string]string{"token": h.tokenFromMail("alice@acme.com")})
	if r.status != 200 || r.body["mfa_required"] != true || r.str("intermediate_session_token") == "" || r.str("access_token") != "" {
		t.Fatalf("an organization that requires MFA gets the intermediate response: %d %s", r.status, r.raw)
	}
}

func TestMagicLinkOnlyForMembers(t *testing.T) {
	h := newFlowHarness(t)
	h.addMember("demo/acme", "alice@acme.com", "owner", "")
	closed := h.addOrg("demo/closed", "org_closed", "closed", "Closed", "ES256")
	closed.MagicLink = false
	h.addMember("demo/closed", "carol@closed.com", "owner", "")
	h.dir.PutMember(&directory.Member{Ref: "demo/acme-dave", OrgRef: "demo/acme", Email: "dave@acme.com", Role: "member", Disabled: true})

	tests := []struct {
		name     string
		body     map[string]string
		wantMail string
	}{
		{"member", map[string]string{"email_address": "alice@acme.com"}, "alice@acme.com"},
		{"unknown email", map[string]string{"email_address": "nobody@acme.com"}, ""},
		{"organization without magic links", map[string]string{"email_address": "carol@closed.com"}, ""},
		{"disabled member", map[string]string{"email_address": "dave@acme.com"}, ""},
		{"not a member of the named organization", map[string]string{"email_address": "alice@acme.com", "organization": "globex"}, ""},
		{"unknown organization", map[string]string{"email_address": "alice@acme.com", "organization": "nope"}, ""},
	}
	var bodies []string
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(h.mailsTo(tc.body["email_address"]))
			r := h.do("POST", "/users/send-magic-link", tc.body)
			if r.status != http.StatusAccepted {
				t.Fatalf("%d %s", r.status, r.raw)
			}
			bodies = append(bodies, r.raw)
			got := len(h.mailsTo(tc.body["email_address"])) - before
			if want := map[bool]int{true: 1, false: 0}[tc.wantMail != ""]; got != want {
				t.Fatalf("%d mails, want %d", got, want)
			}
		})
	}
	for _, b := range bodies {
		if b != bodies[0] {
			t.Fatalf("answers differ: %q", bodies)
		}
	}
	if r := h.do("POST", "/users/send-magic-link", map[string]string{"email_address": "not-an-email"}); r.status != 400 || r.errCode() != "invalid_email" {
		t.Fatalf("bad email: %d %s", r.status, r.raw)
	}
}

func TestMagicLinkBadTokens(t *testing.T) {
	h := newFlowHarness(t)
	h.addMember("demo/acme", "alice@acme.com", "owner", "")
	h.addMember("demo/acme", "bob@acme.com", "member", "")
	fresh := func(email string) string {
		h.do("POST", "/users/send-magic-link", map[string]string{"email_address": email})
		return h.tokenFromMail(email)
	}
	expired := fresh("bob@acme.com")
	valid := fresh("alice@acme.com")
	h.do("POST", "/auth/forgot-password", map[string]string{"email": "alice@acme.com"})
	reset := h.tokenFromMail("alice@acme.com")

	tests := []struct {
		name, token, code string
		before            func()
	}{
		{name: "empty", token: "", code: "token_invalid"},
		{name: "garbage", token: "hello", code: "token_invalid"},
		{name: "unknown id", token: "ml_aaaaaaaaaaaaaaaaaaaa." + strings.Repeat("A", 43), code: "token_invalid"},
		{name: "wrong secret", token: valid[:len(valid)-4] + "AAAA", code: "token_invalid"},
		{name: "another purpose's token", token: reset, code: "token_invalid"},
		{name: "expired", token: expired, code: "token_expired", before: func() { h.clock.Add(account.MagicLinkTTL + time.Second) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.before != nil {
				tc.before()
			}
			r := h.do("POST", "/users/authenticate-magic-link", map[string]string{"token": tc.token})
			if r.status != 401 || r.errCode() != tc.code || r.header.Get("WWW-Authenticate") == "" {
				t.Fatalf("%d %s, want 401 %s", r.status, r.raw, tc.code)
			}
		})
	}
}

func TestMagicLinkSpentOnceUnderConcurrency(t *testing.T) {
	h := newFlowHarness(t)
	h.addMember("demo/acme", "alice@acme.com", "owner", "")
	h.do("POST", "/users/send-magic-link", map[string]string{"email_address": "alice@acme.com"})
	raw := h.tokenFromMail("alice@acme.com")
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[string]int{}
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := h.do("POST", "/users/authenticate-magic-link", map[string]string{"token": raw})
			mu.Lock()
			codes[map[bool]string{true: "ok", false: r.errCode()}[r.status == 200]]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes["ok"] != 1 || codes["token_used"] != 11 {
		t.Fatalf("outcomes %v: exactly one request may use the token", codes)
	}
}

func TestMagicLinkUnderPathPrefix(t *testing.T) {
	h := newFlowHarness(t, func(c *Config) { c.PublicURL, c.PathPrefix = "https://app.example.com", "/api/v1" })
	h.addMember("demo/acme", "alice@acme.com", "owner", "")
	if r := h.do("POST", "/api/v1/users/send-magic-link", map[string]string{"email_address": "alice@acme.com"}); r.status != 202 {
		t.Fatalf("send: %d %s", r.status, r.raw)
	}
	if link := h.lastLink("alice@acme.com"); !strings.HasPrefix(link, "https://app.example.com/api/v1/users/authenticate-magic-link?token=ml_") {
		t.Fatalf("link %q", link)
	}
	if r := h.do("POST", "/api/v1/users/authenticate-magic-link", map[string]string{"token": h.tokenFromMail("alice@acme.com")}); r.status != 200 {
		t.Fatalf("authenticate: %d %s", r.status, r.raw)
	}
}

func TestMailedTokensAreStoredAsHashes(t *testing.T) {
	h := newFlowHarness(t, func(c *Config) { c.Argon2 = fastArgon })
	h.addMember("demo/acme", "alice@acme.com", "owner", "")
	h.org("demo/acme").SignupDomain = []string{"acme.com"}
	h.dir.PutVerifiedDomain("acme.com", "demo/acme")
	h.do("POST", "/users/send-magic-link", map[string]string{"email_address": "alice@acme.com"})
	h.do("POST", "/auth/forgot-password", map[string]string{"email": "alice@acme.com"})
	h.do("POST", "/auth/register", map[string]string{"email": "new@acme.com", "password": "a fine long passphrase", "organization": "acme"})
	tokens := []string{}
	for _, addr := range []string{"alice@acme.com", "new@acme.com"} {
		for _, m := range h.mailsTo(addr) {
			for _, l := range strings.Split(m.Text, "\n") {
				if _, tok, ok := strings.Cut(l, "?token="); ok {
					tokens = append(tokens, tok)
				}
			}
		}
	}
	if len(tokens) != 3 {
		t.Fatalf("tokens %v", tokens)
	}
	recs, _ := h.store.ListByUser(context.Background(), store.KindToken, h.srv.userFor("alice@acme.com").ID)
	recs2, _ := h.store.ListByUser(context.Background(), store.KindToken, h.srv.userFor("new@acme.com").ID)
	if len(recs) != 2 || len(recs2) != 0 {
		t.Fatalf("%d token records for alice, %d for the signup (sealed links make none)", len(recs), len(recs2))
	}
	for _, tok := range tokens {
		_, secret, _ := strings.Cut(tok, ".")
		if strings.HasPrefix(tok, token.PrefixVerifyEmail+"_") {
			raw, _ := base64.RawURLEncoding.DecodeString(secret)
			if strings.Contains(string(raw), "argon2id") || strings.Contains(string(raw), "new@acme.com") {
				t.Fatalf("the sealed link shows what it carries: %q", raw)
			}
			continue
		}
		sum := sha256.Sum256([]byte(secret))
		found := false
		for _, rec := range recs {
			if strings.Contains(string(rec.Data), secret) || strings.Contains(string(rec.Data), "a fine long passphrase") {
				t.Fatalf("record %s holds a secret: %s", rec.ID, rec.Data)
			}
			found = found || strings.Contains(string(rec.Data), hex.EncodeToString(sum[:]))
		}
		if !found {
			t.Fatalf("no record keeps the hash of token %s", tok[:6])
		}
	}
}

func TestSwitchOrganizationWithSession(t *testing.T) {
	h := newFlowHarness(t)
	h.addMember("demo/acme", "alice@acme.com", "owner", "correct horse battery")
	h.addMember("demo/globex", "alice@acme.com", "viewer", "")
	strict := h.addOrg("demo/strict", "org_strict", "strict", "Strict", "ES256")
	strict.MFARequired = true
	h.addMember("demo/strict", "alice@acme.com", "member", "")
	nopw := h.addOrg("demo/nopw", "org_nopw", "nopw", "No passwords", "ES256")
	nopw.Password = false
	h.addMember("demo/nopw", "alice@acme.com", "member", "")
	s := h.login("alice@acme.com", "correct horse battery", "acme")
	bearer := "Bearer " + s.str("access_token")

	tests := []struct {
		name, target string
		headers      []string
		status       int
		code, slug   string
		mfa          bool
	}{
		{name: "to another organization by slug", target: "globex", headers: []string{"Authorization", bearer}, status: 200, slug: "globex"},
		{name: "by id", target: "org_globex", headers: []string{"Authorization", bearer}, status: 200, slug: "globex"},
		{name: "into one that requires MFA", target: "strict", headers: []string{"Authorization", bearer}, status: 200, mfa: true},
		{name: "into one that refuses the session's method", target: "nopw", headers: []string{"Authorization", bearer}, status: 403, code: "auth_method_disabled"},
		{name: "not a member", target: "closed", headers: []string{"Authorization", bearer}, status: 403, code: "not_a_member"},
		{name: "cookie without CSRF", target: "globex", headers: []string{"Cookie", "tenantauth_session=" + s.str("access_token")}, status: 403, code: "csrf_invalid"},
		{name: "cookie with CSRF", target: "globex", headers: []string{"Cookie", "tenantauth_session=" + s.str("access_token"), "X-CSRF-Token", s.str("csrf_token")}, status: 200, slug: "globex"},
		{name: "no session", target: "globex", status: 401, code: "unauthenticated"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do("POST", "/users/exchange-session", map[string]string{"organization_id": tc.target}, tc.headers...)
			if r.status != tc.status || r.errCode() != tc.code || r.str("organization.slug") != tc.slug || (r.body["mfa_required"] == true) != tc.mfa {
				t.Fatalf("%d %s", r.status, r.raw)
			}
			if tc.slug != "" {
				if amr := jwtAMR(t, r.str("access_token")); amr != "pwd" {
					t.Fatalf("amr %q carries over as pwd", amr)
				}
				if r.str("session.id") == s.str("session.id") {
					t.Fatalf("a switch starts a new session")
				}
			}
		})
	}
}

func TestAccountFlowsBusyAnswersAlike(t *testing.T) {
	h := newFlowHarness(t)
	h.addMember("demo/acme", "alice@acme.com", "owner", "")
	h.srv.accounts.SetFlowsPending(account.MaxFlowJobs) // the line is full
	var bodies []string
	for _, email := range []string{"alice@acme.com", "nobody@acme.com"} {
		r := h.do("POST", "/users/send-magic-link", map[string]string{"email_address": email})
		if r.status != 503 || r.errCode() != "busy" || r.header.Get("Retry-After") == "" {
			t.Fatalf("%s: %d %s", email, r.status, r.raw)
		}
		bodies = append(bodies, r.raw)
	}
	if bodies[0] != bodies[1] {
		t.Fatalf("busy answers differ: %q", bodies)
	}
	h.srv.accounts.SetFlowsPending(0)
	if r := h.do("POST", "/users/send-magic-link", map[string]string{"email_address": "alice@acme.com"}); r.status != 202 {
		t.Fatalf("after the line empties: %d %s", r.status, r.raw)
	}
	if len(h.mailsTo("alice@acme.com")) != 1 {
		t.Fatalf("one mail, for the accepted request")
	}
}

func TestAccountFlowsRateLimited(t *testing.T) {
	tests := []struct {
		path string
		body func(email string) map[string]string
	}{
		{"/users/send-magic-link", func(e string) map[string]string { return map[string]string{"email_address": e} }},
		{"/auth/register", func(e string) map[string]string {
			return map[string]string{"email": e, "password": "a fine long passphrase", "organization": "acme"}
		}},
		{"/auth/forgot-password", func(e string) map[string]string { return map[string]string{"email": e} }},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			h := newFlowHarness(t, func(c *Config) { c.RateLimitPerMinute, c.TrustedProxies = 3, loopbackProxy })
			from := func(ip string) []string { return []string{"X-Forwarded-For", ip} }
			// Per email: three clients use up alice's minute.
			for i := range 3 {
				if r := h.do("POST", tc.path, tc.body("alice@acme.com"), from(fmt.Sprintf("10.0.0.%d", i))...); r.status != 202 {
					t.Fatalf("request %d: %d %s", i, r.status, r.raw)
				}
			}
			r := h.do("POST", tc.path, tc.body("alice@acme.com"), from("10.0.0.9")...)
			if r.status != 429 || r.errCode() != "rate_limited" || r.header.Get("Retry-After") == "" {
				t.Fatalf("fourth request for one email: %d %s", r.status, r.raw)
			}
			// Per client: one client uses up its minute with three emails.
			for i := range 3 {
				if r := h.do("POST", tc.path, tc.body(fmt.Sprintf("user%d@acme.com", i)), from("10.0.1.1")...); r.status != 202 {
					t.Fatalf("email %d: %d %s", i, r.status, r.raw)
				}
			}
			if r := h.do("POST", tc.path, tc.body("user9@acme.com"), from("10.0.1.1")...); r.status != 429 {
				t.Fatalf("fourth request from one client: %d %s", r.status, r.raw)
			}
			h.clock.Add(time.Minute)
			if r := h.do("POST", tc.path, tc.body("alice@acme.com"), from("10.0.0.9")...); r.status != 202 {
				t.Fatalf("a minute later: %d %s", r.status, r.raw)
			}
		})
	}
}
