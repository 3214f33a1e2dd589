package kube

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/authserver"
	"github.com/tenantauth/tenantauth/internal/trust"
)

// storeSecrets counts the store's Secrets in ns, read live.
func storeSecrets(t testing.TB, ns string) int {
	t.Helper()
	var list corev1.SecretList
	if err := k8s.List(context.Background(), &list, client.InNamespace(ns),
		client.MatchingLabels{tav1.LabelComponent: tav1.ComponentStore}); err != nil {
		t.Fatal(err)
	}
	return len(list.Items)
}

// TestUnauthenticatedFloodMakesNoRecords floods every unauthenticated
// endpoint with 2,000 requests of garbage tokens, unknown emails and
// emails that are no member (signups on the organization's own allowed
// and verified domain among them), from 200 client addresses behind a trusted proxy
// so the per-IP limit at its default lets them through, on the real
// Kubernetes store: the store's Secrets grow by at most the fixed decoy
// lockout shards, and a member still signs in afterwards. Dex's
// Kubernetes storage makes an object per such request (dexidp/dex#1292).
func TestUnauthenticatedFloodMakesNoRecords(t *testing.T) {
	if testing.Short() {
		t.Skip("flood skipped in -short mode")
	}
	g := NewWithT(t)
	ctx := context.Background()
	tn := newTenant(t)
	org := &tav1.Organization{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: tn.ns, Name: "acme"}, org)).To(Succeed())
	org.Spec.SelfSignup.AllowedEmailDomains = []string{"acme.com"}
	g.Expect(k8s.Update(ctx, org)).To(Succeed())
	// Verified for it, as the operator's claim makes it: an allowed
	// domain admits sign-up only then.
	claim := trust.New(tn.sys, trust.DomainClaimName("acme.com"), trust.ComponentDomainClaim, trust.OwnerOf(org))
	claim.Annotations[trust.AnnotationDomain] = "acme.com"
	g.Expect(k8s.Create(ctx, claim)).To(Succeed())
	g.Eventually(func() bool {
		o, ok := tn.dir.Org("org_" + tn.ns)
		return ok && len(o.SignupDomain) == 1 && tn.dir.DomainVerifiedFor("acme.com", o.Ref)
	}).WithTimeout(10 * time.Second).Should(BeTrue())

	cfg := tn.srv.Config()
	cfg.RateLimitPerMinute = 20 // the default
	proxies, err := authserver.ParseProxyList("127.0.0.0/8")
	g.Expect(err).NotTo(HaveOccurred())
	cfg.TrustedProxies = proxies
	srv := authserver.New(cfg, tn.dir, tn.store, key, authserver.WithMembershipWriter(&MembershipWriter{Client: k8s}))
	tn.http.Close()
	tn.http = httptest.NewServer(srv)
	t.Cleanup(tn.http.Close)

	before := storeSecrets(t, tn.sys)
	orgID := "org_" + tn.ns
	fake := func(prefix string) string { // well formed, never issued
		return prefix + "_" + strings.Repeat("a", 20) + "." + strings.Repeat("B", 43)
	}
	requests := []func(i int) (string, any){
		func(i int) (string, any) {
			return "/auth/login", map[string]string{"email": fmt.Sprintf("nobody%d@acme.com", i), "password": "wrong password"}
		},
		func(i int) (string, any) {
			return "/auth/login", map[string]string{"email": fmt.Sprintf("x%d@elsewhere.io", i), "password": "wrong password", "organization": orgID}
		},
		func(i int) (string, any) {
			return "/auth/register", map[string]string{"email": fmt.Sprintf("signup%d@acme.com", i), "password": "a fine long passphrase", "organization": orgID}
		},
		func(i int) (string, any) {
			return "/auth/register", map[string]string{"email": fmt.Sprintf("signup%d@other.io", i), "password": "a fine long passphrase", "organization": orgID}
		},
		func(i int) (string, any) {
			return "/users/send-magic-link", map[string]string{"email_address": fmt.Sprintf("nobody%d@acme.com", i)}
		},
		func(i int) (string, any) {
			return "/auth/forgot-password", map[string]string{"email": fmt.Sprintf("nobody%d@acme.com", i)}
		},
		func(i int) (string, any) { return "/auth/verify-email", map[string]string{"token": fake("ve")} },
		func(i int) (string, any) {
			return "/auth/verify-email", map[string]string{"token": "ve_" + strings.Repeat("a", 20) + "." + strings.Repeat("Zm9v", 60)}
		},
		func(i int) (string, any) {
			return "/users/authenticate-magic-link", map[string]string{"token": fake("ml")}
		},
		func(i int) (string, any) {
			return "/users/exchange-session", map[string]string{"intermediate_session_token": fake("ist"), "organization_id": orgID}
		},
		func(i int) (string, any) { return "/auth/refresh", map[string]string{"refresh_token": fake("rt")} },
		func(i int) (string, any) {
			return "/auth/2fa/verify", map[string]string{"intermediate_session_token": fake("ist"), "code": "123456"}
		},
		func(i int) (string, any) {
			return "/auth/reset-password", map[string]string{"token": fake("pr"), "password": "a fine long passphrase"}
		},
		func(i int) (string, any) { return "/auth/login", fmt.Sprintf(`{"email":%d`, i) }, // malformed
	}
	const total, clients = 2000, 200
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for c := range clients {
		wg.Go(func() {
			for i := c; i < total; i += clients {
				path, body := requests[i%len(requests)](i)
				code, resp := tn.post(t, path, body, "X-Forwarded-For", fmt.Sprintf("198.51.%d.%d", c/250, c%250+1))
				mu.Lock()
				codes[code]++
				if e, _ := resp["error"].(map[string]any); code == 503 && e["code"] != "busy" {
					codes[-code]++ // a 503 other than the hash pool shedding load
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if codes[429] > 0 || codes[500] > 0 || codes[-503] > 0 {
		t.Fatalf("flood answers %v: the limits or the server got in the way", codes)
	}
	// The mail flows run after their 202: wait until the count holds
	// still for a second.
	after := storeSecrets(t, tn.sys)
	for range 30 {
		time.Sleep(time.Second)
		n := storeSecrets(t, tn.sys)
		if n == after {
			break
		}
		after = n
	}
	t.Logf("flood answers %v; store Secrets %d before, %d after", codes, before, after)
	// 64 decoy lockout shards; nothing per request.
	if grown := after - before; grown > 64 {
		t.Fatalf("2,000 unauthenticated requests made %d store Secrets", grown)
	}
	code, body := tn.post(t, "/auth/login", map[string]string{"email": "alice@acme.com", "password": "correct horse battery", "organization": orgID},
		"X-Forwarded-For", "203.0.113.9")
	if code != 200 || body["access_token"] == nil {
		t.Fatalf("alice after the flood: %d %v", code, body)
	}
}
