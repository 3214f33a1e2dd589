package webhookcert

import (
	"context"
	"fmt"
	"os"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenantauthv1alpha1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/internal/testenv"
)

// The suite runs one kube-apiserver and etcd; each test starts its own
// manager with only the rotator, so nothing here needs the webhooks.

var (
	scheme  = runtime.NewScheme()
	cfg     *rest.Config
	admin   client.Client // envtest's admin: direct and uncached
	testCtx = context.Background()
)

func TestMain(m *testing.M) {
	_ = clientgoscheme.AddToScheme(scheme)
	_ = tenantauthv1alpha1.AddToScheme(scheme)
	env, c, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cfg = c
	admin, err = client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		_ = env.Stop()
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

// newNamespace makes a fresh namespace so tests do not see each other.
func newNamespace(t testing.TB) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "wc-"}}
	if err := admin.Create(testCtx, ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	return ns.Name
}

func mustCreate(t testing.TB, obj client.Object) {
	t.Helper()
	if err := admin.Create(testCtx, obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}
