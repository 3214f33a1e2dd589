package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/internal/trust"
)

// ensureFinalizer adds the cleanup finalizer, so the records in the system
// namespace are removed before the object goes.
func ensureFinalizer(ctx context.Context, c client.Client, obj client.Object) error {
	if !controllerutil.AddFinalizer(obj, tav1.Finalizer) {
		return nil
	}
	if err := c.Update(ctx, obj); err != nil {
		return fmt.Errorf("add finalizer to %s/%s: %w", obj.GetNamespace(), obj.GetName(), err)
	}
	return nil
}

// listOwnedRecords lists the records of component in namespace that name
// owner. The UID label narrows the list; the owner is checked in full.
func listOwnedRecords(ctx context.Context, r client.Reader, namespace, component string, owner trust.Owner) ([]corev1.Secret, error) {
	list := &corev1.SecretList{}
	if err := r.List(ctx, list, client.InNamespace(namespace),
		client.MatchingLabels{tav1.LabelComponent: component, trust.LabelOwnerUID: string(owner.UID)}); err != nil {
		return nil, fmt.Errorf("list %s records of %s: %w", component, owner.Ref(), err)
	}
	out := list.Items[:0]
	for _, s := range list.Items {
		if s.Annotations[trust.AnnotationOwnerNamespace] == owner.Namespace && s.Annotations[trust.AnnotationOwnerName] == owner.Name {
			out = append(out, s)
		}
	}
	return out, nil
}
