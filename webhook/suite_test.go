package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	tenantauthv1alpha1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/internal/testenv"
)

// The suite runs one kube-apiserver and etcd, and one manager serving the
// webhooks exactly as SetupWithManager registers them. Tests act as real
// users by impersonation: Kubernetes RBAC lets every authenticated user at
// tenantauth objects, so what is allowed or denied is the webhooks' doing.

const (
	operatorUser   = "system:serviceaccount:tenantauth-system:tenantauth-operator"
	authServerUser = "system:serviceaccount:tenantauth-system:tenantauth-authserver"
	// systemNS holds the operator's records, domain claims among them.
	systemNS = "tenantauth-system"
)

var (
	scheme  = runtime.NewScheme()
	cfg     *rest.Config
	admin   client.Client // envtest's admin, in system:masters: bypasses authorization
	mgr     ctrl.Manager
	testCtx = context.Background()

	usersMu sync.Mutex
	users   = map[string]client.Client{}

	nsCounter atomic.Int64
)

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	out := io.Discard
	if os.Getenv("TENANTAUTH_TEST_LOG") != "" {
		out = os.Stderr
	}
	logf.SetLogger(zap.New(zap.WriteTo(out), zap.UseDevMode(true)))
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(tenantauthv1alpha1.AddToScheme(scheme))

	env, err := testenv.New()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env.WebhookInstallOptions = envtest.WebhookInstallOptions{
		Paths: []string{filepath.Join(testenv.RepoRoot(), "config", "webhook")},
	}
	cfg, err = env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start envtest:", err)
		return 1
	}
	defer func() { _ = env.Stop() }()

	code, err := runWithManager(m, env)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return code
}

func runWithManager(m *testing.M, env *envtest.Environment) (int, error) {
	var err error
	admin, err = client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return 0, err
	}
	if err := grantAuthenticatedUsers(); err != nil {
		return 0, err
	}
	if err := admin.Create(testCtx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: systemNS}}); err != nil {
		return 0, err
	}
	wio := env.WebhookInstallOptions
	mgr, err = ctrl.NewManager(cfg, ctrl.Options{
		Scheme:  scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		WebhookServer: crwebhook.NewServer(crwebhook.Options{
			Host: wio.LocalServingHost, Port: wio.LocalServingPort, CertDir: wio.LocalServingCertDir,
		}),
	})
	if err != nil {
		return 0, err
	}
	if err := SetupWithManager(mgr, Options{
		Mode:             ModeEnforce,
		SignupUsername:   authServerUser,
		OperatorUsername: operatorUser,
		SystemNamespace:  systemNS,
	}); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithCancel(testCtx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		return 0, fmt.Errorf("cache did not sync")
	}
	if err := waitForServer(net.JoinHostPort(wio.LocalServingHost, strconv.Itoa(wio.LocalServingPort))); err != nil {
		return 0, err
	}
	return m.Run(), nil
}

// grantAuthenticatedUsers lets every authenticated user do anything with
// tenantauth objects, as a platform team delegating a namespace would.
func grantAuthenticatedUsers() error {
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "tenantauth-test-users"},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{tenantauthv1alpha1.GroupVersion.Group},
			Resources: []string{"organizations", "organizations/status", "memberships", "apikeys", "ssoconnections"},
			Verbs:     []string{"*"},
		}},
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "tenantauth-test-users"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "system:authenticated"}},
	}
	for _, o := range []client.Object{role, binding} {
		if err := admin.Create(testCtx, o); err != nil {
			return fmt.Errorf("create %T: %w", o, err)
		}
	}
	return nil
}

