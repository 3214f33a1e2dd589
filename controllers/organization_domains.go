package controllers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/internal/domains"
	"github.com/tenantauth/tenantauth/internal/trust"
)

// Default intervals of the domain checks.
const (
	// DefaultDomainRecheckInterval is how often a verified domain's TXT
	// record is looked up again: a domain whose record is gone is
	// unverified and its claim released.
	DefaultDomainRecheckInterval = time.Hour
	// DefaultDomainRetryInterval is how often a domain not verified yet
	// (or whose lookup failed) is looked up again.
	DefaultDomainRetryInterval = time.Minute
)

// domainResult is what one reconcile found out about one of spec.domains.
type domainResult struct {
	name     string
	token    string
	verified bool
	// since is when the claim was made: the domain's verifiedAt.
	since *metav1.Time
	// reason and problem say why an unverified domain is not, or what is
	// wrong with a verified one (a failed lookup); empty when all is well.
	reason, problem string
	// next is when to look again.
	next time.Duration
}

// domainsOutcome is what reconcileDomains leaves for the deferred status
// patch.
type domainsOutcome struct {
	results []domainResult
	// unverifiedSignup lists allowedEmailDomains that are not verified
	// for this organization.
	unverifiedSignup []string
}

// reconcileDomains verifies each of spec.domains through its TXT
// challenge, claims the verified ones for this Organization (first come,
// first served) and releases the claims of domains that left spec or
// whose record is gone. The claims in the system namespace are the only
// truth: status mirrors them and is never read back.
func (r *OrganizationReconciler) reconcileDomains(ctx context.Context, s *orgScope) (ctrl.Result, error) {
	org := s.org
	owned, err := r.ownedRecords(ctx, trust.ComponentDomainClaim, trust.OwnerOf(org))
	if err != nil {
		return ctrl.Result{}, err
	}
	claims := map[string]*corev1.Secret{}
	for i := range owned {
		if c, err := trust.ParseDomainClaim(&owned[i], r.SystemNamespace); err == nil {
			claims[c.Domain] = &owned[i]
		}
	}
	out := &domainsOutcome{}
	var res ctrl.Result
	for _, d := range org.Spec.Domains {
		dr, err := r.verifyDomain(ctx, org, d.Name, claims[d.Name])
		if err != nil {
			return ctrl.Result{}, err
		}
		delete(claims, d.Name)
		out.results = append(out.results, dr)
		res = mergeResults(res, ctrl.Result{RequeueAfter: dr.next})
	}
	for name, claim := range claims { // no longer in spec
		if err := r.releaseDomain(ctx, org, claim, "DomainReleased", fmt.Sprintf("domain %s left spec.domains; its claim is released", name)); err != nil {
			return ctrl.Result{}, err
		}
	}
	for _, d := range org.Spec.SelfSignup.AllowedEmailDomains {
		d = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(d), "@"))
		if !slices.ContainsFunc(out.results, func(dr domainResult) bool { return dr.name == d && dr.verified }) {
			out.unverifiedSignup = append(out.unverifiedSignup, d)
		}
	}
	s.domains = out
	return res, nil
}

