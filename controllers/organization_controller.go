package controllers

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/internal/signingkeys"
)

// OrganizationReconciler gives each Organization its permanent ID and keeps
// its signing-key Secret: it makes the first key, rotates on schedule and
// prunes retired keys.
type OrganizationReconciler struct {
	client.Client
	Recorder events.EventRecorder
	// Now is the clock; tests replace it.
	Now func() time.Time
}

// +kubebuilder:rbac:groups=tenantauth.io,resources=organizations,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=tenantauth.io,resources=organizations/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one Organization's ID, keys and status up to date.
func (r *OrganizationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	org := &tav1.Organization{}
	if err := r.Get(ctx, req.NamespacedName, org); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	// The signing-key Secret carries a controller owner reference, so the
	// garbage collector removes it with the Organization: no finalizer.
	if !org.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	orig := org.DeepCopy()
	defer func() {
		if retErr == nil {
			org.Status.ObservedGeneration = org.Generation
		}
		retErr = errors.Join(retErr, patchStatus(ctx, r.Client, orig, org, orig.Status, org.Status))
	}()
	return r.reconcileNormal(ctx, org)
}

func (r *OrganizationReconciler) reconcileNormal(ctx context.Context, org *tav1.Organization) (ctrl.Result, error) {
	secret, res, err := r.reconcileSigningKeys(ctx, org)
	if err != nil || secret == nil {
		return res, err
	}
	if org.Status.ID == "" {
		org.Status.ID = secret.Annotations[tav1.AnnotationOrganizationID]
	}
	setReady(&org.Status.Conditions, org.Generation, true, tav1.ReasonReady,
		fmt.Sprintf("active signing key %s", org.Status.ActiveKeyID))
	return res, nil
}

