package webhook

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenantauthv1alpha1 "github.com/tenantauth/tenantauth/api/v1alpha1"
)

// lookup answers the questions admission asks about other objects. Objects
// it returns come straight from the informer cache without a deep copy:
// callers must not modify them.
type lookup struct {
	// cache is the manager's informer cache, indexed by setupIndexes.
	cache client.Reader
	// live reads from the API server. It is used only where the cache's lag
	// would wrongly deny a common request, and on rare deletions.
	live client.Reader
	// systemNamespace holds the operator's records: domain claims.
	systemNamespace string
}

// organization returns the named Organization, or nil when it does not
// exist. A cache miss is confirmed with one live Get: `kubectl apply` of an
// Organization and its Memberships in one file sends them milliseconds
// apart, before the informer has seen the Organization.
func (l *lookup) organization(ctx context.Context, namespace, name string) (*tenantauthv1alpha1.Organization, error) {
	org := &tenantauthv1alpha1.Organization{}
	key := client.ObjectKey{Namespace: namespace, Name: name}
	err := l.cache.Get(ctx, key, org, client.UnsafeDisableDeepCopy)
	if err == nil {
		return org, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("read Organization %s from cache: %w", key, err)
	}
	if err := l.live.Get(ctx, key, org); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("get Organization %s: %w", key, err)
	}
	return org, nil
}

// memberships lists the Memberships of one namespace whose index field
// equals value, leaving out those already being deleted: a Membership
// waiting on a finalizer is on its way out, so it neither grants a role,
// nor counts as an owner or a remaining member, nor blocks a new
// Membership for the same email.
func (l *lookup) memberships(ctx context.Context, namespace, field, value string) ([]tenantauthv1alpha1.Membership, error) {
	var list tenantauthv1alpha1.MembershipList
	if err := l.cache.List(ctx, &list, client.InNamespace(namespace),
		client.MatchingFields{field: value}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("list Memberships by %s: %w", field, err)
	}
	return slices.DeleteFunc(list.Items, beingDeleted), nil
}

func beingDeleted(m tenantauthv1alpha1.Membership) bool { return m.DeletionTimestamp != nil }

// membershipOf returns the Membership of email in the organization, or nil.
func (l *lookup) membershipOf(ctx context.Context, namespace, org, email string) (*tenantauthv1alpha1.Membership, error) {
	items, err := l.memberships(ctx, namespace, IndexOrgEmail, orgEmailKey(org, email))
	if err != nil || len(items) == 0 {
		return nil, err
	}
	return &items[0], nil
}

// owners returns the owner Memberships of the organization.
func (l *lookup) owners(ctx context.Context, namespace, org string) ([]tenantauthv1alpha1.Membership, error) {
	return l.memberships(ctx, namespace, IndexOrgRole, orgRoleKey(org, tenantauthv1alpha1.RoleOwner))
}

// dependents counts the Memberships and APIKeys that refer to the
// organization.
func (l *lookup) dependents(ctx context.Context, namespace, org string) (memberships, apiKeys int, err error) {
	ms, err := l.memberships(ctx, namespace, IndexOrganization, org)
	if err != nil {
		return 0, 0, err
	}
	var keys tenantauthv1alpha1.APIKeyList
	if err := l.cache.List(ctx, &keys, client.InNamespace(namespace),
		client.MatchingFields{IndexOrganization: org}, client.UnsafeDisableDeepCopy); err != nil {
		return 0, 0, fmt.Errorf("list APIKeys by %s: %w", IndexOrganization, err)
	}
	n := 0
	for i := range keys.Items {
		if keys.Items[i].DeletionTimestamp == nil {
			n++
		}
	}
	return len(ms), n, nil
}

// organizationsWithSlug lists the Organizations of every namespace whose
// effective slug is slug.
func (l *lookup) organizationsWithSlug(ctx context.Context, slug string) ([]tenantauthv1alpha1.Organization, error) {
	var list tenantauthv1alpha1.OrganizationList
	if err := l.cache.List(ctx, &list, client.MatchingFields{IndexSlug: slug}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("list Organizations by %s: %w", IndexSlug, err)
	}
	return list.Items, nil
}

// namespaceTerminating reports whether the namespace is being deleted. The
// namespace controller then deletes every object in it, in no particular
// order and as a user that holds no Membership; rules that protect a live
// organization must not block that, or the namespace never goes away.
// It costs a live Get, so callers ask only before denying a deletion.
func (l *lookup) namespaceTerminating(ctx context.Context, name string) bool {
	ns := &corev1.Namespace{}
	if err := l.live.Get(ctx, client.ObjectKey{Name: name}, ns); err != nil {
		return false
	}
	return ns.DeletionTimestamp != nil || ns.Status.Phase == corev1.NamespaceTerminating
}
