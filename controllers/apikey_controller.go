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

// apiKeyScope is what one reconcile of an APIKey knows. Each phase fills
// in what the later ones need.
type apiKeyScope struct {
	key *tav1.APIKey
	// now is the reconcile's one clock reading.
	now time.Time
	// record is the key's verification record in the system namespace,
	// once found or made.
	record *trust.APIKeyRecord
	outcome
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
	s := &apiKeyScope{key: k, now: r.Now()}
	defer func() { retErr = errors.Join(retErr, r.writeStatus(ctx, orig, s, retErr == nil)) }()
	return runPhases(ctx, s,
		r.checkNamespace,
		r.ensureFinalizer,
		r.checkOrganization,
		r.reconcileRecord,
		r.deleteLegacyHash,
		r.mirrorKey,
		r.checkValidity,
	)
}

// writeStatus is the deferred end of every reconcile: it turns what the
// phases found into Ready, announces a new state once, and writes status
// when it changed. observedGeneration moves only when every phase ran.
func (r *APIKeyReconciler) writeStatus(ctx context.Context, orig *tav1.APIKey, s *apiKeyScope, complete bool) error {
	k := s.key
	if complete {
		k.Status.ObservedGeneration = k.Generation
	}
	if c := s.readiness(complete, "key "+k.Status.DisplayPrefix+" is valid"); c != nil {
		setReady(&k.Status.Conditions, k.Generation, c)
		announce(r.Recorder, k, orig.Status.Conditions, c)
	}
	return patchStatus(ctx, r.Client, orig, k, orig.Status, k.Status)
}

// checkNamespace refuses APIKeys in the system namespace before anything
// is written for them, a finalizer included.
func (r *APIKeyReconciler) checkNamespace(_ context.Context, s *apiKeyScope) (ctrl.Result, error) {
	if s.key.Namespace == r.SystemNamespace {
		s.block(tav1.ReasonReservedNamespace, "tenant objects in the system namespace "+r.SystemNamespace+" are never served")
	}
	return ctrl.Result{}, nil
}

func (r *APIKeyReconciler) ensureFinalizer(ctx context.Context, s *apiKeyScope) (ctrl.Result, error) {
	return ctrl.Result{}, ensureFinalizer(ctx, r.Client, s.key)
}

// checkOrganization waits for the Organization: no key is issued for one
// that does not exist. Its appearance wakes the APIKey through the
// spec.organization index.
func (r *APIKeyReconciler) checkOrganization(ctx context.Context, s *apiKeyScope) (ctrl.Result, error) {
	k := s.key
	err := r.Get(ctx, client.ObjectKey{Namespace: k.Namespace, Name: k.Spec.Organization}, &tav1.Organization{})
	if apierrors.IsNotFound(err) {
		s.block(tav1.ReasonOrganizationNotFound,
			fmt.Sprintf("Organization %q does not exist in namespace %s; the key is issued once it does", k.Spec.Organization, k.Namespace))
		r.Recorder.Eventf(k, nil, corev1.EventTypeWarning, tav1.ReasonOrganizationNotFound, "Issue",
			"Organization %q does not exist in namespace %s", k.Spec.Organization, k.Namespace)
		return ctrl.Result{}, nil
	}
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("get organization of apikey %s: %w", k.Name, err)
	}
	return ctrl.Result{}, nil
}

