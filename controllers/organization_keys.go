package controllers

import (
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/internal/signingkeys"
	"github.com/tenantauth/tenantauth/internal/trust"
)

// The signing keys are kept in four phases: load reads the record, plan
// decides what the set becomes, apply writes it in one Update and mirror
// shows it in status. The record is the source of truth: a crash after
// its write and before the status patch converges on the next run, with
// neither a lost nor a second key.

// keyPlan is what a key set becomes at one instant under one policy.
type keyPlan struct {
	// set is the set to keep. The set the plan was made from is left as
	// it was.
	set *signingkeys.Set
	// changed says set differs from the input and must be written.
	changed bool
	// made is the key this plan made, if it made one.
	made *signingkeys.Entry
	// wake is how long until the set next needs attention (a published
	// key activating, a retired key going, the next rotation); never less
	// than a second, so a clock at the exact instant cannot spin.
	wake time.Duration
}

// planRotation plans the keys at now: it prunes retired keys and makes a
// new one when there is none, when the newest is older than the rotation
// interval, or when the algorithm changed. It depends on nothing but its
// arguments (and the randomness of a new key), so every case of the
// schedule is tested without a cluster.
func planRotation(current *signingkeys.Set, p signingkeys.Policy, now time.Time) (keyPlan, error) {
	// Rotate edits the set in place; plan on a copy of the entries.
	set := &signingkeys.Set{Entries: slices.Clone(current.Entries)}
	before, hadKey := set.Newest()
	changed, next, err := set.Rotate(p, now)
	if err != nil {
		return keyPlan{}, err
	}
	plan := keyPlan{set: set, changed: changed, wake: max(next.Sub(now), time.Second)}
	if newest, _ := set.Newest(); changed && (!hadKey || newest.KID != before.KID) {
		plan.made = &newest
	}
	return plan, nil
}

// loadKeys reads the key set from the record.
func (r *OrganizationReconciler) loadKeys(_ context.Context, s *orgScope) (ctrl.Result, error) {
	set, err := signingkeys.Parse(s.record.Data[signingkeys.DataKey])
	if err != nil {
		// A corrupt set is not repaired by starting over: that would drop
		// keys that still verify live tokens. A human must look.
		s.block(tav1.ReasonKeyGenerationFailed,
			fmt.Sprintf("Secret %s/%s holds an unreadable key set: %v", s.record.Namespace, s.record.Name, err))
		return ctrl.Result{}, nil
	}
	s.keys = set
	return ctrl.Result{}, nil
}

// planKeys plans the set and asks to be woken when it next changes.
func (r *OrganizationReconciler) planKeys(_ context.Context, s *orgScope) (ctrl.Result, error) {
	plan, err := planRotation(s.keys, keyPolicy(s.org), s.now)
	if err != nil {
		s.block(tav1.ReasonKeyGenerationFailed, err.Error())
		return ctrl.Result{}, fmt.Errorf("rotate keys of %s: %w", s.org.Name, err)
	}
	s.plan = plan
	return ctrl.Result{RequeueAfter: plan.wake}, nil
}

// applyKeys writes a changed plan to the record, in one Update.
func (r *OrganizationReconciler) applyKeys(ctx context.Context, s *orgScope) (ctrl.Result, error) {
	if !s.plan.changed {
		return ctrl.Result{}, nil
	}
	data, err := s.plan.set.Marshal()
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("encode keys of %s: %w", s.org.Name, err)
	}
	desired := s.record.DeepCopy()
	desired.Data = map[string][]byte{signingkeys.DataKey: data}
	if !equality.Semantic.DeepEqual(s.record.Data, desired.Data) {
		// Update carries the resourceVersion: a concurrent writer makes
		// this fail instead of silently replacing its keys.
		if err := r.Update(ctx, desired); err != nil {
			return ctrl.Result{}, fmt.Errorf("update signing keys of %s: %w", s.org.Name, err)
		}
		s.record = desired
	}
	if s.plan.made != nil {
		r.keyMade(ctx, s.org, *s.plan.made)
	}
	return ctrl.Result{}, nil
}

// mirrorKeys shows the record in status. Status is only a copy: nothing
// reads it back as the truth.
func (r *OrganizationReconciler) mirrorKeys(_ context.Context, s *orgScope) (ctrl.Result, error) {
	st := &s.org.Status
	st.ID = s.record.Annotations[trust.AnnotationOrganizationID]
	st.SigningKeySecret = s.record.Namespace + "/" + s.record.Name
	st.Keys = keyStatus(s.plan.set)
	st.ActiveKeyID = ""
	if active, ok := s.plan.set.Active(s.now); ok {
		st.ActiveKeyID = active.KID
	}
	return ctrl.Result{}, nil
}

// keyMade tells a human a new key exists, and when it starts to sign.
func (r *OrganizationReconciler) keyMade(ctx context.Context, org *tav1.Organization, e signingkeys.Entry) {
	log.FromContext(ctx).Info("signing key made", "organization", org.Name, "kid", e.KID, "activeFrom", e.ActiveFrom)
	r.Recorder.Eventf(org, nil, corev1.EventTypeNormal, "KeyRotated", "Rotate",
		"new %s signing key %s, active from %s", e.Algorithm, e.KID, e.ActiveFrom.UTC().Format(time.RFC3339))
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
