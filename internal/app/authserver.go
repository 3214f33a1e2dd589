package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"time"

	"github.com/tenantauth/tenantauth/authserver/account"
	"github.com/tenantauth/tenantauth/authserver/directory"

	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/tenantauth/tenantauth/authserver"
	"github.com/tenantauth/tenantauth/authserver/kube"
	"github.com/tenantauth/tenantauth/authserver/store"
	"github.com/tenantauth/tenantauth/internal/installation"
)

// AuthServerOptions are the flags of `tenantauth authserver`.
type AuthServerOptions struct {
	Addr               string
	MetricsAddr        string
	PublicURL          string
	PathPrefix         string
	Namespace          string
	WatchNamespaces    string
	StoreBackend       string
	SessionCookieName  string
	RefreshCookieName  string
	CookieDomain       string
	RateLimitPerMinute int
	// ForwardedURISource is where /verify reads the original request from
	// (--forwarded-uri-source); the zero value is ingress-nginx.
	ForwardedURISource authserver.ForwardedURISource
	// TrustedProxies are comma-separated CIDRs of the proxies whose
	// X-Forwarded-For entries are believed.
	TrustedProxies string
	// trustForwardedFor records the removed --trust-forwarded-for flag,
	// so a deployment still passing it fails at start with a pointer to
	// --trusted-proxies instead of silently changing behaviour.
	trustForwardedFor       bool
	PasswordHashConcurrency int
	MinPasswordLength       int
	// MaxOutstandingTokens is authserver.Config.MaxOutstandingTokens.
	MaxOutstandingTokens int
	// SSOPrivateNetworks is authserver.Config.SSOPrivateNetworks.
	SSOPrivateNetworks bool
	Mail               MailOptions
	// Postgres configures --store=postgres (postgres.go).
	Postgres PostgresOptions
	// Listener, when set, is used instead of listening on Addr (dev and
	// tests pass one to learn the port).
	Listener net.Listener
}

// Bind registers the flags on fs.
func (o *AuthServerOptions) Bind(fs *flag.FlagSet) {
	fs.StringVar(&o.Addr, "addr", ":8080", "address of the HTTP API, /health and /readyz")
	fs.StringVar(&o.MetricsAddr, "metrics-addr", ":9090", "address of Prometheus /metrics; 0 disables it")
	fs.StringVar(&o.PublicURL, "public-url", "http://localhost:8080", "URL clients reach the server at; builds links and the token issuer")
	fs.StringVar(&o.PathPrefix, "path-prefix", "", "mount every endpoint under this prefix, e.g. /api/v1")
	fs.StringVar(&o.Namespace, "namespace", podNamespace("tenantauth-system"), "namespace of the store records and the installation Secret (env POD_NAMESPACE)")
	fs.StringVar(&o.WatchNamespaces, "watch-namespaces", "", "comma-separated namespaces to read tenants from; empty reads all")
	fs.StringVar(&o.StoreBackend, "store", "kubernetes", "runtime state backend: kubernetes, postgres or memory")
	fs.StringVar(&o.SessionCookieName, "session-cookie-name", "tenantauth_session", "name of the access-token cookie")
	fs.StringVar(&o.RefreshCookieName, "refresh-cookie-name", "tenantauth_refresh", "name of the refresh-token cookie")
	fs.StringVar(&o.CookieDomain, "cookie-domain", "", "Domain attribute of both cookies")
	fs.IntVar(&o.RateLimitPerMinute, "rate-limit-per-minute", 20, "login, register, forgot-password, magic-link and 2fa/verify requests a minute per IP and per email")
	fs.StringVar(&o.TrustedProxies, "trusted-proxies", "", "comma-separated CIDRs of proxies (e.g. the ingress controller's pods) whose X-Forwarded-For is believed; the client is the rightmost address not in the list")
	fs.BoolFunc("trust-forwarded-for", "removed: use --trusted-proxies", func(string) error { o.trustForwardedFor = true; return nil })
	fs.IntVar(&o.PasswordHashConcurrency, "password-hash-concurrency", 0, "argon2 hashes run at once (each takes 19 MiB); 0 means the CPUs, at most 4. Requests past it and a short queue get 503 busy")
	fs.IntVar(&o.MinPasswordLength, "min-password-length", 8, "shortest password accepted")
	fs.BoolVar(&o.SSOPrivateNetworks, "sso-allow-private-networks", false,
		"let SSO reach identity providers on loopback and private addresses (an IdP inside the network); off, only public addresses")
	fs.IntVar(&o.MaxOutstandingTokens, "max-outstanding-tokens", account.DefaultMaxOutstandingTokens,
		"mailed links (magic link, password reset) a user holds at once; a new one replaces the oldest")
	BindForwardedURISource(fs, &o.ForwardedURISource)
	o.Mail.Bind(fs)
	o.Postgres.Bind(fs)
}

// gcInterval is how often each replica deletes expired records (at most
// kube.GCBatch a run): a revoked session or spent link, kept for minutes,
// is gone seconds after that.
const gcInterval = 10 * time.Second

