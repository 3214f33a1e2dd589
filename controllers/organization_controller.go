package controllers

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"regexp"
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
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/internal/signingkeys"
	"github.com/tenantauth/tenantauth/internal/trust"
)

// OrganizationReconciler gives each Organization its permanent ID, claims
// its slug and keeps its signing keys: it makes the first key, rotates on
// schedule and prunes retired keys. Everything it writes lives in the
// system namespace (package trust); status only mirrors it.
type OrganizationReconciler struct {
	client.Client
	// APIReader reads live, for the rare checks the cache may not answer
	// yet (a record created a moment ago, a claim held by someone else).
	APIReader client.Reader
	Recorder  events.EventRecorder
	// SystemNamespace holds the records; tenant objects in it are never
	// served.
	SystemNamespace string
	// Now is the clock; tests replace it.
	Now func() time.Time

	created createdRecords
}

// +kubebuilder:rbac:groups=tenantauth.io,resources=organizations,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=tenantauth.io,resources=organizations/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=tenantauth.io,resources=organizations/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one Organization's ID, slug claim, keys and status up to
// date.
func (r *OrganizationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	org := &tav1.Organization{}
	if err := r.Get(ctx, req.NamespacedName, org); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !org.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.reconcileDelete(ctx, org)
	}
	orig := org.DeepCopy()
	defer func() {
		if retErr == nil {
			org.Status.ObservedGeneration = org.Generation
		}
		retErr = errors.Join(retErr, patchStatus(ctx, r.Client, orig, org, orig.Status, org.Status))
	}()
	if org.Namespace == r.SystemNamespace {
		setReady(&org.Status.Conditions, org.Generation, false, tav1.ReasonReservedNamespace,
			"tenant objects in the system namespace "+r.SystemNamespace+" are never served; create the Organization in a tenant namespace")
		return ctrl.Result{}, nil
	}
	if err := ensureFinalizer(ctx, r.Client, org); err != nil {
		return ctrl.Result{}, err
	}
	return r.reconcileNormal(ctx, org)
}

func (r *OrganizationReconciler) reconcileNormal(ctx context.Context, org *tav1.Organization) (ctrl.Result, error) {
	record, err := r.reconcileRecord(ctx, org)
	if err != nil || record == nil {
		return ctrl.Result{}, err
	}
	res, err := r.reconcileSigningKeys(ctx, org, record)
	if err != nil {
		return res, err
	}
	if err := r.deleteLegacyKeys(ctx, org); err != nil {
		return res, err
	}
	claimed, err := r.reconcileSlugClaim(ctx, org)
	if err != nil || !claimed {
		return res, err
	}
	setReady(&org.Status.Conditions, org.Generation, true, tav1.ReasonReady,
		fmt.Sprintf("active signing key %s", org.Status.ActiveKeyID))
	return res, nil
}

// reconcileDelete removes the records of org from the system namespace,
// then lets the Organization go.
func (r *OrganizationReconciler) reconcileDelete(ctx context.Context, org *tav1.Organization) error {
	if !controllerutil.ContainsFinalizer(org, tav1.Finalizer) {
		return nil
	}
	owner := trust.OwnerOf(org)
	records, err := r.ownedRecords(ctx, trust.ComponentSigningKeys, owner)
	if err != nil {
		return err
	}
	claims, err := r.ownedRecords(ctx, trust.ComponentSlugClaim, owner)
	if err != nil {
		return err
	}
	for _, s := range append(records, claims...) {
		if err := r.Delete(ctx, &s, client.Preconditions{UID: &s.UID}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete %s of organization %s: %w", s.Name, org.Name, err)
		}
	}
	controllerutil.RemoveFinalizer(org, tav1.Finalizer)
	if err := r.Update(ctx, org); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("remove finalizer of organization %s: %w", org.Name, err)
	}
	return nil
}

// ownedRecords lists the records of component in the system namespace that
// name owner, from the cache. Labels are trusted here only because nobody
// but the operator writes this namespace; the owner is still checked.
func (r *OrganizationReconciler) ownedRecords(ctx context.Context, component string, owner trust.Owner) ([]corev1.Secret, error) {
	return listOwnedRecords(ctx, r.Client, r.SystemNamespace, component, owner)
}

