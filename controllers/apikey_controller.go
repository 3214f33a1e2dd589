package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
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
	"github.com/tenantauth/tenantauth/internal/trust"
)

// APIKeyReconciler issues each APIKey's key once: the plaintext goes to the
// Secret spec.secretName for its owner, and only its hash to a verification
// record in the system namespace, the one place the auth server reads.
type APIKeyReconciler struct {
	client.Client
	// APIReader reads live, for the rare checks the label-filtered cache
	// cannot answer (a foreign Secret in the way, a record made a moment
	// ago).
	APIReader client.Reader
	Recorder  events.EventRecorder
	// SystemNamespace holds the verification records.
	SystemNamespace string
	// Now is the clock; tests replace it.
	Now func() time.Time

	created createdRecords
}

// +kubebuilder:rbac:groups=tenantauth.io,resources=apikeys,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=tenantauth.io,resources=apikeys/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=tenantauth.io,resources=apikeys/finalizers,verbs=update

// Reconcile issues the key if needed and reports the key's state.
func (r *APIKeyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	k := &tav1.APIKey{}
	if err := r.Get(ctx, req.NamespacedName, k); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	// The plaintext Secret is owned by the APIKey and goes with it; the
	// record in the system namespace goes through the finalizer. The auth
	// server drops the key as soon as the APIKey leaves its cache.
	if !k.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.reconcileDelete(ctx, k)
	}
	orig := k.DeepCopy()
	defer func() {
		if retErr == nil {
			k.Status.ObservedGeneration = k.Generation
		}
		retErr = errors.Join(retErr, patchStatus(ctx, r.Client, orig, k, orig.Status, k.Status))
	}()
	if k.Namespace == r.SystemNamespace {
		setReady(&k.Status.Conditions, k.Generation, false, tav1.ReasonReservedNamespace,
			"tenant objects in the system namespace "+r.SystemNamespace+" are never served")
		return ctrl.Result{}, nil
	}
	if err := ensureFinalizer(ctx, r.Client, k); err != nil {
		return ctrl.Result{}, err
	}
	return r.reconcileNormal(ctx, k)
}

func (r *APIKeyReconciler) reconcileNormal(ctx context.Context, k *tav1.APIKey) (ctrl.Result, error) {
	org := &tav1.Organization{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: k.Namespace, Name: k.Spec.Organization}, org); err != nil {
		if apierrors.IsNotFound(err) {
			setReady(&k.Status.Conditions, k.Generation, false, tav1.ReasonOrganizationNotFound,
				fmt.Sprintf("Organization %q does not exist in namespace %s; the key is issued once it does", k.Spec.Organization, k.Namespace))
			r.Recorder.Eventf(k, nil, corev1.EventTypeWarning, tav1.ReasonOrganizationNotFound, "Issue",
				"Organization %q does not exist in namespace %s", k.Spec.Organization, k.Namespace)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get organization of apikey %s: %w", k.Name, err)
	}
	rec, err := r.findRecord(ctx, k)
	if err != nil {
		return ctrl.Result{}, err
	}
	if rec == nil {
		if rec, err = r.issue(ctx, k); err != nil || rec == nil {
			return ctrl.Result{}, err
		}
	} else if ok, err := r.checkAPIKeySecret(ctx, k); err != nil || !ok {
		return ctrl.Result{}, err
	}
	if err := r.deleteLegacyHash(ctx, k, rec.KeyID); err != nil {
		return ctrl.Result{}, err
	}
	k.Status.KeyID = rec.KeyID
	k.Status.DisplayPrefix = apikey.DisplayPrefix(string(k.Spec.Environment), rec.KeyID)
	return r.reconcileValidity(k), nil
}

// reconcileDelete removes the APIKey's record, then lets it go.
func (r *APIKeyReconciler) reconcileDelete(ctx context.Context, k *tav1.APIKey) error {
	if !controllerutil.ContainsFinalizer(k, tav1.Finalizer) {
		return nil
	}
	records, err := listOwnedRecords(ctx, r.Client, r.SystemNamespace, trust.ComponentAPIKeyRecord, trust.OwnerOf(k))
	if err != nil {
		return err
	}
	for _, s := range records {
		if err := r.Delete(ctx, &s, client.Preconditions{UID: &s.UID}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete record of apikey %s: %w", k.Name, err)
		}
	}
	controllerutil.RemoveFinalizer(k, tav1.Finalizer)
	if err := r.Update(ctx, k); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("remove finalizer of apikey %s: %w", k.Name, err)
	}
	return nil
}

