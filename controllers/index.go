package controllers

import (
	"context"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
)

// OrganizationIndex indexes Memberships, APIKeys and SSOConnections by
// spec.organization.
const OrganizationIndex = "spec.organization"

// SlugIndex indexes Organizations by effective slug, so a released slug
// claim wakes the Organizations waiting for it.
const SlugIndex = "spec.slug"

// DomainIndex indexes Organizations by the names in spec.domains, so a
// released domain claim wakes the Organizations waiting for it.
const DomainIndex = "spec.domains"

// SetupIndexes registers the field indexes the reconcilers use.
func SetupIndexes(ctx context.Context, mgr manager.Manager) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &tav1.Organization{}, SlugIndex, func(o client.Object) []string {
		return []string{o.(*tav1.Organization).EffectiveSlug()}
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &tav1.Organization{}, DomainIndex, func(o client.Object) []string {
		var names []string
		for _, d := range o.(*tav1.Organization).Spec.Domains {
			names = append(names, d.Name)
		}
		return names
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &tav1.Membership{}, OrganizationIndex, func(o client.Object) []string {
		return []string{o.(*tav1.Membership).Spec.Organization}
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &tav1.APIKey{}, OrganizationIndex, func(o client.Object) []string {
		return []string{o.(*tav1.APIKey).Spec.Organization}
	}); err != nil {
		return err
	}
	return idx.IndexField(ctx, &tav1.SSOConnection{}, OrganizationIndex, func(o client.Object) []string {
		return []string{o.(*tav1.SSOConnection).Spec.Organization}
	})
}

// referrers maps an Organization to the objects of list's kind in its
// namespace that name it.
func referrers(c client.Client, list client.ObjectList) func(context.Context, client.Object) []reconcile.Request {
	return func(ctx context.Context, org client.Object) []reconcile.Request {
		l := list.DeepCopyObject().(client.ObjectList)
		if err := c.List(ctx, l, client.InNamespace(org.GetNamespace()), client.MatchingFields{OrganizationIndex: org.GetName()}); err != nil {
			return nil
		}
		var out []reconcile.Request
		_ = meta.EachListItem(l, func(o runtime.Object) error {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(o.(client.Object))})
			return nil
		})
		return out
	}
}