// reconcileRecord finds the Organization's record, or makes it: with the
// ID and keys of a pre-upgrade Secret in the Organization's namespace, the
// ID status still shows after the record was deleted, or a new ID. Creating
// the record claims the ID, so an ID another Organization holds is never
// shared, whatever a tenant writes into status. It returns nil when the
// Organization cannot be served.
func (r *OrganizationReconciler) reconcileRecord(ctx context.Context, org *tav1.Organization) (*corev1.Secret, error) {
	owner := trust.OwnerOf(org)
	found, err := r.ownedRecords(ctx, trust.ComponentSigningKeys, owner)
	if err != nil {
		return nil, err
	}
	if len(found) > 0 {
		r.created.forget(org.UID)
		return &found[0], nil
	}
	// The cache may not hold a record made a moment ago: read it back
	// rather than minting a second ID.
	if sec, err := r.created.find(ctx, r.APIReader, r.SystemNamespace, org.UID); err != nil || sec != nil {
		return sec, err
	}

	id, keys, err := r.legacyKeys(ctx, org)
	legacyID := id
	if err == nil && id == "" {
		id, err = r.recoveredID(ctx, org)
	}
	if err != nil {
		return nil, err
	}
	if id == "" {
		id = "org_" + strings.ToLower(ulid.MustNew(ulid.Timestamp(r.Now()), rand.Reader).String())
	}
	if keys == nil {
		// The first key goes into the create, so a new Organization costs
		// one write here rather than a create and an update.
		set := &signingkeys.Set{}
		if _, _, err := set.Rotate(keyPolicy(org), r.Now()); err != nil {
			return nil, fmt.Errorf("make first key of %s: %w", org.Name, err)
		}
		if keys, err = set.Marshal(); err != nil {
			return nil, fmt.Errorf("encode keys of %s: %w", org.Name, err)
		}
	}
	record := trust.New(r.SystemNamespace, trust.SigningKeysName(id), trust.ComponentSigningKeys, owner)
	record.Annotations[trust.AnnotationOrganizationID] = id
	record.Data = map[string][]byte{signingkeys.DataKey: keys}
	if err := r.Create(ctx, record); err != nil {
		if !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("create record of organization %s: %w", org.Name, err)
		}
		existing := &corev1.Secret{}
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(record), existing); err != nil {
			return nil, fmt.Errorf("get record of organization %s: %w", org.Name, err)
		}
		if rec, err := trust.ParseOrgRecord(existing, r.SystemNamespace); err == nil && rec.Owner.Owns(org) {
			return existing, nil
		}
		setReady(&org.Status.Conditions, org.Generation, false, tav1.ReasonSecretConflict,
			fmt.Sprintf("organization ID %s is claimed by another Organization; this one is not served", id))
		r.Recorder.Eventf(org, nil, corev1.EventTypeWarning, tav1.ReasonSecretConflict, "ClaimID",
			"organization ID %s is claimed by another Organization", id)
		return nil, nil
	}
	r.created.remember(org.UID, record.Name)
	if legacyID != "" {
		r.Recorder.Eventf(org, nil, corev1.EventTypeNormal, "KeysMoved", "Upgrade",
			"signing keys moved to %s/%s", r.SystemNamespace, record.Name)
	} else if set, err := signingkeys.Parse(keys); err == nil {
		if first, ok := set.Newest(); ok {
			log.FromContext(ctx).Info("signing key made", "organization", org.Name, "kid", first.KID, "activeFrom", first.ActiveFrom)
			r.Recorder.Eventf(org, nil, corev1.EventTypeNormal, "KeyRotated", "Rotate",
				"new %s signing key %s, active from %s", first.Algorithm, first.KID, first.ActiveFrom.Format(time.RFC3339))
		}
	}
	return record, nil
}

// legacyKeys reads the ID and keys a release before the system-namespace
// records kept in the Organization's namespace. Those Secrets were as
// writable by the tenant as anything there, so an ID is taken over only
// when no other pre-upgrade Secret claimed it earlier: the operator made
// the genuine one when it minted the ID, before anyone could copy it.
func (r *OrganizationReconciler) legacyKeys(ctx context.Context, org *tav1.Organization) (string, []byte, error) {
	legacy := &corev1.Secret{}
	err := r.Get(ctx, client.ObjectKey{Namespace: org.Namespace, Name: org.LegacySigningKeySecretName()}, legacy)
	if apierrors.IsNotFound(err) || (err == nil && !metav1.IsControlledBy(legacy, org)) {
		return "", nil, nil
	}
	if err != nil {
		return "", nil, fmt.Errorf("get pre-upgrade keys of organization %s: %w", org.Name, err)
	}
	id := legacy.Annotations[tav1.AnnotationOrganizationID]
	if _, err := signingkeys.Parse(legacy.Data[signingkeys.DataKey]); err != nil || !strings.HasPrefix(id, "org_") {
		return "", nil, nil
	}
	all := &corev1.SecretList{}
	if err := r.List(ctx, all, client.MatchingLabels{tav1.LabelComponent: tav1.ComponentSigningKeys}); err != nil {
		return "", nil, fmt.Errorf("list pre-upgrade keys: %w", err)
	}
	for _, s := range all.Items {
		if s.UID != legacy.UID && s.Namespace != r.SystemNamespace && s.Annotations[tav1.AnnotationOrganizationID] == id &&
			!s.CreationTimestamp.After(legacy.CreationTimestamp.Time) {
			return "", nil, nil
		}
	}
	return id, legacy.Data[signingkeys.DataKey], nil
}

