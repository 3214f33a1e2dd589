package webhook

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	tenantauthv1alpha1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/internal/domains"
	"github.com/tenantauth/tenantauth/internal/trust"
)

// Email domains of an Organization:
//
//   - spec.domains may not list a public mail domain (gmail.com,
//     outlook.com, ...; see package domains): nobody owns those for an
//     organization, and verifying one would hand its every user to a
//     tenant.
//   - selfSignup.allowedEmailDomains admits only domains verified for that
//     same Organization. Verified means the operator's claim of the domain
//     in the system namespace names this Organization by UID; status, which
//     a tenant may write, is never read. Otherwise any organization could
//     send convincing sign-up mails to another company's people.
//
// Entries an update keeps are not checked again, so an Organization
// admitted before this rule (or whose domain lost its verification since)
// can still be edited; the operator reports them on DomainsVerified.
// Cluster admins and the operator pass with a warning: they may write the
// claims themselves anyway. Either way such an entry admits nobody: the
// auth server, too, signs up only through domains verified for the
// organization.

// validateDomainNames checks spec.domains without other objects.
func validateDomainNames(org *tenantauthv1alpha1.Organization) field.ErrorList {
	var errs field.ErrorList
	for i, d := range org.Spec.Domains {
		p := field.NewPath("spec", "domains").Index(i).Child("name")
		if err := domains.ValidName(d.Name); err != nil {
			errs = append(errs, field.Invalid(p, d.Name, err.Error()))
		} else if domains.IsPublicMail(d.Name) {
			errs = append(errs, field.Forbidden(p, fmt.Sprintf(
				"%s is a public mail domain: anyone may have an address there, so no organization may claim it; list your company's own domain", d.Name)))
		}
	}
	return errs
}

// signupDomainName is an allowedEmailDomains entry as the auth server
// reads it: any case, an optional leading "@".
func signupDomainName(d string) string {
	return strings.ToLower(strings.TrimPrefix(strings.TrimSpace(d), "@"))
}

// checkSignupDomains refuses allowedEmailDomains entries that old (nil on
// create) did not have and that are not verified for org.
func (v *OrganizationValidator) checkSignupDomains(ctx context.Context, act actor, old, org *tenantauthv1alpha1.Organization) (field.ErrorList, admission.Warnings, error) {
	var kept []string
	if old != nil {
		for _, d := range old.Spec.SelfSignup.AllowedEmailDomains {
			kept = append(kept, signupDomainName(d))
		}
	}
	var errs field.ErrorList
	var warnings admission.Warnings
	for i, raw := range org.Spec.SelfSignup.AllowedEmailDomains {
		d := signupDomainName(raw)
		if slices.Contains(kept, d) {
			continue
		}
		ok, err := v.lookup.domainVerifiedFor(ctx, org, d)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			continue
		}
		if act.bypass {
			warnings = append(warnings, fmt.Sprintf("spec.selfSignup.allowedEmailDomains[%d]: %s is not verified for this Organization; admitted because you bypass admission, but nobody signs up through it until it is verified", i, d))
			continue
		}
		p := field.NewPath("spec", "selfSignup", "allowedEmailDomains").Index(i)
		msg := fmt.Sprintf("%s is not verified for this Organization: list it in spec.domains, publish its status.domains[].verificationToken as the TXT record %s, and add it here once status.domains[].verified is true",
			d, domains.ChallengeName(d))
		if domains.IsPublicMail(d) {
			msg = fmt.Sprintf("%s is a public mail domain: it can never be verified for an organization", d)
		}
		errs = append(errs, field.Forbidden(p, msg))
	}
	return errs, warnings, nil
}

// domainVerifiedFor reports whether the operator's claim of domain names
// org. A cache miss is confirmed live: the claim may be a moment old.
func (l *lookup) domainVerifiedFor(ctx context.Context, org *tenantauthv1alpha1.Organization, domain string) (bool, error) {
	if l.systemNamespace == "" || org.UID == "" || domains.ValidName(domain) != nil {
		return false, nil
	}
	key := client.ObjectKey{Namespace: l.systemNamespace, Name: trust.DomainClaimName(domain)}
	sec := &corev1.Secret{}
	err := l.cache.Get(ctx, key, sec)
	if apierrors.IsNotFound(err) {
		err = l.live.Get(ctx, key, sec)
	}
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read claim of domain %s: %w", domain, err)
	}
	c, err := trust.ParseDomainClaim(sec, l.systemNamespace)
	return err == nil && c.Owner.Owns(org), nil
}