// findRecord returns the APIKey's verification record. status.keyID is
// never consulted: a tenant may write it.
func (r *APIKeyReconciler) findRecord(ctx context.Context, k *tav1.APIKey) (*trust.APIKeyRecord, error) {
	owner := trust.OwnerOf(k)
	found, err := listOwnedRecords(ctx, r.Client, r.SystemNamespace, trust.ComponentAPIKeyRecord, owner)
	if err != nil {
		return nil, err
	}
	if len(found) > 0 {
		r.created.forget(k.UID)
		return trust.ParseAPIKeyRecord(&found[0], r.SystemNamespace)
	}
	// A record made a moment ago may not be cached yet: read it back
	// rather than issuing a second key.
	sec, err := r.created.find(ctx, r.APIReader, r.SystemNamespace, k.UID)
	if err != nil || sec == nil {
		return nil, err
	}
	return trust.ParseAPIKeyRecord(sec, r.SystemNamespace)
}

// issue makes the key and its record: from the plaintext Secret a run that
// died before its record left behind, from a pre-upgrade hash Secret, or
// new. It returns nil when the key cannot be served, with status saying
// why.
func (r *APIKeyReconciler) issue(ctx context.Context, k *tav1.APIKey) (*trust.APIKeyRecord, error) {
	keyID, hash, ok, err := r.reconcileAPIKeySecret(ctx, k)
	if err != nil || !ok {
		return nil, err
	}
	rec := trust.New(r.SystemNamespace, trust.APIKeyRecordName(keyID), trust.ComponentAPIKeyRecord, trust.OwnerOf(k))
	rec.Annotations[trust.AnnotationKeyID] = keyID
	rec.Annotations[trust.AnnotationOrganization] = k.Spec.Organization
	rec.Data = map[string][]byte{trust.APIKeyHashDataKey: []byte(hash)}
	err = r.Create(ctx, rec)
	if apierrors.IsAlreadyExists(err) {
		// Creating the record claims the key ID: one made by another
		// APIKey (a planted Secret carrying a copied ID) is never shared.
		existing := &corev1.Secret{}
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(rec), existing); err != nil {
			return nil, fmt.Errorf("get record of apikey %s: %w", k.Name, err)
		}
		if parsed, err := trust.ParseAPIKeyRecord(existing, r.SystemNamespace); err == nil && parsed.Owner.Owns(k) {
			return parsed, nil
		}
		setReady(&k.Status.Conditions, k.Generation, false, tav1.ReasonKeyIDConflict,
			fmt.Sprintf("key ID %s is claimed by another APIKey; this key is not served. Make a new APIKey", keyID))
		r.Recorder.Eventf(k, nil, corev1.EventTypeWarning, tav1.ReasonKeyIDConflict, "Issue", "key ID %s is claimed by another APIKey", keyID)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("create record of apikey %s: %w", k.Name, err)
	}
	r.created.remember(k.UID, rec.Name)
	return trust.ParseAPIKeyRecord(rec, r.SystemNamespace)
}

// reconcileAPIKeySecret returns the key ID and hash of the APIKey's key,
// issuing it first when the APIKey has none. When the plaintext Secret is
// gone but a pre-upgrade hash Secret remains, the key is carried over from
// that: the operator never makes a second plaintext for one APIKey.
func (r *APIKeyReconciler) reconcileAPIKeySecret(ctx context.Context, k *tav1.APIKey) (keyID, hash string, ok bool, err error) {
	name := k.EffectiveSecretName()
	secret := &corev1.Secret{}
	err = r.Get(ctx, client.ObjectKey{Namespace: k.Namespace, Name: name}, secret)
	if err != nil && !apierrors.IsNotFound(err) {
		return "", "", false, fmt.Errorf("get secret of apikey %s: %w", k.Name, err)
	}
	if err == nil {
		return r.adopt(k, secret)
	}
	if legacy, err := r.legacyHash(ctx, k); err != nil || legacy != nil {
		if legacy == nil {
			return "", "", false, err
		}
		setReady(&k.Status.Conditions, k.Generation, false, tav1.ReasonSecretMissing,
			fmt.Sprintf("Secret %s with the key was deleted; the key keeps working until revoked. To get a new key, make a new APIKey", name))
		return legacy.Labels[tav1.LabelKeyID], string(legacy.Data[tav1.APIKeyHashDataKey]), true, nil
	}

	plaintext, key, err := apikey.Generate(string(k.Spec.Environment))
	if err != nil {
		return "", "", false, fmt.Errorf("generate key for apikey %s: %w", k.Name, err)
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
		return "", "", false, fmt.Errorf("own secret of apikey %s: %w", k.Name, err)
	}
	if err := r.Create(ctx, secret); err != nil {
		if !apierrors.IsAlreadyExists(err) {
			return "", "", false, fmt.Errorf("create secret of apikey %s: %w", k.Name, err)
		}
		// Not in our cache: either a foreign Secret (the cache holds only
		// labelled ones) or ours from a run that died before its record
		// and is not cached yet. A live read tells which.
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(secret), secret); err != nil {
			return "", "", false, fmt.Errorf("get secret of apikey %s: %w", k.Name, err)
		}
		return r.adopt(k, secret)
	}
	r.Recorder.Eventf(k, nil, corev1.EventTypeNormal, "KeyIssued", "Issue", "key %s written to Secret %s", key.ID, name)
	return key.ID, key.Hash(), true, nil
}

