// Package hostile plays a hostile tenant against the real operator and the
// real auth server on one envtest control plane: one tenant attacking
// another's tokens, keys and members, as the trust model says it cannot
// (issue 9).
//
// The victim is the Organization acme in namespace acme: owner alice, API
// key acme-ci (read, write). The attacker is eve, owner of the Organization
// evil in namespace evil, with the namespace RBAC a platform team usually
// holds there: everything on Secrets and on the three tenantauth kinds,
// their status included. She acts through a client that impersonates her.
//
// The operator runs without admission webhooks: the point is that the
// records the operator writes in the system namespace, and the auth
// server's join of objects with them, hold even when nothing refuses the
// tenant's writes (the webhook rules are tested in webhook/).
//
// Each test plays one attack, checks that it fails, and checks that the
// victim keeps working during and after it. The suite uses the wiring of
// the fix (internal/trust, the records in the system namespace), so it
// cannot run on the code before it; each test says which old behaviour it
// would have caught.
package hostile

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/authserver"
	"github.com/tenantauth/tenantauth/internal/app"
	"github.com/tenantauth/tenantauth/internal/testenv"
)

const (
	systemNS = "tenantauth-system"
	victimNS = "acme"
	evilNS   = "evil"

	aliceEmail = "alice@acme.test"
	eveEmail   = "eve@evil.test"
	password   = "correct horse battery staple"
)

// world is what every test shares: the control plane, the two components
// and the two tenants as set up by TestMain.
var world struct {
	env   *envtest.Environment
	cfg   *rest.Config
	admin client.Client
	eve   client.Client // impersonates eve with her namespace RBAC
	ctx   context.Context

	srv       *authserver.Server
	publicURL string // the auth server's listener, also its issuer base
	outbox    string

	// The victim, as the operator made it.
	acmeOrg     *tav1.Organization
	acmeID      string
	acmeKey     string // acme-ci's plaintext
	acmeKeyID   string
	acmeKeyUID  string
	aliceUserID string
	aliceJWT    string

	// The attacker, as the operator made it.
	evilOrg    *tav1.Organization
	evilID     string
	evilKey    string // evil-ci's plaintext
	evilKeyID  string
	eveUserID  string
	eveJWT     string
	eveSession string
}

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	os.Exit(run(m))
}

func run(m *testing.M) (code int) {
	env, err := testenv.New()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start control plane:", err)
		return 1
	}
	world.env, world.cfg = env, cfg
	outbox, err := os.MkdirTemp("", "hostile-outbox-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		_ = env.Stop()
		return 1
	}
	world.outbox = outbox
	ctx, cancel := context.WithCancel(context.Background())
	world.ctx = ctx
	var stopped []chan error
	defer func() {
		cancel()
		// The managers go down before the control plane does.
		for _, c := range stopped {
			<-c
		}
		_ = env.Stop()
		_ = os.RemoveAll(outbox)
	}()
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintln(os.Stderr, "hostile suite setup:", r)
			code = 1
		}
	}()
	stopped = setup(ctx)
	return m.Run()
}

