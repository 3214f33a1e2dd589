package controllers

import (
	"context"
	"fmt"

	ctrl "sigs.k8s.io/controller-runtime"
)

// SetupWithManager registers every reconciler and the indexes they share.
// installationKey keys user IDs; see package identity. systemNamespace is
// the operator's own, where the records the auth server trusts live.
func SetupWithManager(ctx context.Context, mgr ctrl.Manager, installationKey []byte, systemNamespace string) error {
	if err := SetupIndexes(ctx, mgr); err != nil {
		return fmt.Errorf("register indexes: %w", err)
	}
	if err := (&OrganizationReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(),
		Recorder: mgr.GetEventRecorder("tenantauth-organization"), SystemNamespace: systemNamespace}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up organization controller: %w", err)
	}
	if err := (&MembershipReconciler{Client: mgr.GetClient(), InstallationKey: installationKey,
		Recorder: mgr.GetEventRecorder("tenantauth-membership")}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up membership controller: %w", err)
	}
	if err := (&APIKeyReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(),
		Recorder: mgr.GetEventRecorder("tenantauth-apikey"), SystemNamespace: systemNamespace}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up apikey controller: %w", err)
	}
	return nil
}