// reconcileSigningKeys creates, rotates and prunes the keys in one write to
// the Secret, then mirrors the Secret into status. The Secret is the source
// of truth: a crash after its write and before the status patch converges
// on the next run, with neither a lost nor a second key.
func (r *OrganizationReconciler) reconcileSigningKeys(ctx context.Context, org *tav1.Organization) (*corev1.Secret, ctrl.Result, error) {
	now := r.Now()
	secret := &corev1.Secret{}
	name := org.SigningKeySecretName()
	err := r.Get(ctx, client.ObjectKey{Namespace: org.Namespace, Name: name}, secret)
	switch {
	case apierrors.IsNotFound(err):
		secret = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: org.Namespace, Name: name}}
	case err != nil:
		return nil, ctrl.Result{}, fmt.Errorf("get signing keys of %s: %w", org.Name, err)
	case !metav1.IsControlledBy(secret, org):
		setReady(&org.Status.Conditions, org.Generation, false, tav1.ReasonSecretConflict,
			fmt.Sprintf("Secret %s exists and is not owned by this Organization; delete or rename it", name))
		return nil, ctrl.Result{}, nil
	}

	set, err := signingkeys.Parse(secret.Data[signingkeys.DataKey])
	if err != nil {
		// A corrupt set is not repaired by starting over: that would drop
		// keys that still verify live tokens. A human must look.
		setReady(&org.Status.Conditions, org.Generation, false, tav1.ReasonKeyGenerationFailed,
			fmt.Sprintf("Secret %s holds an unreadable key set: %v", name, err))
		return nil, ctrl.Result{}, nil
	}
	before, hadActive := set.Newest()
	policy := signingkeys.Policy{
		Algorithm:        string(org.Algorithm()),
		RotationInterval: org.RotationInterval(),
		AccessTokenTTL:   org.AccessTokenTTL(),
	}
	changed, next, err := set.Rotate(policy, now)
	if err != nil {
		setReady(&org.Status.Conditions, org.Generation, false, tav1.ReasonKeyGenerationFailed, err.Error())
		return nil, ctrl.Result{}, fmt.Errorf("rotate keys of %s: %w", org.Name, err)
	}

	id := org.Status.ID
	if id == "" {
		id = secret.Annotations[tav1.AnnotationOrganizationID]
	}
	if id == "" {
		id = "org_" + strings.ToLower(ulid.MustNew(ulid.Timestamp(now), rand.Reader).String())
	}
	desired := secret.DeepCopy()
	if desired.Labels == nil {
		desired.Labels = map[string]string{}
	}
	if desired.Annotations == nil {
		desired.Annotations = map[string]string{}
	}
	desired.Labels[tav1.LabelManagedBy] = tav1.ManagedByValue
	desired.Labels[tav1.LabelComponent] = tav1.ComponentSigningKeys
	desired.Labels[tav1.LabelOrganization] = org.Name
	desired.Annotations[tav1.AnnotationOrganizationID] = id
	desired.Type = corev1.SecretTypeOpaque
	if changed {
		data, err := set.Marshal()
		if err != nil {
			return nil, ctrl.Result{}, fmt.Errorf("encode keys of %s: %w", org.Name, err)
		}
		desired.Data = map[string][]byte{signingkeys.DataKey: data}
	}
	if err := controllerutil.SetControllerReference(org, desired, r.Scheme()); err != nil {
		return nil, ctrl.Result{}, fmt.Errorf("own signing keys of %s: %w", org.Name, err)
	}

	switch {
	case secret.ResourceVersion == "":
		if err := r.Create(ctx, desired); err != nil {
			if apierrors.IsAlreadyExists(err) {
				// The cache holds only labelled Secrets: one in the way
				// without our label is foreign.
				setReady(&org.Status.Conditions, org.Generation, false, tav1.ReasonSecretConflict,
					fmt.Sprintf("Secret %s exists and is not owned by this Organization; delete or rename it", name))
				return nil, ctrl.Result{}, nil
			}
			return nil, ctrl.Result{}, fmt.Errorf("create signing keys of %s: %w", org.Name, err)
		}
	case !equality.Semantic.DeepEqual(secret, desired):
		// Update carries the resourceVersion: a concurrent writer makes this
		// fail instead of silently replacing its keys.
		if err := r.Update(ctx, desired); err != nil {
			return nil, ctrl.Result{}, fmt.Errorf("update signing keys of %s: %w", org.Name, err)
		}
	}
	if newest, _ := set.Newest(); changed && (!hadActive || newest.KID != before.KID) {
		log.FromContext(ctx).Info("signing key made", "organization", org.Name, "kid", newest.KID, "activeFrom", newest.ActiveFrom)
		r.Recorder.Eventf(org, nil, corev1.EventTypeNormal, "KeyRotated", "Rotate",
			"new %s signing key %s, active from %s", newest.Algorithm, newest.KID, newest.ActiveFrom.Format(time.RFC3339))
	}

	org.Status.ID = id
	org.Status.SigningKeySecret = name
	org.Status.Keys = keyStatus(set)
	org.Status.ActiveKeyID = ""
	if active, ok := set.Active(now); ok {
		org.Status.ActiveKeyID = active.KID
	}
	return desired, ctrl.Result{RequeueAfter: max(next.Sub(now), time.Second)}, nil
}

func keyStatus(set *signingkeys.Set) []tav1.SigningKeyStatus {
	out := make([]tav1.SigningKeyStatus, 0, len(set.Entries))
	for _, e := range set.Entries {
		ks := tav1.SigningKeyStatus{KID: e.KID, Algorithm: tav1.SigningAlgorithm(e.Algorithm), CreatedAt: metav1.NewTime(e.ActiveFrom)}
		if !e.RetiresAt.IsZero() {
			t := metav1.NewTime(e.RetiresAt)
			ks.RetiresAt = &t
		}
		out = append(out, ks)
	}
	return out
}

// SetupWithManager registers the reconciler. Owning the Secret re-makes a
// deleted Secret at once.
func (r *OrganizationReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Now == nil {
		r.Now = time.Now
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&tav1.Organization{}).
		Owns(&corev1.Secret{}).
		Named("organization").
		Complete(r)
}
