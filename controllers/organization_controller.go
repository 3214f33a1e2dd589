package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/internal/domains"
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
	// InstallationKey keys the domain verification tokens; see package
	// domains.
	InstallationKey []byte
	// Resolver looks up the domains' TXT challenges; nil is the system
	// resolver.
	Resolver domains.Resolver
	// DomainRecheckInterval and DomainRetryInterval space the TXT lookups
	// of verified and of pending domains; zero takes the defaults.
	DomainRecheckInterval time.Duration
	DomainRetryInterval   time.Duration

	created createdRecords
	sinceMu sync.Mutex
	since   metav1.Time // see recordsSince
}

// orgScope is what one reconcile of an Organization knows. Each phase
// fills in what the later ones need.
type orgScope struct {
	org *tav1.Organization
	// now is the reconcile's one clock reading, so every phase plans
	// against the same instant.
	now time.Time
	// record is the Organization's record in the system namespace: its ID
	// and signing keys.
	record *corev1.Secret
	// keys is the key set read from record; plan is what it becomes.
	keys *signingkeys.Set
	plan keyPlan
	// domains is what reconcileDomains found; nil when it did not run.
	domains *domainsOutcome
	outcome
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
	s := &orgScope{org: org, now: r.Now()}
	defer func() { retErr = errors.Join(retErr, r.writeStatus(ctx, orig, s, retErr == nil)) }()
	return runPhases(ctx, s,
		r.checkNamespace,
		r.ensureFinalizer,
		r.reconcileRecord,
		r.loadKeys,
		r.planKeys,
		r.applyKeys,
		r.mirrorKeys,
		r.deleteLegacyKeys,
		r.claimSlug,
		r.reconcileDomains,
	)
}

// writeStatus is the deferred end of every reconcile: it turns what the
// phases found into Ready, announces a new state once, and writes status
// when it changed. observedGeneration moves only when every phase ran.
func (r *OrganizationReconciler) writeStatus(ctx context.Context, orig *tav1.Organization, s *orgScope, complete bool) error {
	org := s.org
	if complete {
		org.Status.ObservedGeneration = org.Generation
	}
	if c := s.readiness(complete, fmt.Sprintf("active signing key %s", org.Status.ActiveKeyID)); c != nil {
		setReady(&org.Status.Conditions, org.Generation, c)
		announce(r.Recorder, org, orig.Status.Conditions, c)
	}
	if s.domains != nil {
		r.writeDomains(org, orig.Status.Conditions, s.domains)
	}
	return patchStatus(ctx, r.Client, orig, org, orig.Status, org.Status)
}

// checkNamespace refuses Organizations in the system namespace before
// anything is written for them, a finalizer included.
func (r *OrganizationReconciler) checkNamespace(_ context.Context, s *orgScope) (ctrl.Result, error) {
	if s.org.Namespace == r.SystemNamespace {
		s.block(tav1.ReasonReservedNamespace,
			"tenant objects in the system namespace "+r.SystemNamespace+" are never served; create the Organization in a tenant namespace")
	}
	return ctrl.Result{}, nil
}

func (r *OrganizationReconciler) ensureFinalizer(ctx context.Context, s *orgScope) (ctrl.Result, error) {
	return ctrl.Result{}, ensureFinalizer(ctx, r.Client, s.org)
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
	domainClaims, err := r.ownedRecords(ctx, trust.ComponentDomainClaim, owner)
	if err != nil {
		return err
	}
	for _, s := range slices.Concat(records, claims, domainClaims) {
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

// claimSlug claims the slug, first come first served. The loser is not
// served and says so; it is woken when the claim is released.
func (r *OrganizationReconciler) claimSlug(ctx context.Context, s *orgScope) (ctrl.Result, error) {
	org := s.org
	slug := org.EffectiveSlug()
	claim := trust.New(r.SystemNamespace, trust.SlugClaimName(slug), trust.ComponentSlugClaim, trust.OwnerOf(org))
	claim.Annotations[trust.AnnotationSlug] = slug
	existing := &corev1.Secret{}
	err := r.Get(ctx, client.ObjectKeyFromObject(claim), existing)
	if apierrors.IsNotFound(err) {
		if err = r.Create(ctx, claim); err == nil {
			return ctrl.Result{}, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return ctrl.Result{}, fmt.Errorf("claim slug %q for organization %s: %w", slug, org.Name, err)
		}
		err = r.APIReader.Get(ctx, client.ObjectKeyFromObject(claim), existing)
	}
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("get claim of slug %q: %w", slug, err)
	}
	if c, err := trust.ParseSlugClaim(existing, r.SystemNamespace); err == nil && c.Owner.Owns(org) {
		return ctrl.Result{}, nil
	}
	// The loser is reconciled again on every change of the claim; the
	// warning is for the moment it lost, not for each of those.
	s.blockOnce(tav1.ReasonSlugConflict,
		fmt.Sprintf("slug %q is taken by another Organization; this one is not served. Choose another slug", slug),
		announcement{corev1.EventTypeWarning, tav1.ReasonSlugConflict, "ClaimSlug",
			fmt.Sprintf("slug %q is taken by another Organization", slug)})
	return ctrl.Result{}, nil
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

// recordOwners maps a record to its owner, and a slug or domain claim also
// to every Organization with that slug or domain.
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
			return orgsBy(ctx, c, SlugIndex, sec.Annotations[trust.AnnotationSlug])
		case trust.ComponentDomainClaim:
			// Every Organization listing the domain: its owner re-checks
			// a deleted claim, the others may take a released one.
			return orgsBy(ctx, c, DomainIndex, sec.Annotations[trust.AnnotationDomain])
		}
		return nil
	}
}

// orgsBy lists the Organizations whose index field holds value.
func orgsBy(ctx context.Context, c client.Client, index, value string) []ctrl.Request {
	orgs := &tav1.OrganizationList{}
	if value == "" || c.List(ctx, orgs, client.MatchingFields{index: value}) != nil {
		return nil
	}
	out := make([]ctrl.Request, 0, len(orgs.Items))
	for _, o := range orgs.Items {
		out = append(out, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(&o)})
	}
	return out
}
