package authserver

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantauth/tenantauth/authserver/directory"
	"github.com/tenantauth/tenantauth/internal/oidctest"
)

// The OIDC sign-in against a real OpenID Provider (zitadel's op package)
// on 127.0.0.1, with the directory and store in memory. The attacks play
// a browser that tampers with what it holds, a hostile provider or
// network (oidctest's token rewrite) and an identity provider of one
// organization reaching for another's people.

const ssoCallback = "http://auth.test/sso/oidc/callback"

var (
	ssoClient   = oidctest.Client{ID: "tenantauth", Secret: "s3cret-client", RedirectURI: ssoCallback}
	otherClient = oidctest.Client{ID: "other-app", Secret: "other-secret", RedirectURI: "http://other.test/cb"}
	alice       = oidctest.User{Email: "alice@acme.test", Password: "alice-pw", EmailVerified: true}
)

// ssoMembers is a sso.MembershipWriter that puts what it creates into the
// directory, as the informer would.
type ssoMembers struct {
	flowMembers
	dir *directory.Directory
}

func (m *ssoMembers) CreateSSOMembership(_ context.Context, orgRef, conn, email, role string) error {
	m.mu.Lock()
	m.created = append(m.created, orgRef+"|"+conn+"|"+email+"|"+role)
	m.mu.Unlock()
	m.dir.PutMember(&directory.Member{Ref: orgRef + "-sso-" + email, OrgRef: orgRef, Email: email, Role: role})
	return nil
}

type ssoHarness struct {
	*harness
	op      *oidctest.Provider
	members *ssoMembers
	tr      *http.Transport
}

func newSSOHarness(t testing.TB, opts ...harnessOption) *ssoHarness {
	t.Helper()
	// The provider runs on 127.0.0.1; TestSSOPrivateNetworksRefused
	// plays the default.
	opts = append([]harnessOption{func(c *Config) { c.SSOPrivateNetworks = true }}, opts...)
	h := newHarness(t, nil, opts...)
	h.clock.t = time.Now().UTC() // the provider's tokens carry the real time
	op := oidctest.Start(t, ssoClient, otherClient)
	op.AddUser(alice)
	m := &ssoMembers{dir: h.dir}
	h.srv = New(h.srv.Config(), h.dir, h.store, testKey, WithMembershipWriter(m))
	h.http.Close()
	h.http = httptest.NewServer(h.srv)
	t.Cleanup(h.http.Close)
	h.dir.PutSSOConnection(&directory.SSOConnection{Ref: "demo/acme-idp", UID: "uid-acme-idp", OrgRef: "demo/acme", Protocol: "oidc",
		Issuer: op.Issuer, ClientID: ssoClient.ID, ClientSecret: ssoClient.Secret, DefaultRole: "member"})
	h.dir.PutVerifiedDomain("acme.test", "demo/acme")
	h.dir.PutVerifiedDomain("globex.test", "demo/globex")
	return &ssoHarness{harness: h, op: op, members: m}
}

// browser follows redirects and keeps cookies; auth.test reaches the
// harness's server. With stop set it halts at the callback, so a test can
// tamper with it.
type browser struct {
	t    testing.TB
	c    *http.Client
	jar  http.CookieJar
	stop bool
	mu   sync.Mutex
	// callback is where the provider sent the browser back.
	callback *url.URL
}

func (h *ssoHarness) browser() *browser {
	jar, _ := cookiejar.New(nil)
	if h.tr == nil {
		addr := strings.TrimPrefix(h.http.URL, "http://")
		h.tr = &http.Transport{DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			if strings.HasPrefix(a, "auth.test:") {
				a = addr
			}
			return (&net.Dialer{}).DialContext(ctx, network, a)
		}}
	}
	b := &browser{t: h.t, jar: jar}
	b.c = &http.Client{Jar: jar, Transport: h.tr, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if req.URL.Host == "auth.test" && req.URL.Path == "/sso/oidc/callback" {
			b.mu.Lock()
			b.callback = req.URL
			b.mu.Unlock()
			if b.stop {
				return http.ErrUseLastResponse
			}
		}
		return nil
	}}
	return b
}

// signIn runs the browser flow from POST /sso/start to the callback's
// answer (or, with stop, to the redirect to the callback).
func (b *browser) signIn(start map[string]string, u oidctest.User) (int, map[string]any) {
	b.t.Helper()
	body, _ := json.Marshal(start)
	req, _ := http.NewRequest(http.MethodPost, "http://auth.test/sso/start", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/html")
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	if resp.Request.URL.Host == "auth.test" {
		return decodeResp(b.t, resp) // start itself answered
	}
	resp, err = oidctest.Login(b.c, resp, u.Email, u.Password)
	if err != nil {
		b.t.Fatal(err)
	}
	return decodeResp(b.t, resp)
}

// get fetches u with the browser's cookies.
func (b *browser) get(u string) (int, map[string]any) {
	b.t.Helper()
	resp, err := b.c.Get(u)
	if err != nil {
		b.t.Fatal(err)
	}
	return decodeResp(b.t, resp)
}

func decodeResp(t testing.TB, resp *http.Response) (int, map[string]any) {
	t.Helper()
	defer func() { _ = resp.Body.Close() }()
	raw, _ := io.ReadAll(resp.Body)
	m := map[string]any{}
	_ = json.Unmarshal(raw, &m)
	if resp.StatusCode >= 500 && resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d: %s", resp.StatusCode, raw)
	}
	return resp.StatusCode, m
}