// verifyDomain checks one domain; ours is this Organization's claim of
// it, nil when it holds none.
func (r *OrganizationReconciler) verifyDomain(ctx context.Context, org *tav1.Organization, name string, ours *corev1.Secret) (domainResult, error) {
	if len(r.InstallationKey) == 0 {
		return domainResult{}, errors.New("no installation key: domain verification tokens cannot be made")
	}
	dr := domainResult{name: name, token: domains.Token(r.InstallationKey, string(org.UID), name), next: r.retryInterval()}
	if err := domains.ValidName(name); err != nil || domains.IsPublicMail(name) {
		dr.reason, dr.problem, dr.next = tav1.ReasonPublicMailDomain, "a public mail domain, which no organization may claim", 0
		if err != nil {
			dr.reason, dr.problem = tav1.ReasonDomainsPending, "not a domain name: "+err.Error()
		}
		if ours != nil {
			return dr, r.releaseDomain(ctx, org, ours, "DomainReleased", fmt.Sprintf("domain %s may not be claimed; its claim is released", name))
		}
		return dr, nil
	}
	found, err := domains.Check(ctx, r.resolver(), name, dr.token)
	switch {
	case err != nil:
		// The DNS did not answer: that proves nothing either way, so a
		// verified domain keeps its claim until a lookup answers.
		logf.FromContext(ctx).Info("domain lookup failed; retrying", "domain", name, "error", err.Error())
		dr.reason, dr.problem = tav1.ReasonDNSLookupFailed, "the TXT lookup failed: "+err.Error()
		if ours != nil {
			dr.verified, dr.since = true, &ours.CreationTimestamp
		}
		return dr, nil
	case found == domains.Missing:
		dr.reason, dr.problem = tav1.ReasonDomainsPending,
			fmt.Sprintf("TXT record %s does not hold the verification token", domains.ChallengeName(name))
		if ours != nil {
			return dr, r.releaseDomain(ctx, org, ours, "DomainUnverified",
				fmt.Sprintf("TXT record %s no longer holds the verification token; domain %s is unverified and its claim released",
					domains.ChallengeName(name), name))
		}
		return dr, nil
	}
	dr.next = r.recheckInterval()
	if ours != nil {
		dr.verified, dr.since = true, &ours.CreationTimestamp
		return dr, nil
	}
	return r.claimDomain(ctx, org, dr)
}

// claimDomain claims a domain whose TXT record holds this Organization's
// token, first come first served: a domain another live Organization
// claimed stays its own.
func (r *OrganizationReconciler) claimDomain(ctx context.Context, org *tav1.Organization, dr domainResult) (domainResult, error) {
	claim := trust.New(r.SystemNamespace, trust.DomainClaimName(dr.name), trust.ComponentDomainClaim, trust.OwnerOf(org))
	claim.Annotations[trust.AnnotationDomain] = dr.name
	err := r.Create(ctx, claim)
	if err == nil {
		r.Recorder.Eventf(org, nil, corev1.EventTypeNormal, "DomainVerified", "ClaimDomain",
			"domain %s is verified for this organization", dr.name)
		dr.verified, dr.since = true, &claim.CreationTimestamp
		return dr, nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return dr, fmt.Errorf("claim domain %s for organization %s: %w", dr.name, org.Name, err)
	}
	existing := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(claim), existing); apierrors.IsNotFound(err) {
		dr.reason, dr.problem, dr.next = tav1.ReasonDomainsPending, "its claim was just released; claiming it next", time.Second
		return dr, nil
	} else if err != nil {
		return dr, fmt.Errorf("get claim of domain %s: %w", dr.name, err)
	}
	c, err := trust.ParseDomainClaim(existing, r.SystemNamespace)
	if err == nil && c.Owner.Owns(org) {
		dr.verified, dr.since = true, &existing.CreationTimestamp
		return dr, nil
	}
	if err == nil {
		stale, err := r.ownerGone(ctx, c.Owner)
		if err != nil {
			return dr, err
		}
		if stale {
			// Its Organization went without its finalizer running: free
			// the domain; the deletion wakes this Organization to claim it.
			if err := r.Delete(ctx, existing, client.Preconditions{UID: &existing.UID}); client.IgnoreNotFound(err) != nil {
				return dr, fmt.Errorf("delete stale claim of domain %s: %w", dr.name, err)
			}
			dr.reason, dr.problem, dr.next = tav1.ReasonDomainsPending, "a stale claim was released; claiming it next", time.Second
			return dr, nil
		}
	}
	dr.reason, dr.problem = tav1.ReasonDomainClaimed, "verified by another Organization first, which keeps it"
	return dr, nil
}

// ownerGone reports whether the Organization a claim names no longer
// exists (or is another object of the same name), read live: freeing a
// domain on a lagging cache would hand it to another tenant.
func (r *OrganizationReconciler) ownerGone(ctx context.Context, owner trust.Owner) (bool, error) {
	o := &tav1.Organization{}
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: owner.Namespace, Name: owner.Name}, o)
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("get owner %s of a domain claim: %w", owner.Ref(), err)
	}
	return !owner.Owns(o), nil
}

