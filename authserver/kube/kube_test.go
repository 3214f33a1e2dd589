package kube

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tenantauth/tenantauth/authserver/account"

	"github.com/tenantauth/tenantauth/authserver/directory"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/authserver"
	"github.com/tenantauth/tenantauth/authserver/store/storetest"
	"github.com/tenantauth/tenantauth/internal/apikey"
	"github.com/tenantauth/tenantauth/internal/identity"
	"github.com/tenantauth/tenantauth/internal/signingkeys"
	"github.com/tenantauth/tenantauth/internal/testenv"
	"github.com/tenantauth/tenantauth/internal/trust"
)

var (
	env    *envtest.Environment
	cfg    *rest.Config
	k8s    client.Client
	scheme = runtime.NewScheme()
	key    = []byte("kube-test-installation-key-01234")
)

func TestMain(m *testing.M) {
	_ = clientgoscheme.AddToScheme(scheme)
	_ = tav1.AddToScheme(scheme)
	var err error
	env, cfg, err = testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	k8s, err = client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

func newNamespace(t testing.TB) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "ks-"}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// startCache starts an informer cache shaped like the auth server's.
func startCache(t testing.TB) cache.Cache {
	t.Helper()
	req, _ := labels.NewRequirement(tav1.LabelComponent, selection.Exists, nil)
	c, err := cache.New(cfg, cache.Options{Scheme: scheme, ByObject: map[client.Object]cache.ByObject{
		&corev1.Secret{}: {Label: labels.NewSelector().Add(*req)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = c.Start(ctx) }()
	t.Cleanup(cancel)
	return c
}

func newKubeStore(t testing.TB, ns string, c cache.Cache) *Store {
	t.Helper()
	direct, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	st := NewStore(direct, direct, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := st.Watch(ctx, c); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestKubeStoreConformance(t *testing.T) {
	ns := newNamespace(t)
	storetest.Run(t, newKubeStore(t, ns, startCache(t)))
}

// tenant is a server on the Kubernetes store and source, over objects made
// here the way the operator makes them.
type tenant struct {
	ns, sys  string
	store    *Store
	srv      *authserver.Server
	http     *httptest.Server
	apiKey   string
	apiKeyCR *tav1.APIKey
	dir      *directory.Directory
	orgID    string
}

// writeOrgRecords writes what the operator writes for org in the system
// namespace sys: its record (ID and a fresh ES256 key) and its slug claim.
func writeOrgRecords(t testing.TB, sys string, org *tav1.Organization, id string) {
	t.Helper()
	g := NewWithT(t)
	set := &signingkeys.Set{}
	_, _, err := set.Rotate(signingkeys.Policy{Algorithm: "ES256", RotationInterval: time.Hour, AccessTokenTTL: 15 * time.Minute}, time.Now().Add(-time.Minute))
	g.Expect(err).NotTo(HaveOccurred())
	data, err := set.Marshal()
	g.Expect(err).NotTo(HaveOccurred())
	rec := trust.New(sys, trust.SigningKeysName(id), trust.ComponentSigningKeys, trust.OwnerOf(org))
	rec.Annotations[trust.AnnotationOrganizationID] = id
	rec.Data = map[string][]byte{signingkeys.DataKey: data}
	g.Expect(k8s.Create(context.Background(), rec)).To(Succeed())
	claim := trust.New(sys, trust.SlugClaimName(org.EffectiveSlug()), trust.ComponentSlugClaim, trust.OwnerOf(org))
	claim.Annotations[trust.AnnotationSlug] = org.EffectiveSlug()
	g.Expect(k8s.Create(context.Background(), claim)).To(Succeed())
}

// writeAPIKeyRecord writes the verification record of key for ak.
func writeAPIKeyRecord(t testing.TB, sys string, ak *tav1.APIKey, key apikey.Key) {
	t.Helper()
	rec := trust.New(sys, trust.APIKeyRecordName(key.ID), trust.ComponentAPIKeyRecord, trust.OwnerOf(ak))
	rec.Annotations[trust.AnnotationKeyID] = key.ID
	rec.Annotations[trust.AnnotationOrganization] = ak.Spec.Organization
	rec.Data = map[string][]byte{trust.APIKeyHashDataKey: []byte(key.Hash())}
	if err := k8s.Create(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
}

func newTenant(t testing.TB) *tenant {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)

	sys := newNamespace(t) // this server's system namespace: its store and the operator's records

	org := &tav1.Organization{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "acme"}, Spec: tav1.OrganizationSpec{DisplayName: "Acme Inc."}}
	g.Expect(k8s.Create(ctx, org)).To(Succeed())
	orgID := "org_" + ns
	writeOrgRecords(t, sys, org, orgID)
	g.Expect(k8s.Create(ctx, &tav1.Membership{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "alice"},
		Spec: tav1.MembershipSpec{Organization: "acme", Email: "alice@acme.com", Role: "owner"}})).To(Succeed())

	plain, k, err := apikey.Generate("live")
	g.Expect(err).NotTo(HaveOccurred())
	ak := &tav1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ci"}, Spec: tav1.APIKeySpec{Organization: "acme", Scopes: []tav1.APIKeyScope{"read"}}}
	g.Expect(k8s.Create(ctx, ak)).To(Succeed())
	writeAPIKeyRecord(t, sys, ak, k)

	c := startCache(t)
	dir := directory.NewDirectory()
	src := &Source{Dir: dir, Cache: c, Log: logr.Discard(), SystemNamespace: sys}
	sctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { _ = src.Start(sctx) }()
	st := newKubeStore(t, sys, c)
	g.Eventually(dir.Synced).WithTimeout(30 * time.Second).Should(BeTrue())
	g.Eventually(func() bool { _, ok := dir.Org("acme"); _, _, kok := dir.APIKey(k.ID); return ok && kok }).WithTimeout(10 * time.Second).Should(BeTrue())

	srv := authserver.New(authserver.Config{PublicURL: "http://auth.test", Secret: key, RequestTimeout: 3 * time.Second,
		Argon2: account.Argon2Params{MemoryKiB: 64, Time: 1, Threads: 1}, RateLimitPerMinute: 10_000}, dir, st, key)
	g.Expect(srv.SetPassword(ctx, identity.UserID(key, "alice@acme.com"), "correct horse battery")).To(Succeed())
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &tenant{ns: ns, sys: sys, store: st, srv: srv, http: hs, apiKey: plain, apiKeyCR: ak, dir: dir, orgID: orgID}
}

func (tn *tenant) post(t testing.TB, path string, body any, headers ...string) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", tn.http.URL+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	return send(t, req, headers...)
}

func (tn *tenant) get(t testing.TB, path string, headers ...string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("GET", tn.http.URL+path, nil)
	return send(t, req, headers...)
}

func send(t testing.TB, req *http.Request, headers ...string) (int, map[string]any) {
	t.Helper()
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m
}

// login logs alice in to this tenant's organization: other tests' tenants
// share the cluster, so alice is a member of several.
func (tn *tenant) login(t testing.TB) map[string]any {
	t.Helper()
	code, body := tn.post(t, "/auth/login", map[string]string{"email": "alice@acme.com", "password": "correct horse battery", "organization": "org_" + tn.ns})
	if code != 200 || body["access_token"] == nil {
		t.Fatalf("login: %d %v", code, body)
	}
	return body
}

func TestConcurrentRefreshOneWinner(t *testing.T) {
	tn := newTenant(t)
	rt := tn.login(t)["refresh_token"].(string)
	const n = 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	var winner string
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			code, body := tn.post(t, "/auth/refresh", map[string]string{"refresh_token": rt})
			mu.Lock()
			defer mu.Unlock()
			codes[code]++
			if code == 200 {
				winner, _ = body["refresh_token"].(string)
			}
		})
	}
	close(start)
	wg.Wait()
	if codes[200] != 1 || codes[401] != n-1 {
		t.Fatalf("status counts %v: want exactly one 200 and %d 401", codes, n-1)
	}
	if code, _ := tn.post(t, "/auth/refresh", map[string]string{"refresh_token": winner}); code != 200 {
		t.Fatalf("the winning pair works: %d", code)
	}
}

