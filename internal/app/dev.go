package app

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/tenantauth/tenantauth/authserver"
	"github.com/tenantauth/tenantauth/internal/testenv"
)

// DevOptions are the flags of `tenantauth dev`.
type DevOptions struct {
	Addr      string
	StateDir  string
	Samples   string
	Namespace string
	// ForwardedURISource is the auth server's --forwarded-uri-source.
	ForwardedURISource authserver.ForwardedURISource
	// TrustedProxies and PasswordHashConcurrency are passed to the auth
	// server as its flags of the same names.
	TrustedProxies          string
	PasswordHashConcurrency int
	// Store and Postgres are the auth server's --store and postgres flags.
	Store    string
	Postgres PostgresOptions
	// DNSResolver is the operator's --dns-resolver; empty runs dev's own
	// DNS server, which answers every Organization's domain challenge
	// (publishDevChallenges).
	DNSResolver string
	// PprofAddr serves net/http/pprof for profiling; empty turns it off.
	PprofAddr string
}

// Bind registers the flags on fs.
func (o *DevOptions) Bind(fs *flag.FlagSet) {
	fs.StringVar(&o.Addr, "addr", "127.0.0.1:8080", "address of the auth server")
	fs.StringVar(&o.StateDir, "state-dir", ".dev", "folder for kubeconfig and the mail outbox/")
	fs.StringVar(&o.Samples, "samples", "config/samples", "folder of manifests to apply at start; empty applies none")
	fs.StringVar(&o.Namespace, "namespace", "tenantauth-system", "namespace of the operator and the auth server")
	BindForwardedURISource(fs, &o.ForwardedURISource)
	fs.StringVar(&o.TrustedProxies, "trusted-proxies", "", "comma-separated CIDRs of proxies whose X-Forwarded-For is believed (see tenantauth authserver --help)")
	fs.IntVar(&o.PasswordHashConcurrency, "password-hash-concurrency", 0, "argon2 hashes run at once; 0 means the CPUs, at most 4")
	fs.StringVar(&o.Store, "store", "kubernetes", "the auth server's runtime state: kubernetes (in the embedded control plane) or postgres (with --postgres-dsn)")
	o.Postgres.Bind(fs)
	fs.StringVar(&o.DNSResolver, "dns-resolver", "", "host:port of the DNS server that answers the domains' TXT challenges (default: dev's own, which answers every Organization's challenge, so every listed domain verifies)")
	fs.StringVar(&o.PprofAddr, "pprof-addr", "", "address of net/http/pprof (/debug/pprof/) for profiling; empty turns it off")
}