// releaseDomain deletes this Organization's claim of a domain and says so.
func (r *OrganizationReconciler) releaseDomain(ctx context.Context, org *tav1.Organization, claim *corev1.Secret, reason, note string) error {
	if err := r.Delete(ctx, claim, client.Preconditions{UID: &claim.UID}); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("release %s of organization %s: %w", claim.Name, org.Name, err)
	}
	r.Recorder.Eventf(org, nil, corev1.EventTypeWarning, reason, "ReleaseDomain", "%s", note)
	return nil
}

func (r *OrganizationReconciler) resolver() domains.Resolver {
	if r.Resolver == nil {
		return net.DefaultResolver
	}
	return r.Resolver
}

func (r *OrganizationReconciler) recheckInterval() time.Duration {
	if r.DomainRecheckInterval > 0 {
		return r.DomainRecheckInterval
	}
	return DefaultDomainRecheckInterval
}

func (r *OrganizationReconciler) retryInterval() time.Duration {
	if r.DomainRetryInterval > 0 {
		return r.DomainRetryInterval
	}
	return DefaultDomainRetryInterval
}

// writeDomains mirrors what reconcileDomains found into status.domains and
// the DomainsVerified condition, and announces a new problem once.
func (r *OrganizationReconciler) writeDomains(org *tav1.Organization, before []metav1.Condition, out *domainsOutcome) {
	org.Status.Domains = nil
	for _, dr := range out.results {
		org.Status.Domains = append(org.Status.Domains, tav1.DomainStatus{
			Name: dr.name, VerificationToken: dr.token, Verified: dr.verified, VerifiedAt: dr.since,
		})
	}
	if len(out.results) == 0 && len(out.unverifiedSignup) == 0 {
		meta.RemoveStatusCondition(&org.Status.Conditions, tav1.ConditionDomainsVerified)
		return
	}
	c := domainsCondition(out)
	c.ObservedGeneration = org.Generation
	old := meta.FindStatusCondition(before, tav1.ConditionDomainsVerified)
	meta.SetStatusCondition(&org.Status.Conditions, c)
	if c.Status == metav1.ConditionFalse && c.Reason != tav1.ReasonDomainsPending &&
		(old == nil || old.Reason != c.Reason || old.Message != c.Message) {
		r.Recorder.Eventf(org, nil, corev1.EventTypeWarning, c.Reason, "VerifyDomains", "%s", c.Message)
	}
}

// reasonWeight orders the reasons of unverified domains: the condition
// carries the one a human must act on first.
var reasonWeight = map[string]int{
	tav1.ReasonDomainClaimed: 5, tav1.ReasonPublicMailDomain: 4, tav1.ReasonUnverifiedSignupDomain: 3,
	tav1.ReasonDNSLookupFailed: 2, tav1.ReasonDomainsPending: 1,
}

// domainsCondition is the DomainsVerified condition of out: True when
// every domain is verified and every allowed signup domain among them.
func domainsCondition(out *domainsOutcome) metav1.Condition {
	var verified, problems []string
	reason := ""
	for _, dr := range out.results {
		if dr.verified && dr.problem == "" {
			verified = append(verified, dr.name)
			continue
		}
		problems = append(problems, dr.name+": "+dr.problem)
		if reasonWeight[dr.reason] > reasonWeight[reason] {
			reason = dr.reason
		}
	}
	if len(out.unverifiedSignup) > 0 {
		problems = append(problems, fmt.Sprintf("selfSignup.allowedEmailDomains lists %s, not verified for this organization: nobody signs up through them until they are",
			strings.Join(out.unverifiedSignup, ", ")))
		if reasonWeight[tav1.ReasonUnverifiedSignupDomain] > reasonWeight[reason] {
			reason = tav1.ReasonUnverifiedSignupDomain
		}
	}
	if len(problems) == 0 {
		return metav1.Condition{Type: tav1.ConditionDomainsVerified, Status: metav1.ConditionTrue,
			Reason: tav1.ReasonDomainsVerified, Message: "verified: " + strings.Join(verified, ", ")}
	}
	return metav1.Condition{Type: tav1.ConditionDomainsVerified, Status: metav1.ConditionFalse,
		Reason: reason, Message: strings.Join(problems, "; ")}
}