// recoveredID is the ID status shows, for an Organization whose record was
// deleted: its keys are gone, but upstreams know it by that ID. Status is
// writable by the tenant, so the ID is taken only when no other
// Organization shows it too; the record's create-if-absent then settles
// any race.
func (r *OrganizationReconciler) recoveredID(ctx context.Context, org *tav1.Organization) (string, error) {
	id := org.Status.ID
	if !orgIDPattern.MatchString(id) {
		return "", nil
	}
	all := &tav1.OrganizationList{}
	if err := r.List(ctx, all); err != nil {
		return "", fmt.Errorf("list organizations: %w", err)
	}
	for _, o := range all.Items {
		if o.UID != org.UID && o.Status.ID == id {
			return "", nil
		}
	}
	return id, nil
}

var orgIDPattern = regexp.MustCompile(`^org_[0-9a-z]{26}$`)

// deleteLegacyKeys removes the pre-upgrade Secret once the record holds
// the keys, so no private key stays in a tenant namespace.
func (r *OrganizationReconciler) deleteLegacyKeys(ctx context.Context, org *tav1.Organization) error {
	legacy := &corev1.Secret{}
	err := r.Get(ctx, client.ObjectKey{Namespace: org.Namespace, Name: org.LegacySigningKeySecretName()}, legacy)
	if apierrors.IsNotFound(err) || (err == nil && !metav1.IsControlledBy(legacy, org)) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get pre-upgrade keys of organization %s: %w", org.Name, err)
	}
	if err := r.Delete(ctx, legacy, client.Preconditions{UID: &legacy.UID}); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("delete pre-upgrade keys of organization %s: %w", org.Name, err)
	}
	return nil
}

// reconcileSlugClaim claims the slug, first come first served. The loser
// is not served and says so; it is woken when the claim is released.
func (r *OrganizationReconciler) reconcileSlugClaim(ctx context.Context, org *tav1.Organization) (bool, error) {
	slug := org.EffectiveSlug()
	claim := trust.New(r.SystemNamespace, trust.SlugClaimName(slug), trust.ComponentSlugClaim, trust.OwnerOf(org))
	claim.Annotations[trust.AnnotationSlug] = slug
	existing := &corev1.Secret{}
	err := r.Get(ctx, client.ObjectKeyFromObject(claim), existing)
	if apierrors.IsNotFound(err) {
		if err = r.Create(ctx, claim); err == nil {
			return true, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return false, fmt.Errorf("claim slug %q for organization %s: %w", slug, org.Name, err)
		}
		err = r.APIReader.Get(ctx, client.ObjectKeyFromObject(claim), existing)
	}
	if err != nil {
		return false, fmt.Errorf("get claim of slug %q: %w", slug, err)
	}
	if c, err := trust.ParseSlugClaim(existing, r.SystemNamespace); err == nil && c.Owner.Owns(org) {
		return true, nil
	}
	if ready := findReady(org.Status.Conditions); ready == nil || ready.Reason != tav1.ReasonSlugConflict {
		r.Recorder.Eventf(org, nil, corev1.EventTypeWarning, tav1.ReasonSlugConflict, "ClaimSlug",
			"slug %q is taken by another Organization", slug)
	}
	setReady(&org.Status.Conditions, org.Generation, false, tav1.ReasonSlugConflict,
		fmt.Sprintf("slug %q is taken by another Organization; this one is not served. Choose another slug", slug))
	return false, nil
}

