package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/internal/apikey"
)

// APIKeyReconciler issues each APIKey's key once: the plaintext goes to the
// Secret spec.secretName for its owner, and only its hash to a second
// Secret the auth server reads.
type APIKeyReconciler struct {
	client.Client
	// APIReader reads live, for the rare checks the label-filtered cache
	// cannot answer (a foreign Secret in the way).
	APIReader client.Reader
	Recorder  events.EventRecorder
	// Now is the clock; tests replace it.
	Now func() time.Time
}

// +kubebuilder:rbac:groups=tenantauth.io,resources=apikeys,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=tenantauth.io,resources=apikeys/status,verbs=get;update;patch

// Reconcile issues the key if needed and reports the key's state.
func (r *APIKeyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	k := &tav1.APIKey{}
	if err := r.Get(ctx, req.NamespacedName, k); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	// Both Secrets are owned by the APIKey and go with it; the auth server
	// drops the key as soon as the APIKey leaves its cache.
	if !k.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	orig := k.DeepCopy()
	defer func() {
		if retErr == nil {
			k.Status.ObservedGeneration = k.Generation
		}
		retErr = errors.Join(retErr, patchStatus(ctx, r.Client, orig, k, orig.Status, k.Status))
	}()
	return r.reconcileNormal(ctx, k)
}

func (r *APIKeyReconciler) reconcileNormal(ctx context.Context, k *tav1.APIKey) (ctrl.Result, error) {
	org := &tav1.Organization{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: k.Namespace, Name: k.Spec.Organization}, org); err != nil {
		if apierrors.IsNotFound(err) {
			setReady(&k.Status.Conditions, k.Generation, false, tav1.ReasonOrganizationNotFound,
				fmt.Sprintf("Organization %q does not exist in namespace %s; the key is issued once it does", k.Spec.Organization, k.Namespace))
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get organization of apikey %s: %w", k.Name, err)
	}
	key, ok, err := r.reconcileAPIKeySecret(ctx, k)
	if err != nil || !ok {
		return ctrl.Result{}, err
	}
	if key != nil {
		if err := r.reconcileHashSecret(ctx, k, *key); err != nil {
			return ctrl.Result{}, err
		}
	}
	return r.reconcileValidity(k), nil
}

// reconcileAPIKeySecret returns the issued key, issuing it first when the
// APIKey has none. It returns a nil key when the key was issued before but
// its plaintext Secret is gone: the operator never makes a second plaintext
// for one APIKey, and the hash Secret keeps the key working.
func (r *APIKeyReconciler) reconcileAPIKeySecret(ctx context.Context, k *tav1.APIKey) (*apikey.Key, bool, error) {
	name := k.EffectiveSecretName()
	secret := &corev1.Secret{}
	err := r.Get(ctx, client.ObjectKey{Namespace: k.Namespace, Name: name}, secret)
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, false, fmt.Errorf("get secret of apikey %s: %w", k.Name, err)
	}
	if err == nil {
		if !metav1.IsControlledBy(secret, k) {
			r.conflict(k, name)
			return nil, false, nil
		}
		return r.adopt(k, secret)
	}
	if k.Status.KeyID != "" {
		setReady(&k.Status.Conditions, k.Generation, false, tav1.ReasonSecretMissing,
			fmt.Sprintf("Secret %s with the key was deleted; the key keeps working until revoked. To get a new key, make a new APIKey", name))
		return nil, true, nil
	}

	plaintext, key, err := apikey.Generate(string(k.Spec.Environment))
	if err != nil {
		return nil, false, fmt.Errorf("generate key for apikey %s: %w", k.Name, err)
	}
	secret = &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: k.Namespace, Name: name, Labels: map[string]string{
			tav1.LabelManagedBy: tav1.ManagedByValue, tav1.LabelComponent: tav1.ComponentAPIKey, tav1.LabelAPIKey: k.Name,
		}},
		Type:      corev1.SecretTypeOpaque,
		Immutable: new(true),
		Data:      map[string][]byte{tav1.APIKeyDataKey: []byte(plaintext)},
	}
	if err := controllerutil.SetControllerReference(k, secret, r.Scheme()); err != nil {
		return nil, false, fmt.Errorf("own secret of apikey %s: %w", k.Name, err)
	}
	if err := r.Create(ctx, secret); err != nil {
		if !apierrors.IsAlreadyExists(err) {
			return nil, false, fmt.Errorf("create secret of apikey %s: %w", k.Name, err)
		}
		// Not in our cache: either a foreign Secret (the cache holds only
		// labelled ones) or ours from a run that died before its status
		// write and is not cached yet. A live read tells which.
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(secret), secret); err != nil {
			return nil, false, fmt.Errorf("get secret of apikey %s: %w", k.Name, err)
		}
		if !metav1.IsControlledBy(secret, k) {
			r.conflict(k, name)
			return nil, false, nil
		}
		return r.adopt(k, secret)
	}
	r.Recorder.Eventf(k, nil, corev1.EventTypeNormal, "KeyIssued", "Issue", "key %s written to Secret %s", key.ID, name)
	k.Status.KeyID = key.ID
	k.Status.DisplayPrefix = key.DisplayPrefix()
	return &key, true, nil
}