// adopt reads the key from a Secret this APIKey owns, so a reconcile that
// died after creating the Secret converges without issuing another key.
func (r *APIKeyReconciler) adopt(k *tav1.APIKey, secret *corev1.Secret) (string, string, bool, error) {
	if !metav1.IsControlledBy(secret, k) {
		r.conflict(k, secret.Name)
		return "", "", false, nil
	}
	key, err := apikey.Parse(string(secret.Data[tav1.APIKeyDataKey]))
	if err != nil {
		setReady(&k.Status.Conditions, k.Generation, false, tav1.ReasonSecretMissing,
			fmt.Sprintf("Secret %s does not hold a valid key under %q", secret.Name, tav1.APIKeyDataKey))
		return "", "", false, nil
	}
	return key.ID, key.Hash(), true, nil
}

// checkAPIKeySecret reports a plaintext Secret that went missing or was
// replaced after the key was issued. The record keeps the key working.
func (r *APIKeyReconciler) checkAPIKeySecret(ctx context.Context, k *tav1.APIKey) (bool, error) {
	name := k.EffectiveSecretName()
	secret := &corev1.Secret{}
	err := r.Get(ctx, client.ObjectKey{Namespace: k.Namespace, Name: name}, secret)
	switch {
	case apierrors.IsNotFound(err):
		setReady(&k.Status.Conditions, k.Generation, false, tav1.ReasonSecretMissing,
			fmt.Sprintf("Secret %s with the key was deleted; the key keeps working until revoked. To get a new key, make a new APIKey", name))
	case err != nil:
		return false, fmt.Errorf("get secret of apikey %s: %w", k.Name, err)
	case !metav1.IsControlledBy(secret, k):
		r.conflict(k, name)
		return false, nil
	}
	return true, nil
}

func (r *APIKeyReconciler) conflict(k *tav1.APIKey, name string) {
	setReady(&k.Status.Conditions, k.Generation, false, tav1.ReasonSecretConflict,
		fmt.Sprintf("Secret %s exists and is not owned by this APIKey; it was left untouched. Set spec.secretName to a free name", name))
	r.Recorder.Eventf(k, nil, corev1.EventTypeWarning, tav1.ReasonSecretConflict, "Issue", "Secret %s is not owned by this APIKey", name)
}

// legacyHash finds the hash Secret a release before the system-namespace
// records kept beside the key, owned by this APIKey.
func (r *APIKeyReconciler) legacyHash(ctx context.Context, k *tav1.APIKey) (*corev1.Secret, error) {
	list := &corev1.SecretList{}
	if err := r.List(ctx, list, client.InNamespace(k.Namespace),
		client.MatchingLabels{tav1.LabelComponent: tav1.ComponentAPIKeyHash, tav1.LabelAPIKey: k.Name}); err != nil {
		return nil, fmt.Errorf("list pre-upgrade hash of apikey %s: %w", k.Name, err)
	}
	for i, s := range list.Items {
		if id := s.Labels[tav1.LabelKeyID]; metav1.IsControlledBy(&s, k) && s.Name == tav1.APIKeyHashSecretName(id) &&
			len(s.Data[tav1.APIKeyHashDataKey]) > 0 {
			return &list.Items[i], nil
		}
	}
	return nil, nil
}

// deleteLegacyHash removes the pre-upgrade hash Secret once the record
// holds the hash.
func (r *APIKeyReconciler) deleteLegacyHash(ctx context.Context, k *tav1.APIKey, keyID string) error {
	legacy := &corev1.Secret{}
	err := r.Get(ctx, client.ObjectKey{Namespace: k.Namespace, Name: tav1.APIKeyHashSecretName(keyID)}, legacy)
	if apierrors.IsNotFound(err) || (err == nil && !metav1.IsControlledBy(legacy, k)) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get pre-upgrade hash of apikey %s: %w", k.Name, err)
	}
	if err := r.Delete(ctx, legacy, client.Preconditions{UID: &legacy.UID}); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("delete pre-upgrade hash of apikey %s: %w", k.Name, err)
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
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.recordOwner)).
		Watches(&tav1.Organization{}, handler.EnqueueRequestsFromMapFunc(referrers(mgr.GetClient(), &tav1.APIKeyList{}))).
		Named("apikey").
		WithOptions(controller.Options{MaxConcurrentReconciles: 4}).
		Complete(r)
}

// recordOwner maps a verification record to its APIKey, so a deleted
// record is re-made at once.
func (r *APIKeyReconciler) recordOwner(_ context.Context, obj client.Object) []ctrl.Request {
	sec, ok := obj.(*corev1.Secret)
	if !ok {
		return nil
	}
	rec, err := trust.ParseAPIKeyRecord(sec, r.SystemNamespace)
	if err != nil {
		return nil
	}
	return []ctrl.Request{{NamespacedName: client.ObjectKey{Namespace: rec.Owner.Namespace, Name: rec.Owner.Name}}}
}
