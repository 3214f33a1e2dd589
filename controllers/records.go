package controllers

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
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

// createdRecords remembers the record this process created for each owner
// UID, until the cache shows it. A reconcile that runs before the cache
// has caught up with that create reads the record back by name instead of
// making a second one (the expectations of Kubernetes' own controllers).
// A new process starts from a cache synced after any earlier create, so
// it needs none.
type createdRecords struct{ m sync.Map }

func (c *createdRecords) remember(owner types.UID, name string) { c.m.Store(owner, name) }

func (c *createdRecords) forget(owner types.UID) { c.m.Delete(owner) }

// find reads the record remembered for owner live by name, or returns nil
// when there is none to wait for.
func (c *createdRecords) find(ctx context.Context, r client.Reader, namespace string, owner types.UID) (*corev1.Secret, error) {
	name, ok := c.m.Load(owner)
	if !ok {
		return nil, nil
	}
	sec := &corev1.Secret{}
	err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name.(string)}, sec)
	if apierrors.IsNotFound(err) {
		c.forget(owner) // deleted since: make it again
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get record %s: %w", name, err)
	}
	return sec, nil
}