// adopt reads the key from a Secret this APIKey owns, so a reconcile that
// died after creating the Secret converges without issuing another key.
func (r *APIKeyReconciler) adopt(k *tav1.APIKey, secret *corev1.Secret) (*apikey.Key, bool, error) {
	key, err := apikey.Parse(string(secret.Data[tav1.APIKeyDataKey]))
	if err != nil {
		setReady(&k.Status.Conditions, k.Generation, false, tav1.ReasonSecretMissing,
			fmt.Sprintf("Secret %s does not hold a valid key under %q: %v", secret.Name, tav1.APIKeyDataKey, err))
		return nil, false, nil
	}
	k.Status.KeyID = key.ID
	k.Status.DisplayPrefix = key.DisplayPrefix()
	return &key, true, nil
}

func (r *APIKeyReconciler) conflict(k *tav1.APIKey, name string) {
	setReady(&k.Status.Conditions, k.Generation, false, tav1.ReasonSecretConflict,
		fmt.Sprintf("Secret %s exists and is not owned by this APIKey; it was left untouched. Set spec.secretName to a free name", name))
	r.Recorder.Eventf(k, nil, corev1.EventTypeWarning, tav1.ReasonSecretConflict, "Issue", "Secret %s is not owned by this APIKey", name)
}

// reconcileHashSecret keeps the Secret the auth server checks the key with.
func (r *APIKeyReconciler) reconcileHashSecret(ctx context.Context, k *tav1.APIKey, key apikey.Key) error {
	desired := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: k.Namespace, Name: tav1.APIKeyHashSecretName(key.ID), Labels: map[string]string{
			tav1.LabelManagedBy: tav1.ManagedByValue, tav1.LabelComponent: tav1.ComponentAPIKeyHash,
			tav1.LabelAPIKey: k.Name, tav1.LabelKeyID: key.ID, tav1.LabelOrganization: k.Spec.Organization,
		}},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{tav1.APIKeyHashDataKey: []byte(key.Hash())},
	}
	if err := controllerutil.SetControllerReference(k, desired, r.Scheme()); err != nil {
		return fmt.Errorf("own hash secret of apikey %s: %w", k.Name, err)
	}
	current := &corev1.Secret{}
	err := r.Get(ctx, client.ObjectKeyFromObject(desired), current)
	switch {
	case apierrors.IsNotFound(err):
		if err := r.Create(ctx, desired); client.IgnoreAlreadyExists(err) != nil {
			return fmt.Errorf("create hash secret of apikey %s: %w", k.Name, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("get hash secret of apikey %s: %w", k.Name, err)
	}
	if equality.Semantic.DeepEqual(current.Labels, desired.Labels) && equality.Semantic.DeepEqual(current.Data, desired.Data) &&
		equality.Semantic.DeepEqual(current.OwnerReferences, desired.OwnerReferences) {
		return nil
	}
	current.Labels, current.Data, current.OwnerReferences = desired.Labels, desired.Data, desired.OwnerReferences
	if err := r.Update(ctx, current); err != nil {
		return fmt.Errorf("update hash secret of apikey %s: %w", k.Name, err)
	}
	return nil
}

// reconcileValidity reports revocation and expiry, and wakes up at expiry.
func (r *APIKeyReconciler) reconcileValidity(k *tav1.APIKey) ctrl.Result {
	now := r.Now()
	switch {
	case k.Spec.Revoked:
		if ready := findReady(k.Status.Conditions); ready == nil || ready.Reason != tav1.ReasonRevoked {
			r.Recorder.Eventf(k, nil, corev1.EventTypeNormal, "KeyRevoked", "Revoke", "key %s revoked", k.Status.KeyID)
		}
		setReady(&k.Status.Conditions, k.Generation, false, tav1.ReasonRevoked, "the key is revoked")
	case k.Spec.ExpiresAt != nil && !now.Before(k.Spec.ExpiresAt.Time):
		setReady(&k.Status.Conditions, k.Generation, false, tav1.ReasonExpired, "the key expired at "+k.Spec.ExpiresAt.UTC().Format(time.RFC3339))
	default:
		if ready := findReady(k.Status.Conditions); ready == nil || ready.Reason != tav1.ReasonSecretMissing {
			setReady(&k.Status.Conditions, k.Generation, true, tav1.ReasonReady, "key "+k.Status.DisplayPrefix+" is valid")
		}
		if k.Spec.ExpiresAt != nil {
			return ctrl.Result{RequeueAfter: k.Spec.ExpiresAt.Sub(now) + time.Second}
		}
	}
	return ctrl.Result{}
}

// SetupWithManager registers the reconciler.
func (r *APIKeyReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Now == nil {
		r.Now = time.Now
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&tav1.APIKey{}).
		Owns(&corev1.Secret{}).
		Watches(&tav1.Organization{}, handler.EnqueueRequestsFromMapFunc(referrers(mgr.GetClient(), &tav1.APIKeyList{}))).
		Named("apikey").
		WithOptions(controller.Options{MaxConcurrentReconciles: 4}).
		Complete(r)
}
