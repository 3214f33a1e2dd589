package controllers

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
)

// setReady sets the Ready condition. meta.SetStatusCondition keeps
// LastTransitionTime when the status does not change, so a steady state
// produces an identical status and no write.
func setReady(conds *[]metav1.Condition, generation int64, ok bool, reason, message string) {
	status := metav1.ConditionFalse
	if ok {
		status = metav1.ConditionTrue
	}
	meta.SetStatusCondition(conds, metav1.Condition{
		Type:               tav1.ConditionReady,
		Status:             status,
		ObservedGeneration: generation,
		Reason:             reason,
		Message:            message,
	})
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