// reconcileSigningKeys creates, rotates and prunes the keys in one write to
// the record, then mirrors it into status. The record is the source of
// truth: a crash after its write and before the status patch converges on
// the next run, with neither a lost nor a second key.
func (r *OrganizationReconciler) reconcileSigningKeys(ctx context.Context, org *tav1.Organization, record *corev1.Secret) (ctrl.Result, error) {
	now := r.Now()
	set, err := signingkeys.Parse(record.Data[signingkeys.DataKey])
	if err != nil {
		// A corrupt set is not repaired by starting over: that would drop
		// keys that still verify live tokens. A human must look.
		setReady(&org.Status.Conditions, org.Generation, false, tav1.ReasonKeyGenerationFailed,
			fmt.Sprintf("Secret %s/%s holds an unreadable key set: %v", record.Namespace, record.Name, err))
		return ctrl.Result{}, nil
	}
	before, hadActive := set.Newest()
	changed, next, err := set.Rotate(keyPolicy(org), now)
	if err != nil {
		setReady(&org.Status.Conditions, org.Generation, false, tav1.ReasonKeyGenerationFailed, err.Error())
		return ctrl.Result{}, fmt.Errorf("rotate keys of %s: %w", org.Name, err)
	}
	if changed {
		data, err := set.Marshal()
		if err != nil {
			return ctrl.Result{}, fmt.Errorf("encode keys of %s: %w", org.Name, err)
		}
		desired := record.DeepCopy()
		desired.Data = map[string][]byte{signingkeys.DataKey: data}
		if !equality.Semantic.DeepEqual(record.Data, desired.Data) {
			// Update carries the resourceVersion: a concurrent writer makes
			// this fail instead of silently replacing its keys.
			if err := r.Update(ctx, desired); err != nil {
				return ctrl.Result{}, fmt.Errorf("update signing keys of %s: %w", org.Name, err)
			}
		}
	}
	if newest, _ := set.Newest(); changed && (!hadActive || newest.KID != before.KID) {
		log.FromContext(ctx).Info("signing key made", "organization", org.Name, "kid", newest.KID, "activeFrom", newest.ActiveFrom)
		r.Recorder.Eventf(org, nil, corev1.EventTypeNormal, "KeyRotated", "Rotate",
			"new %s signing key %s, active from %s", newest.Algorithm, newest.KID, newest.ActiveFrom.Format(time.RFC3339))
	}

	org.Status.ID = record.Annotations[trust.AnnotationOrganizationID]
	org.Status.SigningKeySecret = record.Namespace + "/" + record.Name
	org.Status.Keys = keyStatus(set)
	org.Status.ActiveKeyID = ""
	if active, ok := set.Active(now); ok {
		org.Status.ActiveKeyID = active.KID
	}
	return ctrl.Result{RequeueAfter: max(next.Sub(now), time.Second)}, nil
}

func keyPolicy(org *tav1.Organization) signingkeys.Policy {
	return signingkeys.Policy{
		Algorithm:        string(org.Algorithm()),
		RotationInterval: org.RotationInterval(),
		AccessTokenTTL:   org.AccessTokenTTL(),
	}
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

// SetupWithManager registers the reconciler. Records in the system
// namespace map back to their owner, so a deleted record is re-made at
// once; a released slug claim wakes the Organizations waiting for it.
func (r *OrganizationReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Now == nil {
		r.Now = time.Now
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&tav1.Organization{}).
		Owns(&corev1.Secret{}). // pre-upgrade key Secrets
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.recordOwners(mgr.GetClient()))).
		Named("organization").
		Complete(r)
}

// recordOwners maps a record to its owner, and a slug claim also to every
// Organization with that slug.
func (r *OrganizationReconciler) recordOwners(c client.Client) handler.MapFunc {
	return func(ctx context.Context, obj client.Object) []ctrl.Request {
		sec, ok := obj.(*corev1.Secret)
		if !ok || sec.Namespace != r.SystemNamespace {
			return nil
		}
		switch sec.Labels[tav1.LabelComponent] {
		case trust.ComponentSigningKeys:
			if rec, err := trust.ParseOrgRecord(sec, r.SystemNamespace); err == nil {
				return []ctrl.Request{{NamespacedName: client.ObjectKey{Namespace: rec.Owner.Namespace, Name: rec.Owner.Name}}}
			}
		case trust.ComponentSlugClaim:
			slug := sec.Annotations[trust.AnnotationSlug]
			orgs := &tav1.OrganizationList{}
			if slug == "" || c.List(ctx, orgs, client.MatchingFields{SlugIndex: slug}) != nil {
				return nil
			}
			out := make([]ctrl.Request, 0, len(orgs.Items))
			for _, o := range orgs.Items {
				out = append(out, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(&o)})
			}
			return out
		}
		return nil
	}
}
