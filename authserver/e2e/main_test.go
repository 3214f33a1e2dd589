// Package e2e drives the auth server's account flows end to end: a real
// kube-apiserver and etcd (envtest) with the operator's controllers and
// admission webhooks, the auth server wired exactly as `tenantauth
// authserver` wires it (Kubernetes store, informer-fed directory,
// MembershipWriter), and an in-process SMTP server with STARTTLS and AUTH
// that receives the mail. Tests read links out of the received messages
// as a user would.
package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/authserver"
	"github.com/tenantauth/tenantauth/authserver/mail/mailtest"
	"github.com/tenantauth/tenantauth/internal/app"
	"github.com/tenantauth/tenantauth/internal/domains"
	"github.com/tenantauth/tenantauth/internal/testenv"
)

// serverNamespace holds the store records and the installation Secret.
const serverNamespace = "tenantauth-system"

// The suite's shared world, set up once by TestMain.
var (
	k8s       client.Client
	srv       *authserver.Server
	publicURL string
	smtpSrv   *mailtest.Server
	// dnsSrv answers the operator's TXT lookups (--dns-resolver).
	dnsSrv *testenv.DNSServer
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if _, err := os.Stat(filepath.Join(testenv.AssetsDir(), "kube-apiserver")); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: no control-plane binaries; run 'make envtest-assets':", err)
		return 1
	}
	var err error
	smtpSrv, err = mailtest.New(mailtest.Options{TLS: true, Username: "mailer", Password: "smtp-secret"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer smtpSrv.Close()
	// The auth server verifies the SMTP server's certificate against the
	// system roots, as in production: make the test CA one of them before
	// anything loads them.
	caFile := filepath.Join(os.TempDir(), fmt.Sprintf("tenantauth-e2e-ca-%d.pem", os.Getpid()))
	if err := os.WriteFile(caFile, smtpSrv.CAPEM, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.Remove(caFile)
	os.Setenv("SSL_CERT_FILE", caFile)
	os.Setenv("SMTP_PASSWORD", "smtp-secret")

	d, stopDNS, err := testenv.NewDNS()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stopDNS()
	dnsSrv = d

	env, err := testenv.New()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env.WebhookInstallOptions = envtest.WebhookInstallOptions{
		Paths: []string{filepath.Join(testenv.RepoRoot(), "config", "webhook")}, IgnoreSchemeConvertible: true,
	}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start envtest:", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	ctx, cancel := context.WithCancel(context.Background())
	stopped, err := start(ctx, cfg, env.WebhookInstallOptions)
	if err != nil {
		cancel()
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	cancel()
	stopped()
	return code
}

// start runs the operator and the auth server and waits until the auth
// server answers /readyz. The returned function waits for both to stop.
func start(ctx context.Context, cfg *rest.Config, wh envtest.WebhookInstallOptions) (func(), error) {
	ctrl.SetLogger(funcLogger())
	var err error
	if k8s, err = client.New(cfg, client.Options{Scheme: app.Scheme()}); err != nil {
		return nil, err
	}
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: serverNamespace}}); err != nil {
		return nil, err
	}
	operator, err := app.NewOperator(ctx, cfg, app.OperatorOptions{
		Namespace: serverNamespace, MetricsAddr: "0", ProbeAddr: "0", AdmissionMode: "enforce",
		AdmissionBypassGroups: "system:masters", WebhookHost: wh.LocalServingHost, WebhookPort: wh.LocalServingPort,
		WebhookCertDir: wh.LocalServingCertDir, ManageWebhookCerts: false, EnableWebhooks: true,
		DNSResolver: dnsSrv.Addr, DomainRecheckInterval: 5 * time.Second, DomainRetryInterval: 500 * time.Millisecond,
		SSOPrivateNetworks: true, // the test's OpenID Provider runs on 127.0.0.1
	})
	if err != nil {
		return nil, fmt.Errorf("operator: %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	publicURL = "http://" + l.Addr().String()
	auth, s, err := app.NewAuthServer(ctx, cfg, app.AuthServerOptions{
		Listener: l, MetricsAddr: "0", PublicURL: publicURL, Namespace: serverNamespace, StoreBackend: "kubernetes",
		SessionCookieName: "tenantauth_session", RefreshCookieName: "tenantauth_refresh",
		RateLimitPerMinute: 1_000_000, MinPasswordLength: 8,
		// The benchmarks mint many links for one user and sign it in 8
		// times at once; the per-user token caps are tested in authserver
		// and authserver/kube.
		MaxOutstandingTokens: 1 << 20,
		// The test's OpenID Provider runs on 127.0.0.1.
		SSOPrivateNetworks: true,
		Mail: app.MailOptions{Backend: "smtp", SMTPHost: smtpSrv.Host, SMTPPort: smtpSrv.Port,
			SMTPFrom: "Tenantauth <no-reply@tenantauth.test>", SMTPUsername: "mailer", SMTPTLS: "starttls"},
	})
	if err != nil {
		return nil, fmt.Errorf("auth server: %w", err)
	}
	srv = s
	done := make(chan error, 2)
	for _, mgr := range []ctrl.Manager{operator, auth} {
		go func() { done <- mgr.Start(ctx) }()
	}
	stopped := func() {
		for range 2 {
			if err := <-done; err != nil {
				fmt.Fprintln(os.Stderr, "manager:", err)
			}
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	webhooks := net.JoinHostPort(wh.LocalServingHost, fmt.Sprint(wh.LocalServingPort))
	for {
		// A readiness probe on loopback: the certificate is not the point.
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", webhooks, &tls.Config{InsecureSkipVerify: true})
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("webhook server not listening: %w", err)
		}
		select {
		case err := <-done:
			return nil, fmt.Errorf("a manager stopped: %w", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	for {
		resp, err := http.Get(publicURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return stopped, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("auth server not ready: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// reply is a decoded HTTP answer.
type reply struct {
	cookies []*http.Cookie
	status  int
	body    map[string]any
	raw     string
}

func (r reply) str(path string) string {
	var cur any = r.body
	for _, p := range strings.Split(path, ".") {
		m, _ := cur.(map[string]any)
		cur = m[p]
	}
	s, _ := cur.(string)
	return s
}

func (r reply) code() string { return r.str("error.code") }

// post sends a JSON body; headers are name, value pairs.
func post(t testing.TB, path string, body any, headers ...string) reply {
	t.Helper()
	return call(t, http.MethodPost, path, body, headers...)
}

func call(t testing.TB, method, path string, body any, headers ...string) reply {
	t.Helper()
	var rd io.Reader
	if body != nil {
		buf, _ := json.Marshal(body)
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, publicURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, raw: string(raw), cookies: resp.Cookies()}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// cookie is the "name=value" of the cookie name the reply set, or "".
func (r reply) cookie(name string) string {
	for _, c := range r.cookies {
		if c.Name == name {
			return c.Name + "=" + c.Value
		}
	}
	return ""
}

// tenant is an Organization in a fresh namespace, with its ID and keys.
type tenant struct {
	ns, name, slug string
	org            *tav1.Organization
}

// newTenant creates an Organization and waits until the auth server can
// sign for it.
func newTenant(t testing.TB, name string, spec tav1.OrganizationSpec) *tenant {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-"}}
	if err := k8s.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	spec.Slug = name + "-" + strings.TrimPrefix(ns.Name, "e2e-")
	spec.DisplayName = strings.ToUpper(name[:1]) + name[1:] + " Inc."
	org := &tav1.Organization{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: name}, Spec: spec}
	if err := k8s.Create(ctx, org); err != nil {
		t.Fatal(err)
	}
	tn := &tenant{ns: ns.Name, name: name, slug: spec.Slug, org: org}
	eventually(t, "organization "+tn.slug+" ready in the auth server", func() bool {
		o, ok := srv.Directory().Org(tn.slug)
		if !ok {
			return false
		}
		ks, ok := srv.Directory().Keys(o.Ref)
		return ok && ks.Active(time.Now()) != nil
	})
	return tn
}

// addMember creates a Membership (as kubectl would) and waits until the
// auth server knows it.
func (tn *tenant) addMember(t testing.TB, email, role string) {
	t.Helper()
	m := &tav1.Membership{
		ObjectMeta: metav1.ObjectMeta{Namespace: tn.ns, GenerateName: tn.name + "-"},
		Spec:       tav1.MembershipSpec{Organization: tn.name, Email: email, Role: role},
	}
	if err := k8s.Create(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	eventually(t, email+" a member of "+tn.slug, func() bool {
		_, ok := srv.Directory().MemberOf(email, tn.ns+"/"+tn.name)
		return ok
	})
}

// verifyDomain proves domain for the tenant as its administrator does:
// the domain is in spec.domains, the TXT record holds the token the
// operator publishes in status (the only thing read from status here),
// and the wait ends when the auth server serves the operator's claim.
func (tn *tenant) verifyDomain(t testing.TB, domain string) {
	t.Helper()
	var token string
	eventually(t, "verification token of "+domain, func() bool {
		o := &tav1.Organization{}
		if k8s.Get(context.Background(), client.ObjectKey{Namespace: tn.ns, Name: tn.name}, o) != nil {
			return false
		}
		for _, d := range o.Status.Domains {
			if d.Name == domain && d.VerificationToken != "" {
				token = d.VerificationToken
			}
		}
		return token != ""
	})
	dnsSrv.SetTXT(domains.ChallengeName(domain), token)
	eventually(t, domain+" verified for "+tn.slug+" in the auth server", func() bool {
		return srv.Directory().DomainVerifiedFor(domain, tn.ns+"/"+tn.name)
	})
}

// eventually polls cond for up to 30 seconds.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mailToken waits for the first mail to rcpt at or after message index
// from, checks it is a proper multipart message, and returns the token of
// its link.
func mailToken(t testing.TB, rcpt string, from int) (string, *mailtest.Parsed) {
	t.Helper()
	msg := smtpSrv.WaitFor(t, rcpt, from, 30*time.Second)
	p, err := mailtest.Parse(msg.Data)
	if err != nil {
		t.Fatal(err)
	}
	if p.ContentType != "multipart/alternative" || p.HTML == "" || !strings.Contains(p.Text, publicURL+"/") {
		t.Fatalf("message to %s: %+v", rcpt, p)
	}
	tok, err := p.Token()
	if err != nil {
		t.Fatal(err)
	}
	return tok, p
}

// logs keeps every log line of the operator and the auth server, so tests
// can check that no secret reaches them.
var logs struct {
	sync.Mutex
	lines []string
}

// funcLogger collects all log lines and prints the errors.
func funcLogger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		line := prefix + " " + args
		logs.Lock()
		logs.lines = append(logs.lines, line)
		logs.Unlock()
		if strings.Contains(args, `"error"`) {
			fmt.Fprintln(os.Stderr, line)
		}
	}, funcr.Options{Verbosity: 2})
}

// assertLogsHide fails if any log line so far holds one of the secrets.
func assertLogsHide(t testing.TB, secrets ...string) {
	t.Helper()
	logs.Lock()
	defer logs.Unlock()
	for _, line := range logs.lines {
		for _, s := range secrets {
			if s != "" && strings.Contains(line, s) {
				t.Fatalf("a log line holds a secret: %s", line)
			}
		}
	}
}
