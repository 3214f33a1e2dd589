package controllers

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
)

// condition is a Ready condition a reconcile earned: what its phases left
// on the scope, turned into status by the deferred patch.
type condition struct {
	ready           bool
	reason, message string
	// once, when set, is announced as an event when Ready turns to reason.
	once *announcement
}

// announcement is an event to record for a condition.
type announcement struct {
	eventType, reason, action, note string
}

// setReady sets the Ready condition. meta.SetStatusCondition keeps
// LastTransitionTime when the status does not change, so a steady state
// produces an identical status and no write.
func setReady(conds *[]metav1.Condition, generation int64, c *condition) {
	status := metav1.ConditionFalse
	if c.ready {
		status = metav1.ConditionTrue
	}
	meta.SetStatusCondition(conds, metav1.Condition{
		Type:               tav1.ConditionReady,
		Status:             status,
		ObservedGeneration: generation,
		Reason:             c.reason,
		Message:            c.message,
	})
}

// announce records c's event when the Ready condition before the
// reconcile had another reason, so a state a human was told about once is
// not repeated on every resync.
func announce(rec events.EventRecorder, obj runtime.Object, before []metav1.Condition, c *condition) {
	if c.once == nil {
		return
	}
	if old := findReady(before); old != nil && old.Reason == c.reason {
		return
	}
	rec.Eventf(obj, nil, c.once.eventType, c.once.reason, c.once.action, "%s", c.once.note)
}

// patchStatus writes obj's status when it differs from before. Skipping
// equal statuses is what makes a steady-state reconcile write nothing.
func patchStatus(ctx context.Context, c client.Client, orig, obj client.Object, before, after any) error {
	if equality.Semantic.DeepEqual(before, after) {
		return nil
	}
	if err := c.Status().Patch(ctx, obj, client.MergeFrom(orig)); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("patch status of %s/%s: %w", obj.GetNamespace(), obj.GetName(), err)
	}
	return nil
}

func findReady(conds []metav1.Condition) *metav1.Condition {
	return meta.FindStatusCondition(conds, tav1.ConditionReady)
}