// NewAuthServer builds the auth server's manager: the informer cache, the
// directory source, the store and the HTTP server, all as runnables that
// run on every replica.
func NewAuthServer(ctx context.Context, cfg *rest.Config, o AuthServerOptions) (ctrl.Manager, *authserver.Server, error) {
	if o.trustForwardedFor {
		return nil, nil, usage(errors.New("--trust-forwarded-for was removed: it believed the leftmost X-Forwarded-For entry, which clients write. " +
			"Set --trusted-proxies to the CIDRs of your proxies (the ingress controller's pod CIDR) instead"))
	}
	proxies, err := authserver.ParseProxyList(o.TrustedProxies)
	if err != nil {
		return nil, nil, usage(fmt.Errorf("--trusted-proxies: %w", err))
	}
	if o.PasswordHashConcurrency < 0 {
		return nil, nil, usage(errors.New("--password-hash-concurrency must not be negative"))
	}
	if o.MaxOutstandingTokens < 0 {
		return nil, nil, usage(errors.New("--max-outstanding-tokens must not be negative"))
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:  Scheme(),
		Cache:   authServerCacheOptions(o.WatchNamespaces, o.Namespace),
		Metrics: metricsserver.Options{BindAddress: o.MetricsAddr},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("create auth server manager: %w", err)
	}
	direct, err := client.New(cfg, client.Options{Scheme: mgr.GetScheme()})
	if err != nil {
		return nil, nil, fmt.Errorf("create client: %w", err)
	}
	key, err := installation.EnsureKey(ctx, direct, direct, o.Namespace)
	if err != nil {
		return nil, nil, err
	}
	log := ctrl.Log.WithName("authserver")
	dir := directory.NewDirectory()
	if err := mgr.Add(&kube.Source{Dir: dir, Cache: mgr.GetCache(), Log: log.WithName("source"), SystemNamespace: o.Namespace}); err != nil {
		return nil, nil, err
	}
	var st store.Store
	switch o.StoreBackend {
	case "memory":
		st = store.NewMemoryStore()
	case "kubernetes":
		ks := kube.NewStore(direct, mgr.GetAPIReader(), o.Namespace)
		if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
			if err := ks.Watch(ctx, mgr.GetCache()); err != nil {
				return err
			}
			<-ctx.Done()
			return nil
		})); err != nil {
			return nil, nil, err
		}
		st = ks
	case "postgres":
		ps, run, err := newPostgresStore(o.Postgres, log.WithName("postgres"))
		if err != nil {
			return nil, nil, err
		}
		if err := mgr.Add(run); err != nil {
			return nil, nil, err
		}
		if err := metrics.Registry.Register(ps); err != nil {
			return nil, nil, fmt.Errorf("register the postgres store's metrics: %w", err)
		}
		st = ps
	default:
		return nil, nil, usage(fmt.Errorf("--store must be kubernetes, postgres or memory, not %q", o.StoreBackend))
	}
	mailer, err := newMailer(o.Mail, authserver.SampledLogger(log.WithName("mail")))
	if err != nil {
		return nil, nil, err
	}
	if err := mgr.Add(drainMail(mailer)); err != nil {
		return nil, nil, err
	}
	srv := authserver.New(authserver.Config{
		PublicURL: o.PublicURL, PathPrefix: o.PathPrefix, SessionCookieName: o.SessionCookieName,
		RefreshCookieName: o.RefreshCookieName, CookieDomain: o.CookieDomain, RateLimitPerMinute: o.RateLimitPerMinute,
		TrustedProxies: proxies, PasswordHashConcurrency: o.PasswordHashConcurrency, Secret: key, MinPasswordLength: o.MinPasswordLength,
		ForwardedURISource: o.ForwardedURISource, MaxOutstandingTokens: o.MaxOutstandingTokens,
		SSOPrivateNetworks: o.SSOPrivateNetworks,
	}, dir, st, key,
		authserver.WithLogger(log),
		authserver.WithMetrics(authserver.NewMetrics(metrics.Registry)),
		authserver.WithMailer(mailer),
		authserver.WithMembershipWriter(&kube.MembershipWriter{Client: direct}),
	)
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		store.RunGC(ctx, st, gcInterval, time.Now, func(err error) { log.Error(err, "store garbage collection") })
		return nil
	})); err != nil {
		return nil, nil, err
	}
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		l := o.Listener
		if l == nil {
			if l, err = net.Listen("tcp", o.Addr); err != nil {
				return fmt.Errorf("listen on %s: %w", o.Addr, err)
			}
		}
		log.Info("serving", "addr", l.Addr().String(), "publicURL", o.PublicURL)
		return srv.Serve(ctx, l)
	})); err != nil {
		return nil, nil, err
	}
	return mgr, srv, nil
}

// BindForwardedURISource registers --forwarded-uri-source, for both
// `tenantauth authserver` and `tenantauth dev`. A bad value fails flag
// parsing, before anything starts.
func BindForwardedURISource(fs *flag.FlagSet, p *authserver.ForwardedURISource) {
	fs.TextVar(p, "forwarded-uri-source", authserver.ForwardedURISource{},
		"where /verify reads the original request: ingress-nginx (X-Original-URL, X-Original-Method), "+
			"traefik (X-Forwarded-Uri, X-Forwarded-Method), envoy (the path after /verify) or "+
			"header:<name>[,<method header>]; every other copy is ignored")
}

func runAuthServer(ctx context.Context, o AuthServerOptions) error {
	TuneGC()
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	mgr, _, err := NewAuthServer(ctx, cfg, o)
	if err != nil {
		return err
	}
	return mgr.Start(ctx)
}