// reconcileRecord finds the key's verification record and checks the
// plaintext Secret is still there, or issues the key when there is no
// record yet.
func (r *APIKeyReconciler) reconcileRecord(ctx context.Context, s *apiKeyScope) (ctrl.Result, error) {
	rec, err := r.findRecord(ctx, s.key)
	if err != nil {
		return ctrl.Result{}, err
	}
	if rec == nil {
		return ctrl.Result{}, r.issue(ctx, s)
	}
	s.record = rec
	return ctrl.Result{}, r.checkAPIKeySecret(ctx, s)
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
// new. When the key cannot be served it leaves the reason on the scope.
func (r *APIKeyReconciler) issue(ctx context.Context, s *apiKeyScope) error {
	k := s.key
	keyID, hash, err := r.reconcileAPIKeySecret(ctx, s)
	if err != nil || s.stopped() {
		return err
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
			return fmt.Errorf("get record of apikey %s: %w", k.Name, err)
		}
		if parsed, err := trust.ParseAPIKeyRecord(existing, r.SystemNamespace); err == nil && parsed.Owner.Owns(k) {
			s.record = parsed
			return nil
		}
		s.block(tav1.ReasonKeyIDConflict,
			fmt.Sprintf("key ID %s is claimed by another APIKey; this key is not served. Make a new APIKey", keyID))
		r.Recorder.Eventf(k, nil, corev1.EventTypeWarning, tav1.ReasonKeyIDConflict, "Issue", "key ID %s is claimed by another APIKey", keyID)
		return nil
	}
	if err != nil {
		return fmt.Errorf("create record of apikey %s: %w", k.Name, err)
	}
	r.created.remember(k.UID, rec.Name)
	s.record, err = trust.ParseAPIKeyRecord(rec, r.SystemNamespace)
	return err
}

// reconcileAPIKeySecret returns the key ID and hash of the APIKey's key,
// issuing it first when the APIKey has none. When the plaintext Secret is
// gone but a pre-upgrade hash Secret remains, the key is carried over from
// that: the operator never makes a second plaintext for one APIKey.
func (r *APIKeyReconciler) reconcileAPIKeySecret(ctx context.Context, s *apiKeyScope) (keyID, hash string, err error) {
	k := s.key
	name := k.EffectiveSecretName()
	secret := &corev1.Secret{}
	err = r.Get(ctx, client.ObjectKey{Namespace: k.Namespace, Name: name}, secret)
	if err != nil && !apierrors.IsNotFound(err) {
		return "", "", fmt.Errorf("get secret of apikey %s: %w", k.Name, err)
	}
	if err == nil {
		keyID, hash = r.adopt(s, secret)
		return keyID, hash, nil
	}
	if legacy, err := r.legacyHash(ctx, k); err != nil || legacy != nil {
		if legacy == nil {
			return "", "", err
		}
		s.degrade(tav1.ReasonSecretMissing, secretMissing(name))
		return legacy.Labels[tav1.LabelKeyID], string(legacy.Data[tav1.APIKeyHashDataKey]), nil
	}

	plaintext, key, err := apikey.Generate(string(k.Spec.Environment))
	if err != nil {
		return "", "", fmt.Errorf("generate key for apikey %s: %w", k.Name, err)
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
		return "", "", fmt.Errorf("own secret of apikey %s: %w", k.Name, err)
	}
	if err := r.Create(ctx, secret); err != nil {
		if !apierrors.IsAlreadyExists(err) {
			return "", "", fmt.Errorf("create secret of apikey %s: %w", k.Name, err)
		}
		// Not in our cache: either a foreign Secret (the cache holds only
		// labelled ones) or ours from a run that died before its record
		// and is not cached yet. A live read tells which.
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(secret), secret); err != nil {
			return "", "", fmt.Errorf("get secret of apikey %s: %w", k.Name, err)
		}
		keyID, hash = r.adopt(s, secret)
		return keyID, hash, nil
	}
	r.Recorder.Eventf(k, nil, corev1.EventTypeNormal, "KeyIssued", "Issue", "key %s written to Secret %s", key.ID, name)
	return key.ID, key.Hash(), nil
}

// adopt reads the key from a Secret this APIKey owns, so a reconcile that
// died after creating the Secret converges without issuing another key.
// Any other Secret blocks the key.
func (r *APIKeyReconciler) adopt(s *apiKeyScope, secret *corev1.Secret) (keyID, hash string) {
	if !metav1.IsControlledBy(secret, s.key) {
		r.conflict(s, secret.Name)
		return "", ""
	}
	key, err := apikey.Parse(string(secret.Data[tav1.APIKeyDataKey]))
	if err != nil {
		s.block(tav1.ReasonSecretMissing, fmt.Sprintf("Secret %s does not hold a valid key under %q", secret.Name, tav1.APIKeyDataKey))
		return "", ""
	}
	return key.ID, key.Hash()
}

