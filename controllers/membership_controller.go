package controllers

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/internal/identity"
)

// MembershipReconciler gives each Membership its member's stable user ID
// and reports whether its Organization exists.
type MembershipReconciler struct {
	client.Client
	// InstallationKey keys the user-ID hash; see package identity.
	InstallationKey []byte
}

// +kubebuilder:rbac:groups=tenantauth.io,resources=memberships,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=tenantauth.io,resources=memberships/status,verbs=get;update;patch

// Reconcile sets status.userID and Ready.
func (r *MembershipReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	m := &tav1.Membership{}
	if err := r.Get(ctx, req.NamespacedName, m); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !m.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	orig := m.DeepCopy()
	defer func() {
		if retErr == nil {
			m.Status.ObservedGeneration = m.Generation
		}
		retErr = errors.Join(retErr, patchStatus(ctx, r.Client, orig, m, orig.Status, m.Status))
	}()
	return ctrl.Result{}, r.reconcileNormal(ctx, m)
}

func (r *MembershipReconciler) reconcileNormal(ctx context.Context, m *tav1.Membership) error {
	m.Status.UserID = identity.UserID(r.InstallationKey, m.Spec.Email)
	org := &tav1.Organization{}
	err := r.Get(ctx, client.ObjectKey{Namespace: m.Namespace, Name: m.Spec.Organization}, org)
	switch {
	case apierrors.IsNotFound(err):
		setReady(&m.Status.Conditions, m.Generation, false, tav1.ReasonOrganizationNotFound,
			fmt.Sprintf("Organization %q does not exist in namespace %s", m.Spec.Organization, m.Namespace))
	case err != nil:
		return fmt.Errorf("get organization of membership %s: %w", m.Name, err)
	case m.Spec.Disabled:
		setReady(&m.Status.Conditions, m.Generation, false, tav1.ReasonDisabled, "membership is disabled: login and tokens are refused")
	default:
		setReady(&m.Status.Conditions, m.Generation, true, tav1.ReasonReady, "member of "+org.EffectiveSlug())
	}
	return nil
}

// SetupWithManager registers the reconciler. An Organization that appears
// or goes re-queues its Memberships through the spec.organization index.
func (r *MembershipReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&tav1.Membership{}).
		Watches(&tav1.Organization{}, handler.EnqueueRequestsFromMapFunc(referrers(mgr.GetClient(), &tav1.MembershipList{}))).
		Named("membership").
		WithOptions(controller.Options{MaxConcurrentReconciles: 4}).
		Complete(r)
}