func TestRevocationTakesEffectWithinTwoSeconds(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	tn := newTenant(t)
	jwt := tn.login(t)["access_token"].(string)
	if code, _ := tn.get(t, "/verify", "X-API-Key", tn.apiKey); code != 200 {
		t.Fatalf("api key before revocation: %d", code)
	}
	ak := &tav1.APIKey{}
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(tn.apiKeyCR), ak)).To(Succeed())
	ak.Spec.Revoked = true
	g.Expect(k8s.Update(ctx, ak)).To(Succeed())
	g.Eventually(func() int { c, _ := tn.get(t, "/verify", "X-API-Key", tn.apiKey); return c }).
		WithTimeout(2 * time.Second).WithPolling(50 * time.Millisecond).Should(Equal(401))

	m := &tav1.Membership{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: tn.ns, Name: "alice"}, m)).To(Succeed())
	m.Spec.Disabled = true
	g.Expect(k8s.Update(ctx, m)).To(Succeed())
	g.Eventually(func() int { c, _ := tn.get(t, "/verify", "Authorization", "Bearer "+jwt); return c }).
		WithTimeout(2 * time.Second).WithPolling(50 * time.Millisecond).Should(Equal(401))

	g.Expect(k8s.Delete(ctx, &tav1.Organization{ObjectMeta: metav1.ObjectMeta{Namespace: tn.ns, Name: "acme"}})).To(Succeed())
	g.Eventually(func() int { c, _ := tn.get(t, "/orgs/org_"+tn.ns+"/.well-known/jwks.json"); return c }).
		WithTimeout(2 * time.Second).WithPolling(50 * time.Millisecond).Should(Equal(404))
}

