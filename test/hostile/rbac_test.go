package hostile

import (
	"context"
	"net"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/internal/app"
	"github.com/tenantauth/tenantauth/internal/trust"
)

// shippedRBAC is the release's RBAC for both components (config/rbac).
var shippedRBAC = []string{
	"config/rbac/service_account.yaml",
	"config/rbac/role.yaml",
	"config/rbac/role_binding.yaml",
	"config/rbac/leader_election_role.yaml",
	"config/rbac/leader_election_role_binding.yaml",
	"config/rbac/webhook_ca_role.yaml",
	"config/rbac/authserver_service_account.yaml",
	"config/rbac/authserver_role.yaml",
	"config/rbac/authserver_role_binding.yaml",
}

func applyShippedRBAC(g Gomega) {
	for _, f := range shippedRBAC {
		applyManifest(g, f)
	}
}

// access is one `kubectl auth can-i` question.
type access struct {
	name string
	attr authorizationv1.ResourceAttributes
	want bool
}

// canI asks the API server, as c's user, whether it may do attr.
func canI(g Gomega, c client.Client, attr authorizationv1.ResourceAttributes) bool {
	ssar := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &attr}}
	g.Expect(c.Create(world.ctx, ssar)).To(Succeed())
	return ssar.Status.Allowed
}

// checkAccess asks every question as c. RBAC reaches the authorizer
// through its informers, so answers are polled until the allowed ones
// hold; the denied ones are then asked of the same settled state.
func checkAccess(t *testing.T, c client.Client, cases []access) {
	g := newG(t)
	g.Eventually(func(g Gomega) {
		for _, tc := range cases {
			if tc.want {
				g.Expect(canI(g, c, tc.attr)).To(BeTrue(), tc.name)
			}
		}
	}).Should(Succeed())
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := canI(newG(t), c, tc.attr); got != tc.want {
				t.Errorf("can-i %s: %v, want %v", tc.name, got, tc.want)
			}
		})
	}
}

// TestAuthServerLeastPrivilege applies the release's RBAC and asks, as the
// auth server's service account, what it may do; then runs a second auth
// server under exactly that RBAC and shows it serves acme correctly.
//
// Old behaviour it catches: the auth server's ClusterRole could get, list
// and watch every Secret in the cluster (plaintext API keys and the
// webhook CA key included): `kubectl auth can-i list secrets -A` was yes.
func TestAuthServerLeastPrivilege(t *testing.T) {
	g := newG(t)
	applyShippedRBAC(g)
	user, groups := serviceAccount(systemNS, "tenantauth-authserver")
	sa := impersonate(g, user, groups...)
	secrets := func(verb, ns string) authorizationv1.ResourceAttributes {
		return authorizationv1.ResourceAttributes{Verb: verb, Resource: "secrets", Namespace: ns}
	}
	kind := func(verb, resource, sub string) authorizationv1.ResourceAttributes {
		return authorizationv1.ResourceAttributes{Verb: verb, Group: "tenantauth.io", Resource: resource, Subresource: sub}
	}
	checkAccess(t, sa, []access{
		{"list secrets -A", secrets("list", ""), false},
		{"watch secrets -A", secrets("watch", ""), false},
		{"get secrets -n acme", secrets("get", victimNS), false},
		{"list secrets -n evil", secrets("list", evilNS), false},
		{"list secrets -n tenantauth-system", secrets("list", systemNS), true},
		{"watch secrets -n tenantauth-system", secrets("watch", systemNS), true},
		{"list organizations -A", kind("list", "organizations", ""), true},
		{"update organizations -A", kind("update", "organizations", ""), false},
		{"patch apikeys/status -A", kind("patch", "apikeys", "status"), false},
		{"delete memberships -A", kind("delete", "memberships", ""), false},
	})

	// A second auth server, a replica of the first behind the same public
	// URL, whose every API call is the service account's.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	base := "http://" + l.Addr().String()
	// Each auth server registers its HTTP metrics; this one gets its own
	// registry so they do not collide in one test process.
	shared := metrics.Registry
	metrics.Registry = prometheus.NewRegistry()
	mgr, _, err := app.NewAuthServer(world.ctx, impersonatedConfig(user, groups...), authServerOptions(l, filepath.Join(t.TempDir(), "outbox")))
	metrics.Registry = shared
	g.Expect(err).NotTo(HaveOccurred(), "the auth server starts under the shipped RBAC")
	startManager(t, mgr)

	g.Eventually(func() int { return verifyKeyAt(base, world.acmeKey, "org=acme&scope=write") }).Should(Equal(200))
	g.Eventually(func() int { return verifyJWTAt(base, world.aliceJWT, "org=acme&role=owner") }).Should(Equal(200),
		"alice's token, with her session read from the store as the service account")
	g.Expect(verifyKeyAt(base, forgeKey("live", world.acmeKeyID, cryptoIntN), "org=acme")).To(Equal(401))
	g.Expect(verifyKeyAt(base, world.evilKey, "org=acme")).To(Equal(403))
	g.Expect(verifyKeyAt(base, world.acmeKey, "org=acme&scope=delete")).To(Equal(403))
	code, body := loginAt(base, aliceEmail, "acme")
	g.Expect(code).To(Equal(200), "a sign-in writes the store as the service account: %v", body)
	jwt, _ := body["access_token"].(string)
	g.Expect(verifyJWT(jwt, "org=acme&role=owner")).To(Equal(200), "the first replica accepts the second's token")
}

