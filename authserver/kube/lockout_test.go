package kube

import (
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/tenantauth/tenantauth/authserver"
	"github.com/tenantauth/tenantauth/authserver/store"
	"github.com/tenantauth/tenantauth/internal/identity"
)

// TestLockoutAcrossReplicas guesses alice's password through two servers,
// each with its own cache and store over the same namespace, as two
// replicas run: the failures add up in the Kubernetes store, so the
// slow-down starts after five guesses in all, on both.
func TestLockoutAcrossReplicas(t *testing.T) {
	tn := newTenant(t)
	st2 := newKubeStore(t, tn.sys, startCache(t))
	srv2 := authserver.New(tn.srv.Config(), tn.srv.Directory(), st2, key)
	hs2 := httptest.NewServer(srv2)
	t.Cleanup(hs2.Close)
	replicas := []*tenant{tn, {ns: tn.ns, srv: srv2, http: hs2}}
	guess := func(i int, password string) (int, map[string]any) {
		return replicas[i%2].post(t, "/auth/login", map[string]string{"email": "alice@acme.com", "password": password, "organization": "org_" + tn.ns})
	}
	for i := range 5 {
		if code, body := guess(i, fmt.Sprintf("wrong %d", i)); code != 401 {
			t.Fatalf("guess %d on replica %d: %d %v", i, i%2, code, body)
		}
	}
	for i := range 2 {
		code, body := guess(i, "correct horse battery")
		e, _ := body["error"].(map[string]any)
		if code != 429 || e["code"] != "too_many_failures" {
			t.Fatalf("replica %d after five failures: %d %v", i, code, body)
		}
	}
	// The count is one record in the store, which both replicas read.
	uid := identity.UserID(key, "alice@acme.com")
	NewWithT(t).Eventually(func() error {
		_, err := st2.Get(t.Context(), store.KindLockout, uid)
		return err
	}).WithTimeout(5 * time.Second).Should(Succeed())
}