// apiServerPID finds this suite's kube-apiserver by its port.
func apiServerPID(t *testing.T) int {
	t.Helper()
	u, err := url.Parse(cfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	want := "--secure-port=" + u.Port()
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		cmd, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmd), "\x00")
		if strings.HasSuffix(args[0], "kube-apiserver") && slices.Contains(args, want) {
			pid, _ := strconv.Atoi(filepath.Base(d))
			return pid
		}
	}
	t.Fatalf("no kube-apiserver with %s", want)
	return 0
}

// processStopped reports whether every thread of pid is stopped (state T
// in /proc/<pid>/task/*/stat, the field after the command's closing
// parenthesis).
func processStopped(pid int) bool {
	stats, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	for _, f := range stats {
		raw, err := os.ReadFile(f)
		if err != nil {
			return false
		}
		_, rest, ok := strings.Cut(string(raw[bytes.LastIndexByte(raw, ')')+1:]), " ")
		if !ok || !strings.HasPrefix(rest, "T") {
			return false
		}
	}
	return len(stats) > 0
}

// TestAPIServerOutage makes the kube-apiserver unreachable (SIGSTOP, as a
// partition would): verification keeps working from memory, writes answer
// 503 within the request timeout, and nothing is lost once it is back.
func TestAPIServerOutage(t *testing.T) {
	g := NewWithT(t)
	tn := newTenant(t)
	first := tn.login(t)
	jwt, rt := first["access_token"].(string), first["refresh_token"].(string)

	pid := apiServerPID(t)
	g.Expect(syscall.Kill(pid, syscall.SIGSTOP)).To(Succeed())
	resumed := false
	defer func() {
		if !resumed {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}()
	// kill returns before the process stops: one thread takes the signal
	// and stops the others once it runs, which on a loaded machine can be
	// after a whole login.
	g.Eventually(func() bool { return processStopped(pid) }).
		WithTimeout(30*time.Second).WithPolling(5*time.Millisecond).Should(BeTrue(), "the API server stops")

	for _, h := range [][]string{{"Authorization", "Bearer " + jwt}, {"X-API-Key", tn.apiKey}} {
		if code, body := tn.get(t, "/verify", h...); code != 200 {
			t.Fatalf("verify with %s while the API server is down: %d %v", h[0], code, body)
		}
	}
	code, body := tn.post(t, "/auth/login", map[string]string{"email": "alice@acme.com", "password": "correct horse battery", "organization": "org_" + tn.ns})
	if code != 503 {
		t.Fatalf("login (a store write) while down: %d %v", code, body)
	}
	if e, _ := body["error"].(map[string]any); e["code"] != "store_unavailable" {
		t.Fatalf("error shape: %v", body)
	}

	g.Expect(syscall.Kill(pid, syscall.SIGCONT)).To(Succeed())
	resumed = true
	g.Eventually(func() int {
		c, _ := tn.post(t, "/auth/login", map[string]string{"email": "alice@acme.com", "password": "correct horse battery", "organization": "org_" + tn.ns})
		return c
	}).WithTimeout(60 * time.Second).WithPolling(500 * time.Millisecond).Should(Equal(200))
	if code, body := tn.post(t, "/auth/refresh", map[string]string{"refresh_token": rt}); code != 200 {
		t.Fatalf("a session made before the outage refreshes after it: %d %v", code, body)
	}
}

// TestConcurrentLoginsOfOneUser logs one user in 20 times, concurrently,
// on the Kubernetes store: every login gets its own session (Dex, on
// Kubernetes storage, fails most of these). At most LockoutThreshold-1
// are in flight at once: each attempt counts as a failure until its
// password is checked (the guard against parallel guessing), so more at
// once on a slow API server may rightly meet the slow-down.
func TestConcurrentLoginsOfOneUser(t *testing.T) {
	tn := newTenant(t)
	const n = 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	sessions := map[string]bool{}
	start := make(chan struct{})
	inFlight := make(chan struct{}, account.LockoutThreshold-1)
	for range n {
		wg.Go(func() {
			<-start
			inFlight <- struct{}{}
			defer func() { <-inFlight }()
			code, body := tn.post(t, "/auth/login", map[string]string{"email": "alice@acme.com", "password": "correct horse battery", "organization": "org_" + tn.ns})
			mu.Lock()
			defer mu.Unlock()
			if code != 200 {
				t.Errorf("login: %d %v", code, body)
				return
			}
			sessions[body["session"].(map[string]any)["id"].(string)] = true
		})
	}
	close(start)
	wg.Wait()
	if len(sessions) != n {
		t.Fatalf("%d distinct sessions from %d concurrent logins", len(sessions), n)
	}
}
