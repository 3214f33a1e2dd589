package controllers

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/events"
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
	// Recorder records an event when the Organization is missing. It may
	// be nil (tests that drive the reconciler directly); then no event is
	// recorded.
	Recorder events.EventRecorder
}

// membershipScope is what one reconcile of a Membership knows.
type membershipScope struct {
	m *tav1.Membership
	// orgSlug is the slug of the Membership's Organization, once found.
	orgSlug string
	outcome
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
	s := &membershipScope{m: m}
	defer func() { retErr = errors.Join(retErr, r.writeStatus(ctx, orig, s, retErr == nil)) }()
	return runPhases(ctx, s, r.setUserID, r.checkOrganization, r.checkDisabled)
}

// writeStatus is the deferred end of every reconcile: it turns what the
// phases found into Ready and writes status when it changed.
// observedGeneration moves only when every phase ran.
func (r *MembershipReconciler) writeStatus(ctx context.Context, orig *tav1.Membership, s *membershipScope, complete bool) error {
	m := s.m
	if complete {
		m.Status.ObservedGeneration = m.Generation
	}
	if c := s.readiness(complete, "member of "+s.orgSlug); c != nil {
		setReady(&m.Status.Conditions, m.Generation, c)
	}
	return patchStatus(ctx, r.Client, orig, m, orig.Status, m.Status)
}

// setUserID derives the member's user ID from the email alone, so one
// person has one ID in every Organization and across re-created
// Memberships.
func (r *MembershipReconciler) setUserID(_ context.Context, s *membershipScope) (ctrl.Result, error) {
	s.m.Status.UserID = identity.UserID(r.InstallationKey, s.m.Spec.Email)
	return ctrl.Result{}, nil
}

// checkOrganization reports a Membership whose Organization does not
// exist. Its appearance wakes the Membership through the
// spec.organization index.
func (r *MembershipReconciler) checkOrganization(ctx context.Context, s *membershipScope) (ctrl.Result, error) {
	m := s.m
	org := &tav1.Organization{}
	err := r.Get(ctx, client.ObjectKey{Namespace: m.Namespace, Name: m.Spec.Organization}, org)
	if apierrors.IsNotFound(err) {
		s.block(tav1.ReasonOrganizationNotFound,
			fmt.Sprintf("Organization %q does not exist in namespace %s", m.Spec.Organization, m.Namespace))
		if r.Recorder != nil {
			r.Recorder.Eventf(m, nil, corev1.EventTypeWarning, tav1.ReasonOrganizationNotFound, "Resolve",
				"Organization %q does not exist in namespace %s", m.Spec.Organization, m.Namespace)
		}
		return ctrl.Result{}, nil
	}
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("get organization of membership %s: %w", m.Name, err)
	}
	s.orgSlug = org.EffectiveSlug()
	return ctrl.Result{}, nil
}

func (r *MembershipReconciler) checkDisabled(_ context.Context, s *membershipScope) (ctrl.Result, error) {
	if s.m.Spec.Disabled {
		s.block(tav1.ReasonDisabled, "membership is disabled: login and tokens are refused")
	}
	return ctrl.Result{}, nil
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
