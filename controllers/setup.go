package controllers

import (
	"context"
	"fmt"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/tenantauth/tenantauth/internal/domains"
)

// Options configure the reconcilers.
type Options struct {
	// InstallationKey keys user IDs and domain verification tokens; see
	// packages identity and domains.
	InstallationKey []byte
	// SystemNamespace is the operator's own, where the records the auth
	// server trusts live.
	SystemNamespace string
	// Resolver looks up the TXT challenges of Organizations' domains; nil
	// is the system resolver.
	Resolver domains.Resolver
	// DomainRecheckInterval and DomainRetryInterval space the lookups of
	// verified and of pending domains; zero takes the defaults.
	DomainRecheckInterval, DomainRetryInterval time.Duration
	// SSOPrivateNetworks lets the SSOConnection controller fetch discovery
	// and metadata from loopback and private addresses (an IdP inside the
	// network, tests, dev); off, public addresses only (netguard).
	SSOPrivateNetworks bool
}

// SetupWithManager registers every reconciler and the indexes they share.
func SetupWithManager(ctx context.Context, mgr ctrl.Manager, o Options) error {
	if err := SetupIndexes(ctx, mgr); err != nil {
		return fmt.Errorf("register indexes: %w", err)
	}
	if err := (&OrganizationReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(),
		Recorder: mgr.GetEventRecorder("tenantauth-organization"), SystemNamespace: o.SystemNamespace,
		InstallationKey: o.InstallationKey, Resolver: o.Resolver,
		DomainRecheckInterval: o.DomainRecheckInterval, DomainRetryInterval: o.DomainRetryInterval}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up organization controller: %w", err)
	}
	if err := (&MembershipReconciler{Client: mgr.GetClient(), InstallationKey: o.InstallationKey,
		Recorder: mgr.GetEventRecorder("tenantauth-membership")}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up membership controller: %w", err)
	}
	if err := (&APIKeyReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(),
		Recorder: mgr.GetEventRecorder("tenantauth-apikey"), SystemNamespace: o.SystemNamespace}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up apikey controller: %w", err)
	}
	if err := (&SSOConnectionReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(),
		Recorder: mgr.GetEventRecorder("tenantauth-ssoconnection"), SystemNamespace: o.SystemNamespace,
		HTTPClient: providerClient(o.SSOPrivateNetworks)}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up ssoconnection controller: %w", err)
	}
	return nil
}
