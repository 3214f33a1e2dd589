package app

import (
	"context"
	"flag"
	"fmt"
	"time"

	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/tenantauth/tenantauth/controllers"
	"github.com/tenantauth/tenantauth/internal/domains"
	"github.com/tenantauth/tenantauth/internal/installation"
)

// OperatorOptions are the flags of `tenantauth operator`.
type OperatorOptions struct {
	Namespace             string
	WatchNamespaces       string
	MetricsAddr           string
	ProbeAddr             string
	LeaderElect           bool
	WebhookPort           int
	WebhookHost           string
	WebhookCertDir        string
	ManageWebhookCerts    bool
	WebhookServiceName    string
	WebhookSecretName     string
	MutatingConfigName    string
	ValidatingConfigName  string
	AdmissionMode         string
	AdmissionBypassGroups string
	AuthServerUsername    string
	OperatorUsername      string
	EnableWebhooks        bool
	DNSResolver           string
	DomainRecheckInterval time.Duration
	DomainRetryInterval   time.Duration
	// SSOPrivateNetworks is controllers.Options.SSOPrivateNetworks.
	SSOPrivateNetworks bool
}

// Bind registers the flags on fs.
func (o *OperatorOptions) Bind(fs *flag.FlagSet) {
	fs.StringVar(&o.Namespace, "namespace", podNamespace("tenantauth-system"), "the operator's own namespace (env POD_NAMESPACE)")
	fs.StringVar(&o.WatchNamespaces, "watch-namespaces", "", "comma-separated namespaces to watch; empty watches all")
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint; 0 disables it")
	fs.StringVar(&o.ProbeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	fs.BoolVar(&o.LeaderElect, "leader-elect", false, "elect a leader so only one replica reconciles")
	fs.IntVar(&o.WebhookPort, "webhook-port", 9443, "port of the admission webhook server")
	fs.StringVar(&o.WebhookCertDir, "webhook-cert-dir", "/tmp/k8s-webhook-server/serving-certs", "directory of the webhook serving certificate")
	fs.BoolVar(&o.ManageWebhookCerts, "manage-webhook-certs", true, "make and rotate the webhook certificate and inject its CA; false when cert-manager does it")
	fs.StringVar(&o.WebhookServiceName, "webhook-service-name", "tenantauth-webhook", "Service in front of the webhook server")
	fs.StringVar(&o.WebhookSecretName, "webhook-secret-name", "tenantauth-webhook-cert", "Secret that holds the webhook certificate")
	fs.StringVar(&o.MutatingConfigName, "mutating-webhook-configuration", "tenantauth-mutating-webhook-configuration", "MutatingWebhookConfiguration to inject the CA into")
	fs.StringVar(&o.ValidatingConfigName, "validating-webhook-configuration", "tenantauth-validating-webhook-configuration", "ValidatingWebhookConfiguration to inject the CA into")
	fs.StringVar(&o.AdmissionMode, "admission-mode", "enforce", "enforce or audit (admit and warn)")
	fs.StringVar(&o.AdmissionBypassGroups, "admission-bypass-groups", "system:masters", "comma-separated groups that bypass admission authorization")
	fs.StringVar(&o.AuthServerUsername, "authserver-service-account", "", "user name of the auth server's service account: admission lets it create only self-signup Memberships (never owner, never a bypass)")
	fs.BoolVar(&o.EnableWebhooks, "enable-webhooks", true, "serve the admission webhooks (false runs the controllers only)")
	fs.StringVar(&o.OperatorUsername, "operator-service-account", "", "user name of the operator's own service account (default: derived from the in-cluster token)")
	fs.StringVar(&o.DNSResolver, "dns-resolver", "", "host:port of the DNS server that answers the domains' TXT challenges (default: the system resolver)")
	fs.BoolVar(&o.SSOPrivateNetworks, "sso-allow-private-networks", false, "let the SSOConnection controller fetch discovery and metadata from loopback and private addresses; off, only public addresses")
	fs.DurationVar(&o.DomainRecheckInterval, "domain-recheck-interval", controllers.DefaultDomainRecheckInterval, "how often a verified domain's TXT record is looked up again")
	fs.DurationVar(&o.DomainRetryInterval, "domain-retry-interval", controllers.DefaultDomainRetryInterval, "how often a domain not verified yet is looked up again")
}

// NewOperator builds the operator's manager: controllers and, unless
// disabled, admission webhooks.
func NewOperator(ctx context.Context, cfg *rest.Config, o OperatorOptions) (ctrl.Manager, error) {
	if o.AdmissionMode != "enforce" && o.AdmissionMode != "audit" {
		return nil, usage(fmt.Errorf("--admission-mode must be enforce or audit, not %q", o.AdmissionMode))
	}
	resolver, err := domains.NewResolver(o.DNSResolver)
	if err != nil {
		return nil, usage(fmt.Errorf("--dns-resolver: %w", err))
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  Scheme(),
		Cache:                   cacheOptions(o.WatchNamespaces, o.Namespace),
		Metrics:                 metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress:  o.ProbeAddr,
		LeaderElection:          o.LeaderElect,
		LeaderElectionID:        "operator.tenantauth.io",
		LeaderElectionNamespace: o.Namespace,
		WebhookServer:           webhook.NewServer(webhook.Options{Host: o.WebhookHost, Port: o.WebhookPort, CertDir: o.WebhookCertDir}),
	})
	if err != nil {
		return nil, fmt.Errorf("create operator manager: %w", err)
	}
	direct, err := client.New(cfg, client.Options{Scheme: mgr.GetScheme()})
	if err != nil {
		return nil, fmt.Errorf("create client: %w", err)
	}
	key, err := installation.EnsureKey(ctx, direct, direct, o.Namespace)
	if err != nil {
		return nil, err
	}
	if err := controllers.SetupWithManager(ctx, mgr, controllers.Options{
		InstallationKey: key, SystemNamespace: o.Namespace, Resolver: resolver,
		DomainRecheckInterval: o.DomainRecheckInterval, DomainRetryInterval: o.DomainRetryInterval,
		SSOPrivateNetworks: o.SSOPrivateNetworks,
	}); err != nil {
		return nil, err
	}
	if o.EnableWebhooks {
		if err := setupWebhooks(mgr, o); err != nil {
			return nil, err
		}
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return nil, err
	}
	return mgr, nil
}
