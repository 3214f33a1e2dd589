package authserver

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantauth/tenantauth/authserver/account"
	"github.com/tenantauth/tenantauth/authserver/directory"

	"github.com/tenantauth/tenantauth/authserver/store"
	"github.com/tenantauth/tenantauth/internal/identity"
	"github.com/tenantauth/tenantauth/internal/signingkeys"
)

// testKey is the installation key of test servers.
var testKey = []byte("test-installation-key-0123456789")

// fastArgon keeps tests quick; benchmarks use account.DefaultArgon2.
var fastArgon = account.Argon2Params{MemoryKiB: 64, Time: 1, Threads: 1}

// testClock is a settable clock safe for concurrent use.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// harness is a server on a directory of test organizations.
type harness struct {
	t     testing.TB
	srv   *Server
	dir   *directory.Directory
	store store.Store
	clock *testClock
	http  *httptest.Server
}

type harnessOption func(*Config)

// newHarness builds a server with the memory store (or st) and two
// organizations, acme (ES256) and globex (EdDSA), served on a real
// listener.
func newHarness(t testing.TB, st store.Store, opts ...harnessOption) *harness {
	t.Helper()
	if st == nil {
		st = store.NewMemoryStore()
	}
	clk := &testClock{t: time.Now().UTC().Truncate(time.Second)}
	cfg := Config{PublicURL: "http://auth.test", Secret: testKey, Argon2: fastArgon, Now: clk.Now, RateLimitPerMinute: 1000}
	for _, o := range opts {
		o(&cfg)
	}
	dir := directory.NewDirectory()
	h := &harness{t: t, dir: dir, store: st, clock: clk}
	h.addOrg("demo/acme", "org_acme", "acme", "Acme Inc.", "ES256")
	h.addOrg("demo/globex", "org_globex", "globex", "Globex", "EdDSA")
	dir.SetSynced()
	h.srv = New(cfg, dir, st, testKey)
	h.http = httptest.NewServer(h.srv)
	t.Cleanup(h.http.Close)
	return h
}

// testOrg is an organization with test defaults.
func testOrg(ref, id, slug, name, alg string) *directory.Org {
	return &directory.Org{Ref: ref, ID: id, Slug: slug, Name: name, AccessTTL: 15 * time.Minute, IdleTTL: 24 * time.Hour,
		AbsoluteTTL: 72 * time.Hour, Algorithm: alg, Password: true, MagicLink: true, APIKeys: true, DefaultRole: "member",
		Roles: map[string]directory.RoleDef{
			"owner": {Rank: 100, Permissions: []string{"org:delete"}}, "admin": {Rank: 80}, "manager": {Rank: 60},
			"member": {Rank: 40, Permissions: []string{"objects:read"}}, "viewer": {Rank: 20},
		}}
}

// addOrg adds an organization with one fresh signing key.
func (h *harness) addOrg(ref, id, slug, name, alg string) *directory.Org {
	h.t.Helper()
	o := testOrg(ref, id, slug, name, alg)
	h.dir.PutOrg(o)
	h.dir.PutKeys(ref, mustKeySet(h.t, alg, time.Now().Add(-time.Hour)))
	return o
}

// mustKeySet makes a key set with one key active from activeFrom.
func mustKeySet(t testing.TB, alg string, activeFrom time.Time) *directory.KeySet {
	t.Helper()
	k, err := signingkeys.Generate(alg)
	if err != nil {
		t.Fatal(err)
	}
	set := &signingkeys.Set{Entries: []signingkeys.Entry{{Key: k, KID: k.KeyID(), Algorithm: alg, ActiveFrom: activeFrom}}}
	ks, err := directory.PrepareKeySet(set)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// addMember adds a membership and, when password is not empty, a password.
func (h *harness) addMember(orgRef, email, role, password string) string {
	h.t.Helper()
	h.dir.PutMember(&directory.Member{Ref: orgRef + "-" + email, OrgRef: orgRef, Email: email, Role: role})
	uid := identity.UserID(testKey, email)
	if password != "" {
		if err := h.srv.accounts.SetPassword(context.Background(), uid, password); err != nil {
			h.t.Fatal(err)
		}
	}
	return uid
}

// response is a decoded answer.
type response struct {
	status  int
	header  http.Header
	body    map[string]any
	raw     string
	cookies []*http.Cookie
}

// do sends a request to the harness's listener. body may be a string (sent
// as is) or a value (sent as JSON); headers are name, value pairs.
func (h *harness) do(method, path string, body any, headers ...string) response {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		buf, _ := json.Marshal(b)
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, h.http.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i] == "Cookie" {
			req.Header.Add("Cookie", headers[i+1])
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header, raw: string(raw), cookies: resp.Cookies()}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// errCode is the error code of an error answer.
func (r response) errCode() string {
	e, _ := r.body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

// str reads a string at a dotted path of the body.
func (r response) str(path string) string {
	var cur any = r.body
	for _, p := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = m[p]
	}
	s, _ := cur.(string)
	return s
}

// login logs in and fails the test unless a session comes back.
func (h *harness) login(email, password, org string) response {
	h.t.Helper()
	r := h.do("POST", "/auth/login", map[string]string{"email": email, "password": password, "organization": org})
	if r.status != http.StatusOK || r.str("access_token") == "" {
		h.t.Fatalf("login %s: %d %s", email, r.status, r.raw)
	}
	return r
}

// org returns the directory's own entry for ref, for tests that change an
// organization's settings in place.
func (h *harness) org(ref string) *directory.Org {
	o, ok := h.dir.OrgByRef(ref)
	if !ok {
		h.t.Fatalf("no organization %s", ref)
	}
	return o
}