func waitForServer(addr string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // only checks the port is up
		if err == nil {
			return conn.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("webhook server at %s did not come up: %w", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// as returns a client that acts as user, an authenticated user in groups.
func as(t testing.TB, user string, groups ...string) client.Client {
	t.Helper()
	key := user + "|" + strings.Join(groups, ",")
	usersMu.Lock()
	defer usersMu.Unlock()
	if c, ok := users[key]; ok {
		return c
	}
	rc := rest.CopyConfig(cfg)
	rc.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: append([]string{"system:authenticated"}, groups...)}
	c, err := client.New(rc, client.Options{Scheme: scheme, Mapper: admin.RESTMapper()})
	if err != nil {
		t.Fatalf("client for %s: %v", user, err)
	}
	users[key] = c
	return c
}

// newNamespace makes a namespace for one test. Organization names derive
// from it, which keeps cluster-wide slugs apart between tests.
func newNamespace(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("wh-%d-%d", time.Now().Unix()%100000, nsCounter.Add(1))
	if err := admin.Create(testCtx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	return name
}

func org(ns, name string, mutate ...func(*tenantauthv1alpha1.Organization)) *tenantauthv1alpha1.Organization {
	o := &tenantauthv1alpha1.Organization{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	for _, f := range mutate {
		f(o)
	}
	return o
}

func membership(ns, name, orgName, email, role string) *tenantauthv1alpha1.Membership {
	return &tenantauthv1alpha1.Membership{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       tenantauthv1alpha1.MembershipSpec{Organization: orgName, Email: email, Role: role},
	}
}

func apiKey(ns, name, orgName string, scopes ...tenantauthv1alpha1.APIKeyScope) *tenantauthv1alpha1.APIKey {
	return &tenantauthv1alpha1.APIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       tenantauthv1alpha1.APIKeySpec{Organization: orgName, Scopes: scopes},
	}
}

// mustCreate creates obj as c and waits until the webhooks' cache has it,
// so the next request sees it as a user's next command would.
func mustCreate(t testing.TB, c client.Client, obj client.Object) {
	t.Helper()
	if err := c.Create(testCtx, obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
	waitCached(t, obj)
}

// waitCached waits until the manager's cache holds obj at its current
// resourceVersion.
func waitCached(t testing.TB, obj client.Object) {
	t.Helper()
	g := NewWithT(t)
	g.Eventually(func() string {
		fresh := obj.DeepCopyObject().(client.Object)
		if err := mgr.GetCache().Get(testCtx, client.ObjectKeyFromObject(obj), fresh); err != nil {
			return ""
		}
		return fresh.GetResourceVersion()
	}).WithTimeout(10 * time.Second).WithPolling(20 * time.Millisecond).Should(Equal(obj.GetResourceVersion()))
}

// waitGone waits until the manager's cache no longer holds obj.
func waitGone(t testing.TB, obj client.Object) {
	t.Helper()
	g := NewWithT(t)
	g.Eventually(func() bool {
		fresh := obj.DeepCopyObject().(client.Object)
		return apierrors.IsNotFound(mgr.GetCache().Get(testCtx, client.ObjectKeyFromObject(obj), fresh))
	}).WithTimeout(10 * time.Second).WithPolling(20 * time.Millisecond).Should(BeTrue())
}

// mustDelete deletes obj as c and waits until the cache has seen it go.
func mustDelete(t testing.TB, c client.Client, obj client.Object) {
	t.Helper()
	if err := c.Delete(testCtx, obj); err != nil {
		t.Fatalf("delete %T %s: %v", obj, obj.GetName(), err)
	}
	waitGone(t, obj)
}

// mustUpdate changes obj as c through mutate and waits for the cache.
func mustUpdate[T client.Object](t testing.TB, c client.Client, obj T, mutate func(T)) {
	t.Helper()
	if err := update(c, obj, mutate); err != nil {
		t.Fatalf("update %T %s: %v", obj, obj.GetName(), err)
	}
	waitCached(t, obj)
}

// update re-reads obj (as the admin, so reads never depend on the webhook),
// applies mutate and updates it as c.
func update[T client.Object](c client.Client, obj T, mutate func(T)) error {
	if err := admin.Get(testCtx, client.ObjectKeyFromObject(obj), obj); err != nil {
		return err
	}
	mutate(obj)
	return c.Update(testCtx, obj)
}

// outcome is what a test expects of a request.
type outcome struct {
	// allowed: the request succeeds.
	allowed bool
	// forbidden: denied by authorization (403); else denied as invalid (422).
	forbidden bool
	// field is the field an Invalid denial must name.
	field string
	// contains are fragments the denial message must hold.
	contains []string
}

var allowed = outcome{allowed: true}

func forbidden(contains ...string) outcome { return outcome{forbidden: true, contains: contains} }

func invalidField(field string, contains ...string) outcome {
	return outcome{field: field, contains: contains}
}

// check fails t unless err, from a request to the API server, matches want.
func check(t testing.TB, err error, want outcome) {
	t.Helper()
	checkErr(t, err, want, true)
}

// checkDirect fails t unless err, from calling a validator directly,
// matches want.
func checkDirect(t testing.TB, err error, want outcome) {
	t.Helper()
	checkErr(t, err, want, false)
}

func checkErr(t testing.TB, err error, want outcome, viaAPIServer bool) {
	t.Helper()
	if want.allowed {
		if err != nil {
			t.Fatalf("want allowed, got %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("want denied (%+v), got allowed", want)
	}
	switch {
	case want.forbidden && !apierrors.IsForbidden(err):
		t.Fatalf("want Forbidden, got %s: %v", apierrors.ReasonForError(err), err)
	case !want.forbidden && !apierrors.IsInvalid(err):
		t.Fatalf("want Invalid, got %s: %v", apierrors.ReasonForError(err), err)
	}
	msg := err.Error()
	if viaAPIServer && (want.forbidden || want.field != "") && !strings.Contains(msg, `admission webhook "`) {
		t.Fatalf("want a denial by a tenantauth webhook, got %q", msg)
	}
	if !want.forbidden && want.field != "" && !hasCause(err, want.field) {
		t.Fatalf("want a cause on field %s, got %v", want.field, err)
	}
	for _, c := range want.contains {
		if !strings.Contains(msg, c) {
			t.Fatalf("want message containing %q, got %q", c, msg)
		}
	}
}

func hasCause(err error, fieldPath string) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) || status.Status().Details == nil {
		return false
	}
	for _, c := range status.Status().Details.Causes {
		if c.Field == fieldPath {
			return true
		}
	}
	return false
}
