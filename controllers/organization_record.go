package controllers

import (
	"context"
	"crypto/rand"
	"fmt"
	"regexp"
	"strings"

	"github.com/oklog/ulid/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/internal/signingkeys"
	"github.com/tenantauth/tenantauth/internal/trust"
)

// reconcileRecord finds the Organization's record, or makes it. Creating
// the record claims the ID, so an ID another Organization holds is never
// shared, whatever a tenant writes into status.
func (r *OrganizationReconciler) reconcileRecord(ctx context.Context, s *orgScope) (ctrl.Result, error) {
	found, err := r.ownedRecords(ctx, trust.ComponentSigningKeys, trust.OwnerOf(s.org))
	if err != nil {
		return ctrl.Result{}, err
	}
	if len(found) > 0 {
		r.created.forget(s.org.UID)
		s.record = &found[0]
		return ctrl.Result{}, nil
	}
	// The cache may not hold a record made a moment ago: read it back
	// rather than minting a second ID.
	if s.record, err = r.created.find(ctx, r.APIReader, r.SystemNamespace, s.org.UID); err != nil || s.record != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, r.makeRecord(ctx, s)
}

// recordContent is what a new record starts with.
type recordContent struct {
	id   string
	keys []byte
	// moved is set when ID and keys came from a pre-upgrade Secret.
	moved bool
	// made is the first key, when one was made for the record.
	made *signingkeys.Entry
}

// makeRecord creates the record, or blocks the Organization when another
// one holds its ID.
func (r *OrganizationReconciler) makeRecord(ctx context.Context, s *orgScope) error {
	org := s.org
	content, err := r.newRecordContent(ctx, s)
	if err != nil {
		return err
	}
	record := trust.New(r.SystemNamespace, trust.SigningKeysName(content.id), trust.ComponentSigningKeys, trust.OwnerOf(org))
	record.Annotations[trust.AnnotationOrganizationID] = content.id
	record.Data = map[string][]byte{signingkeys.DataKey: content.keys}
	if err := r.Create(ctx, record); err != nil {
		if !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create record of organization %s: %w", org.Name, err)
		}
		existing := &corev1.Secret{}
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(record), existing); err != nil {
			return fmt.Errorf("get record of organization %s: %w", org.Name, err)
		}
		if rec, err := trust.ParseOrgRecord(existing, r.SystemNamespace); err == nil && rec.Owner.Owns(org) {
			s.record = existing
			return nil
		}
		s.block(tav1.ReasonSecretConflict,
			fmt.Sprintf("organization ID %s is claimed by another Organization; this one is not served", content.id))
		r.Recorder.Eventf(org, nil, corev1.EventTypeWarning, tav1.ReasonSecretConflict, "ClaimID",
			"organization ID %s is claimed by another Organization", content.id)
		return nil
	}
	r.created.remember(org.UID, record.Name)
	s.record = record
	if content.moved {
		r.Recorder.Eventf(org, nil, corev1.EventTypeNormal, "KeysMoved", "Upgrade",
			"signing keys moved to %s/%s", r.SystemNamespace, record.Name)
	} else if content.made != nil {
		r.keyMade(ctx, org, *content.made)
	}
	return nil
}

// newRecordContent picks the ID and keys of a new record: those of a
// pre-upgrade Secret in the Organization's namespace, else the ID status
// still shows after the record was deleted, else a new ID; and a first
// key unless the keys were moved.
func (r *OrganizationReconciler) newRecordContent(ctx context.Context, s *orgScope) (recordContent, error) {
	org := s.org
	id, keys, err := r.legacyKeys(ctx, org)
	if err != nil {
		return recordContent{}, err
	}
	c := recordContent{id: id, keys: keys, moved: id != ""}
	if c.id == "" {
		c.id = "org_" + strings.ToLower(ulid.MustNew(ulid.Timestamp(s.now), rand.Reader).String())
	}
	if c.keys == nil {
		// The first key goes into the create, so a new Organization costs
		// one write here rather than a create and an update.
		first, err := planRotation(&signingkeys.Set{}, keyPolicy(org), s.now)
		if err != nil {
			return recordContent{}, fmt.Errorf("make first key of %s: %w", org.Name, err)
		}
		if c.keys, err = first.set.Marshal(); err != nil {
			return recordContent{}, fmt.Errorf("encode keys of %s: %w", org.Name, err)
		}
		c.made = first.made
	}
	return c, nil
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
	if _, err := signingkeys.Parse(legacy.Data[signingkeys.DataKey]); err != nil || !orgIDPattern.MatchString(id) {
		return "", nil, nil
	}
	// Only Secrets a release before the records wrote: one planted after
	// the upgrade would import keys and an ID the tenant chose.
	since, err := r.recordsSince(ctx)
	if err != nil {
		return "", nil, err
	}
	if !legacy.CreationTimestamp.Before(&since) {
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

// recordsSinceName is a Secret in the system namespace whose creation
// marks when this operator started writing records; pre-upgrade Secrets
// are moved only when they are older.
const recordsSinceName = "tenantauth-records-since"

// recordsSince reads (making it on first use) the time records began.
func (r *OrganizationReconciler) recordsSince(ctx context.Context) (metav1.Time, error) {
	r.sinceMu.Lock()
	defer r.sinceMu.Unlock()
	if !r.since.IsZero() {
		return r.since, nil
	}
	marker := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: r.SystemNamespace, Name: recordsSinceName,
		Labels: map[string]string{tav1.LabelManagedBy: tav1.ManagedByValue, tav1.LabelComponent: "records-since"}}}
	if err := r.Create(ctx, marker); err != nil && !apierrors.IsAlreadyExists(err) {
		return metav1.Time{}, fmt.Errorf("mark when records began: %w", err)
	}
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(marker), marker); err != nil {
		return metav1.Time{}, fmt.Errorf("read when records began: %w", err)
	}
	r.since = marker.CreationTimestamp
	return r.since, nil
}

var orgIDPattern = regexp.MustCompile(`^org_[0-9a-z]{26}$`)

// deleteLegacyKeys removes the pre-upgrade Secret once the record holds
// the keys, so no private key stays in a tenant namespace.
func (r *OrganizationReconciler) deleteLegacyKeys(ctx context.Context, s *orgScope) (ctrl.Result, error) {
	org := s.org
	legacy := &corev1.Secret{}
	err := r.Get(ctx, client.ObjectKey{Namespace: org.Namespace, Name: org.LegacySigningKeySecretName()}, legacy)
	if apierrors.IsNotFound(err) || (err == nil && !metav1.IsControlledBy(legacy, org)) {
		return ctrl.Result{}, nil
	}
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("get pre-upgrade keys of organization %s: %w", org.Name, err)
	}
	if err := r.Delete(ctx, legacy, client.Preconditions{UID: &legacy.UID}); client.IgnoreNotFound(err) != nil {
		return ctrl.Result{}, fmt.Errorf("delete pre-upgrade keys of organization %s: %w", org.Name, err)
	}
	return ctrl.Result{}, nil
}
