package controllers

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/internal/domains"
	"github.com/tenantauth/tenantauth/internal/testenv"
)

var (
	cfg       *rest.Config
	k8s       client.Client // direct, uncached
	scheme    = runtime.NewScheme()
	testKey   = []byte("0123456789abcdef0123456789abcdef")
	nsCounter int
	// dnsSrv is a real DNS server on 127.0.0.1 that the reconcilers ask
	// for the domains' TXT challenges.
	dnsSrv *testenv.DNSServer
)

// systemNS is the operator's namespace in these tests, where the records
// the auth server trusts are written.
const systemNS = "tenantauth-system"

func TestMain(m *testing.M) {
	_ = clientgoscheme.AddToScheme(scheme)
	_ = tav1.AddToScheme(scheme)
	env, c, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cfg = c
	k8s, err = client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: systemNS}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv, stopDNS, err := testenv.NewDNS()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	dnsSrv = srv
	code := m.Run()
	stopDNS()
	_ = env.Stop()
	os.Exit(code)
}

// newNamespace makes a fresh namespace so tests do not see each other.
func newNamespace(t *testing.T) string {
	t.Helper()
	nsCounter++
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "t-"}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	return ns.Name
}

// startManager runs all reconcilers in a manager for the test's duration.
func startManager(t *testing.T) {
	t.Helper()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: new(true)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	resolver, err := domains.NewResolver(dnsSrv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := SetupWithManager(ctx, mgr, Options{InstallationKey: testKey, SystemNamespace: systemNS, Resolver: resolver,
		SSOPrivateNetworks:    true, // the tests' identity providers run on 127.0.0.1
		DomainRecheckInterval: time.Second, DomainRetryInterval: 500 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("manager: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// nopRecorder drops events, for reconcilers driven directly by tests.
type nopRecorder struct{}

func (nopRecorder) Eventf(runtime.Object, runtime.Object, string, string, string, string, ...any) {}

var _ events.EventRecorder = nopRecorder{}

// clock is a settable time source.
type clock struct{ t time.Time }

func (c *clock) Now() time.Time { return c.t }

func newOrg(ns, name string) *tav1.Organization {
	return &tav1.Organization{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
}