func errCode(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

// flowCookie returns the browser's sealed flow cookie.
func (b *browser) flowCookie() *http.Cookie {
	u, _ := url.Parse("http://auth.test/sso/")
	for _, c := range b.jar.Cookies(u) {
		if c.Name == ssoCookie {
			return c
		}
	}
	b.t.Fatal("no flow cookie")
	return nil
}

func (b *browser) setFlowCookie(v string) {
	u, _ := url.Parse("http://auth.test/sso/")
	b.jar.SetCookies(u, []*http.Cookie{{Name: ssoCookie, Value: v, Path: "/sso"}})
}

func jwtClaims(t testing.TB, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", jwt)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSSOOIDCSignIn(t *testing.T) {
	h := newSSOHarness(t)
	b := h.browser()
	status, body := b.signIn(map[string]string{"organization": "acme"}, alice)
	if status != http.StatusOK || body["access_token"] == nil {
		t.Fatalf("sign-in: %d %v", status, body)
	}
	if got := h.members.list(); len(got) != 1 || got[0] != "demo/acme|acme-idp|alice@acme.test|member" {
		t.Fatalf("JIT memberships: %v", got)
	}
	claims := jwtClaims(t, body["access_token"].(string))
	if amr, _ := claims["amr"].([]any); len(amr) != 1 || amr[0] != "sso" {
		t.Fatalf("amr = %v, want [sso]", claims["amr"])
	}
	if org, _ := body["organization"].(map[string]any); org["id"] != "org_acme" {
		t.Fatalf("organization = %v", body["organization"])
	}
	r := h.do(http.MethodGet, "/verify", nil, "Authorization", "Bearer "+body["access_token"].(string))
	if r.status != http.StatusOK || r.header.Get("X-Auth-Org-Id") != "org_acme" || r.header.Get("X-Auth-Email") != "alice@acme.test" {
		t.Fatalf("/verify: %d %v", r.status, r.header)
	}
	// By email: the verified domain routes to acme's connection; the
	// second sign-in finds the Membership and makes none.
	status, body = h.browser().signIn(map[string]string{"email": "alice@acme.test"}, alice)
	if status != http.StatusOK || len(h.members.list()) != 1 {
		t.Fatalf("sign-in by email: %d %v, memberships %v", status, body, h.members.list())
	}
	// The JSON answer of start, for clients that do not want a redirect.
	r = h.do(http.MethodPost, "/sso/start", map[string]string{"organization": "org_acme"})
	if r.status != http.StatusOK || !strings.HasPrefix(r.str("redirect_url"), h.op.Issuer+"/auth?") {
		t.Fatalf("start JSON: %d %v", r.status, r.body)
	}
	for _, want := range []string{"code_challenge_method=S256", "nonce=", "state=", "client_id=tenantauth"} {
		if !strings.Contains(r.str("redirect_url"), want) {
			t.Errorf("redirect_url lacks %s: %s", want, r.str("redirect_url"))
		}
	}
}

func TestSSOStartNotConfigured(t *testing.T) {
	h := newSSOHarness(t)
	for _, body := range []map[string]string{{"organization": "globex"}, {"organization": "nope"}, {"email": "x@unknown.test"}, {"email": "x@globex.test"}} {
		r := h.do(http.MethodPost, "/sso/start", body)
		if r.status != http.StatusNotFound || r.errCode() != "sso_not_configured" {
			t.Errorf("%v: %d %v", body, r.status, r.body)
		}
	}
	if r := h.do(http.MethodPost, "/sso/start", map[string]string{}); r.status != http.StatusBadRequest {
		t.Errorf("empty: %d %v", r.status, r.body)
	}
}

func TestSSOStartProviderDown(t *testing.T) {
	h := newSSOHarness(t)
	down := oidctest.Start(t, ssoClient)
	down.Stop()
	h.dir.PutSSOConnection(&directory.SSOConnection{Ref: "demo/globex-idp", UID: "uid-g", OrgRef: "demo/globex", Protocol: "oidc",
		Issuer: down.Issuer, ClientID: ssoClient.ID, DefaultRole: "member"})
	r := h.do(http.MethodPost, "/sso/start", map[string]string{"organization": "globex"})
	if r.status != http.StatusServiceUnavailable || r.errCode() != "sso_unavailable" || r.header.Get("Retry-After") == "" {
		t.Fatalf("IdP down: %d %v %v", r.status, r.body, r.header)
	}
}

// BenchmarkSSOSignIn is a whole OIDC sign-in per iteration, as a browser
// makes it: POST /sso/start, the provider's authorization endpoint and
// login form, and GET /sso/oidc/callback (code exchange with PKCE, ID
// token and userinfo, session made on the memory store). The provider
// runs in the same process, so its work counts too. Compare
// BenchmarkLogin (password, default argon2id) on the same store.
func BenchmarkSSOSignIn(b *testing.B) {
	h := newSSOHarness(b, func(c *Config) { c.RateLimitPerMinute = -1 })
	h.addMember("demo/acme", alice.Email, "member", "")
	for b.Loop() {
		if status, body := h.browser().signIn(map[string]string{"organization": "acme"}, alice); status != http.StatusOK {
			b.Fatalf("sign-in: %d %v", status, body)
		}
	}
}