// checkAPIKeySecret reports a plaintext Secret that went missing or was
// replaced after the key was issued. The record keeps the key working.
func (r *APIKeyReconciler) checkAPIKeySecret(ctx context.Context, s *apiKeyScope) error {
	k := s.key
	name := k.EffectiveSecretName()
	secret := &corev1.Secret{}
	err := r.Get(ctx, client.ObjectKey{Namespace: k.Namespace, Name: name}, secret)
	switch {
	case apierrors.IsNotFound(err):
		s.degrade(tav1.ReasonSecretMissing, secretMissing(name))
	case err != nil:
		return fmt.Errorf("get secret of apikey %s: %w", k.Name, err)
	case !metav1.IsControlledBy(secret, k):
		r.conflict(s, name)
	}
	return nil
}

func secretMissing(name string) string {
	return fmt.Sprintf("Secret %s with the key was deleted; the key keeps working until revoked. To get a new key, make a new APIKey", name)
}

func (r *APIKeyReconciler) conflict(s *apiKeyScope, name string) {
	s.block(tav1.ReasonSecretConflict,
		fmt.Sprintf("Secret %s exists and is not owned by this APIKey; it was left untouched. Set spec.secretName to a free name", name))
	r.Recorder.Eventf(s.key, nil, corev1.EventTypeWarning, tav1.ReasonSecretConflict, "Issue", "Secret %s is not owned by this APIKey", name)
}

// legacyHash finds the hash Secret a release before the system-namespace
// records kept beside the key, owned by this APIKey. It reads live: it is
// asked only before a new key is made, and a cache that has not yet seen
// the hash Secret would issue a second key instead of carrying it over.
func (r *APIKeyReconciler) legacyHash(ctx context.Context, k *tav1.APIKey) (*corev1.Secret, error) {
	list := &corev1.SecretList{}
	if err := r.APIReader.List(ctx, list, client.InNamespace(k.Namespace),
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
func (r *APIKeyReconciler) deleteLegacyHash(ctx context.Context, s *apiKeyScope) (ctrl.Result, error) {
	k := s.key
	legacy := &corev1.Secret{}
	err := r.Get(ctx, client.ObjectKey{Namespace: k.Namespace, Name: tav1.APIKeyHashSecretName(s.record.KeyID)}, legacy)
	if apierrors.IsNotFound(err) || (err == nil && !metav1.IsControlledBy(legacy, k)) {
		return ctrl.Result{}, nil
	}
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("get pre-upgrade hash of apikey %s: %w", k.Name, err)
	}
	if err := r.Delete(ctx, legacy, client.Preconditions{UID: &legacy.UID}); client.IgnoreNotFound(err) != nil {
		return ctrl.Result{}, fmt.Errorf("delete pre-upgrade hash of apikey %s: %w", k.Name, err)
	}
	return ctrl.Result{}, nil
}

// mirrorKey shows the record's key ID in status. Status is only a copy:
// nothing reads it back as the truth.
func (r *APIKeyReconciler) mirrorKey(_ context.Context, s *apiKeyScope) (ctrl.Result, error) {
	s.key.Status.KeyID = s.record.KeyID
	s.key.Status.DisplayPrefix = apikey.DisplayPrefix(string(s.key.Spec.Environment), s.record.KeyID)
	return ctrl.Result{}, nil
}

// checkValidity reports revocation and expiry, and wakes up at expiry.
func (r *APIKeyReconciler) checkValidity(_ context.Context, s *apiKeyScope) (ctrl.Result, error) {
	k := s.key
	switch {
	case k.Spec.Revoked:
		s.blockOnce(tav1.ReasonRevoked, "the key is revoked",
			announcement{corev1.EventTypeNormal, "KeyRevoked", "Revoke", fmt.Sprintf("key %s revoked", k.Status.KeyID)})
	case k.Spec.ExpiresAt != nil && !s.now.Before(k.Spec.ExpiresAt.Time):
		s.block(tav1.ReasonExpired, "the key expired at "+k.Spec.ExpiresAt.UTC().Format(time.RFC3339))
	case k.Spec.ExpiresAt != nil:
		return ctrl.Result{RequeueAfter: k.Spec.ExpiresAt.Sub(s.now) + time.Second}, nil
	}
	return ctrl.Result{}, nil
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