// setup starts the operator and the auth server and makes both tenants.
// It panics on failure; run reports it.
func setup(ctx context.Context) []chan error {
	g := NewGomega(func(msg string, _ ...int) { panic(msg) })
	g.SetDefaultEventuallyTimeout(30 * time.Second)
	g.SetDefaultEventuallyPollingInterval(50 * time.Millisecond)

	admin, err := client.New(world.cfg, client.Options{Scheme: app.Scheme()})
	g.Expect(err).NotTo(HaveOccurred())
	world.admin = admin
	for _, ns := range []string{systemNS, victimNS, evilNS} {
		g.Expect(admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	}
	grantEve(g)
	world.eve = impersonate(g, eveEmail)

	operator, err := app.NewOperator(ctx, world.cfg, app.OperatorOptions{
		Namespace: systemNS, MetricsAddr: "0", ProbeAddr: "0", AdmissionMode: "enforce",
		AdmissionBypassGroups: "system:masters", EnableWebhooks: false,
	})
	g.Expect(err).NotTo(HaveOccurred())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	world.publicURL = "http://" + l.Addr().String()
	auth, srv, err := app.NewAuthServer(ctx, world.cfg, authServerOptions(l, filepath.Join(world.outbox, "main")))
	g.Expect(err).NotTo(HaveOccurred())
	world.srv = srv
	var stopped []chan error
	for _, mgr := range []ctrl.Manager{operator, auth} {
		done := make(chan error, 1)
		go func() { done <- mgr.Start(ctx) }()
		stopped = append(stopped, done)
	}

	world.acmeOrg, world.acmeID = makeOrg(ctx, g, victimNS, "acme")
	world.evilOrg, world.evilID = makeOrg(ctx, g, evilNS, "evil")
	world.aliceUserID = makeMember(ctx, g, victimNS, "alice", "acme", aliceEmail)
	world.eveUserID = makeMember(ctx, g, evilNS, "eve", "evil", eveEmail)
	var uid string
	world.acmeKey, world.acmeKeyID, uid = makeAPIKey(ctx, g, victimNS, "acme-ci", "acme")
	world.acmeKeyUID = uid
	world.evilKey, world.evilKeyID, _ = makeAPIKey(ctx, g, evilNS, "evil-ci", "evil")

	for _, u := range []string{world.aliceUserID, world.eveUserID} {
		g.Expect(srv.SetPassword(ctx, u, password)).To(Succeed())
	}
	// The auth server serves both organizations once its informers have
	// the objects and the records.
	g.Eventually(func() int { return verifyKey(world.acmeKey, "org=acme&scope=write") }).Should(Equal(200))
	g.Eventually(func() int { return verifyKey(world.evilKey, "org=evil&scope=write") }).Should(Equal(200))
	var sess map[string]any
	world.aliceJWT, sess = login(g, aliceEmail, "acme")
	g.Expect(sess).NotTo(BeNil())
	world.eveJWT, sess = login(g, eveEmail, "evil")
	world.eveSession, _ = sess["id"].(string)
	g.Expect(world.eveSession).NotTo(BeEmpty())
	g.Expect(verifyJWT(world.aliceJWT, "org=acme&role=owner")).To(Equal(200))
	return stopped
}

// authServerOptions are the auth server's flags as the chart sets them, on
// listener l.
func authServerOptions(l net.Listener, outbox string) app.AuthServerOptions {
	return app.AuthServerOptions{
		Listener: l, MetricsAddr: "0", PublicURL: world.publicURL, Namespace: systemNS, StoreBackend: "kubernetes",
		SessionCookieName: "tenantauth_session", RefreshCookieName: "tenantauth_refresh",
		RateLimitPerMinute: 1000, MinPasswordLength: 8,
		Mail: app.MailOptions{Backend: "file", OutboxDir: outbox},
	}
}

// grantEve gives eve what a tenant's platform team holds in its own
// namespace: everything on Secrets and on the tenantauth kinds there,
// status included. Nothing anywhere else.
func grantEve(g Gomega) {
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: evilNS, Name: "platform-team"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"*"}},
			{APIGroups: []string{tav1.GroupVersion.Group}, Verbs: []string{"*"}, Resources: []string{
				"organizations", "organizations/status", "memberships", "memberships/status", "apikeys", "apikeys/status",
			}},
		},
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: evilNS, Name: "platform-team"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: eveEmail}},
	}
	g.Expect(world.admin.Create(world.ctx, role)).To(Succeed())
	g.Expect(world.admin.Create(world.ctx, binding)).To(Succeed())
}

// makeOrg creates an Organization and waits until the operator made it
// Ready; it returns the object and its permanent ID.
func makeOrg(ctx context.Context, g Gomega, ns, name string) (*tav1.Organization, string) {
	org := &tav1.Organization{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: tav1.OrganizationSpec{DisplayName: name}}
	g.Expect(world.admin.Create(ctx, org)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(world.admin.Get(ctx, client.ObjectKeyFromObject(org), org)).To(Succeed())
		g.Expect(readyReason(org.Status.Conditions)).To(Equal("True/" + tav1.ReasonReady))
		g.Expect(org.Status.ID).To(HavePrefix("org_"))
	}).Should(Succeed())
	return org, org.Status.ID
}

// makeMember creates an owner Membership and returns the user ID the
// operator gave it.
func makeMember(ctx context.Context, g Gomega, ns, name, org, email string) string {
	m := &tav1.Membership{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: tav1.MembershipSpec{Organization: org, Email: email, Role: tav1.RoleOwner}}
	g.Expect(world.admin.Create(ctx, m)).To(Succeed())
	g.Eventually(func() string {
		_ = world.admin.Get(ctx, client.ObjectKeyFromObject(m), m)
		return m.Status.UserID
	}).Should(HavePrefix("usr_"))
	return m.Status.UserID
}

// makeAPIKey creates a read,write APIKey and returns its plaintext (read
// as cluster admin from the Secret the operator wrote), its key ID and
// its UID.
func makeAPIKey(ctx context.Context, g Gomega, ns, name, org string) (plain, keyID, uid string) {
	k := &tav1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: tav1.APIKeySpec{Organization: org, Scopes: []tav1.APIKeyScope{tav1.ScopeRead, tav1.ScopeWrite}}}
	g.Expect(world.admin.Create(ctx, k)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(world.admin.Get(ctx, client.ObjectKeyFromObject(k), k)).To(Succeed())
		g.Expect(readyReason(k.Status.Conditions)).To(Equal("True/" + tav1.ReasonReady))
		g.Expect(k.Status.KeyID).NotTo(BeEmpty())
	}).Should(Succeed())
	sec := &corev1.Secret{}
	g.Expect(world.admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, sec)).To(Succeed())
	return string(sec.Data[tav1.APIKeyDataKey]), k.Status.KeyID, string(k.UID)
}