// RunDev runs everything on one machine: an embedded kube-apiserver and
// etcd, the CRDs and webhooks, the operator and the auth server in this
// process, and the samples. It prints "ready" once every endpoint answers
// and stops everything on ctx's end.
func RunDev(ctx context.Context, o DevOptions) error {
	log := ctrl.Log.WithName("dev")
	TuneGC() // the auth server's, and the operator's beside it
	if err := ensureAssets(); err != nil {
		return err
	}
	if o.PprofAddr != "" {
		if err := servePprof(ctx, o.PprofAddr); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(o.StateDir, "outbox"), 0o755); err != nil {
		return fmt.Errorf("make state dir: %w", err)
	}
	env, err := testenv.New()
	if err != nil {
		return err
	}
	env.WebhookInstallOptions = envtest.WebhookInstallOptions{
		Paths: []string{filepath.Join(testenv.RepoRoot(), "config", "webhook")}, IgnoreSchemeConvertible: true,
	}
	fmt.Println("starting kube-apiserver and etcd ...")
	cfg, err := env.Start()
	if err != nil {
		return fmt.Errorf("start control plane: %w", err)
	}
	defer func() {
		if err := env.Stop(); err != nil {
			log.Error(err, "stop control plane")
		}
	}()
	kubeconfig, err := testenv.Kubeconfig(cfg, "demo")
	if err != nil {
		return fmt.Errorf("render kubeconfig: %w", err)
	}
	kcPath, _ := filepath.Abs(filepath.Join(o.StateDir, "kubeconfig"))
	if err := os.WriteFile(kcPath, kubeconfig, 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: Scheme()})
	if err != nil {
		return err
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: o.Namespace}}); client.IgnoreAlreadyExists(err) != nil {
		return fmt.Errorf("create namespace: %w", err)
	}

	resolver, retry := o.DNSResolver, time.Duration(0)
	var devDNS *testenv.DNSServer
	if resolver == "" {
		s, stop, err := testenv.NewDNS()
		if err != nil {
			return fmt.Errorf("start dev DNS server: %w", err)
		}
		defer stop()
		devDNS, resolver, retry = s, s.Addr, devDomainRetry
	}

	wh := env.WebhookInstallOptions
	operator, err := NewOperator(ctx, cfg, OperatorOptions{
		Namespace: o.Namespace, MetricsAddr: "0", ProbeAddr: "0", AdmissionMode: "enforce", AdmissionBypassGroups: "system:masters",
		WebhookHost: wh.LocalServingHost, WebhookPort: wh.LocalServingPort, WebhookCertDir: wh.LocalServingCertDir,
		ManageWebhookCerts: false, EnableWebhooks: true, DNSResolver: resolver, DomainRetryInterval: retry, SSOPrivateNetworks: true,
	})
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.Addr, err)
	}
	publicURL := "http://" + l.Addr().String()
	auth, _, err := NewAuthServer(ctx, cfg, AuthServerOptions{
		Listener: l, MetricsAddr: "0", PublicURL: publicURL, Namespace: o.Namespace, StoreBackend: cmp.Or(o.Store, "kubernetes"), Postgres: o.Postgres,
		SessionCookieName: "tenantauth_session", RefreshCookieName: "tenantauth_refresh", RateLimitPerMinute: 20,
		MinPasswordLength: 8, ForwardedURISource: o.ForwardedURISource,
		TrustedProxies: o.TrustedProxies, PasswordHashConcurrency: o.PasswordHashConcurrency,
		Mail: MailOptions{Backend: "file", OutboxDir: filepath.Join(o.StateDir, "outbox")},
		// One machine: its identity providers for trying SSO run locally.
		SSOPrivateNetworks: true,
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	for _, m := range []ctrl.Manager{operator, auth} {
		go func() { errc <- m.Start(ctx) }()
	}
	if devDNS != nil {
		go publishDevChallenges(ctx, c, devDNS, time.Second)
	}
	if o.Samples != "" {
		if err := applyDir(ctx, c, o.Samples); err != nil {
			cancel()
			return err
		}
	}
	if err := waitReady(ctx, publicURL, errc); err != nil {
		cancel()
		return err
	}
	fmt.Printf(walkthrough, publicURL, kcPath, filepath.Join(o.StateDir, "outbox"))
	fmt.Println("tenantauth dev: ready at " + publicURL)

	var runErr error
	running := 2
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		running--
	}
	cancel()
	fmt.Println("stopping ...")
	// The managers must be down before the control plane and the webhook
	// certificates go away under them.
	for ; running > 0; running-- {
		<-errc
	}
	return runErr
}

const walkthrough = `
tenantauth is running on an embedded control plane.

  auth server   %[1]s
  kubeconfig    %[2]s
  mail outbox   %[3]s

Try it:
  export KUBECONFIG=%[2]s
  bin/k8s/v1.37.2/kubectl get org,mbr,apikey -A
  KEY=$(bin/k8s/v1.37.2/kubectl -n demo get secret acme-ci -o jsonpath='{.data.api-key}' | base64 -d)
  curl -i -H "Authorization: Bearer $KEY" '%[1]s/verify?org=acme&scope=read'
  curl -s %[1]s/orgs/acme/.well-known/jwks.json
  curl -s -XPOST -H 'Content-Type: application/json' -d '{"email":"alice@acme.com"}' %[1]s/auth/forgot-password
  # then open the newest message in %[3]s, and POST its token with a password to /auth/reset-password

Ctrl-C stops everything.
`

// ensureAssets builds the control-plane binaries when they are missing.
func ensureAssets() error {
	if _, err := os.Stat(filepath.Join(testenv.AssetsDir(), "kube-apiserver")); err == nil {
		return nil
	}
	fmt.Println("building etcd, kube-apiserver and kubectl from the Go module proxy (first run only, a few minutes) ...")
	cmd := exec.Command(filepath.Join(testenv.RepoRoot(), "hack", "controlplane.sh"))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build control plane: %w", err)
	}
	return nil
}

// applyDir creates every object in the YAML files of dir.
func applyDir(ctx context.Context, c client.Client, dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return err
	}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return err
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(fh, 4096)
		for {
			u := &unstructured.Unstructured{}
			if err := dec.Decode(&u.Object); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				fh.Close()
				return fmt.Errorf("read %s: %w", f, err)
			}
			if len(u.Object) == 0 {
				continue
			}
			if u.GetNamespace() == "" && u.GetKind() != "Namespace" {
				u.SetNamespace("default")
			}
			if err := c.Create(ctx, u); err != nil && !apierrors.IsAlreadyExists(err) {
				fh.Close()
				return fmt.Errorf("apply %s %s from %s: %w", u.GetKind(), u.GetName(), f, err)
			}
		}
		fh.Close()
	}
	return nil
}

// waitReady polls /readyz until it answers 200.
func waitReady(ctx context.Context, url string, errc <-chan error) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errc:
			return fmt.Errorf("a component stopped during start: %w", err)
		case <-t.C:
		}
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
}