// TestOperatorWebhookConfigurations asks, as the operator's service
// account under the release's RBAC, whether it may update webhook
// configurations: its own two, by name, and nothing else.
//
// Old behaviour it catches: the operator's ClusterRole could update every
// webhook configuration in the cluster.
func TestOperatorWebhookConfigurations(t *testing.T) {
	g := newG(t)
	applyShippedRBAC(g)
	user, groups := serviceAccount(systemNS, "tenantauth-operator")
	op := impersonate(g, user, groups...)
	whc := func(verb, resource, name string) authorizationv1.ResourceAttributes {
		return authorizationv1.ResourceAttributes{Verb: verb, Group: "admissionregistration.k8s.io", Resource: resource, Name: name}
	}
	const v, m = "validatingwebhookconfigurations", "mutatingwebhookconfigurations"
	checkAccess(t, op, []access{
		{"update validating tenantauth-validating-webhook-configuration", whc("update", v, "tenantauth-validating-webhook-configuration"), true},
		{"patch mutating tenantauth-mutating-webhook-configuration", whc("patch", m, "tenantauth-mutating-webhook-configuration"), true},
		{"list validating", whc("list", v, ""), true},
		{"update validating someone-else", whc("update", v, "someone-else"), false},
		{"patch validating someone-else", whc("patch", v, "someone-else"), false},
		{"update mutating someone-else", whc("update", m, "someone-else"), false},
		{"delete validating tenantauth-validating-webhook-configuration", whc("delete", v, "tenantauth-validating-webhook-configuration"), false},
		{"create validating", whc("create", v, ""), false},
	})
}

// startManager runs mgr until the test ends.
func startManager(t *testing.T, mgr ctrl.Manager) {
	ctx, cancel := context.WithCancel(world.ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("second auth server: %v", err)
		}
	})
}

// TestAuthServerCachesNoTenantSecret builds the auth server several times
// (as cluster admin, so nothing is refused) and asks each one's informer
// cache for the tenantauth-labelled Secrets in eve's namespace, where
// evil-ci's plaintext key lives. The auth server's cache must hold Secrets
// of the system namespace only, every time it starts.
//
// Old behaviour it catches: the cache selected every Secret with a
// tenantauth.io/component label in the cluster, plaintext API keys and
// the webhook CA key included.
func TestAuthServerCachesNoTenantSecret(t *testing.T) {
	g := newG(t)
	// The cache configuration is built from a map keyed by object
	// pointers; build it often enough that an order-dependent choice
	// shows. A choice that goes wrong one start in eight is missed by 40
	// starts with probability (7/8)^40, under 0.5 %.
	for i := range 40 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		g.Expect(err).NotTo(HaveOccurred())
		shared := metrics.Registry
		metrics.Registry = prometheus.NewRegistry()
		mgr, _, err := app.NewAuthServer(world.ctx, world.cfg, authServerOptions(l, filepath.Join(t.TempDir(), "outbox")))
		metrics.Registry = shared
		_ = l.Close()
		g.Expect(err).NotTo(HaveOccurred())
		ctx, cancel := context.WithCancel(world.ctx)
		done := make(chan error, 1)
		go func() { done <- mgr.GetCache().Start(ctx) }()
		g.Expect(mgr.GetCache().WaitForCacheSync(ctx)).To(BeTrue())

		inSystem := &corev1.SecretList{}
		g.Expect(mgr.GetCache().List(ctx, inSystem, client.InNamespace(systemNS))).To(Succeed())
		inEvil := &corev1.SecretList{}
		err = mgr.GetCache().List(ctx, inEvil, client.InNamespace(evilNS))
		all := &corev1.SecretList{}
		_ = mgr.GetCache().List(ctx, all)
		cancel()
		<-done
		var leaked []string
		for _, s := range all.Items {
			if s.Namespace != systemNS {
				leaked = append(leaked, s.Namespace+"/"+s.Name+" ("+s.Labels[tav1.LabelComponent]+")")
			}
		}
		g.Expect(leaked).To(BeEmpty(), "instance %d: the auth server's cache holds tenant Secrets", i)
		if err == nil {
			g.Expect(inEvil.Items).To(BeEmpty(), "instance %d: Secrets of namespace evil in the auth server's cache", i)
		}
		g.Expect(inSystem.Items).NotTo(BeEmpty(), "instance %d: the records in the system namespace are cached", i)
		for _, s := range inSystem.Items {
			g.Expect(s.Labels[tav1.LabelComponent]).To(BeElementOf(tav1.ComponentStore, trust.ComponentSigningKeys,
				trust.ComponentSlugClaim, trust.ComponentAPIKeyRecord), "instance %d caches only the components it reads: %s", i, s.Name)
		}
	}
}
