package controllers

import (
	"context"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/internal/domains"
	"github.com/tenantauth/tenantauth/internal/trust"
)

const domainWait = 15 * time.Second

var domainCounter int

// newDomain is a domain no other test uses.
func newDomain(prefix string) string {
	domainCounter++
	return fmt.Sprintf("%s-%d.test", prefix, domainCounter)
}

func orgWithDomains(ns, name string, names ...string) *tav1.Organization {
	org := newOrg(ns, name)
	for _, n := range names {
		org.Spec.Domains = append(org.Spec.Domains, tav1.Domain{Name: n})
	}
	return org
}

// domainStatus is the status entry of name once the operator wrote it.
func domainStatus(g Gomega, org *tav1.Organization, name string) tav1.DomainStatus {
	g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(org), org)).To(Succeed())
	for _, d := range org.Status.Domains {
		if d.Name == name {
			return d
		}
	}
	g.Expect(org.Status.Domains).To(ContainElement(HaveField("Name", name)))
	return tav1.DomainStatus{}
}

func domainsCond(g Gomega, org *tav1.Organization) *metav1.Condition {
	g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(org), org)).To(Succeed())
	c := meta.FindStatusCondition(org.Status.Conditions, tav1.ConditionDomainsVerified)
	g.Expect(c).NotTo(BeNil())
	return c
}

// claimOwner is the owner of the domain's claim, or nil when there is none.
func claimOwner(g Gomega, domain string) *trust.Owner {
	sec := &corev1.Secret{}
	err := k8s.Get(context.Background(), client.ObjectKey{Namespace: systemNS, Name: trust.DomainClaimName(domain)}, sec)
	if apierrors.IsNotFound(err) {
		return nil
	}
	g.Expect(err).NotTo(HaveOccurred())
	c, err := trust.ParseDomainClaim(sec, systemNS)
	g.Expect(err).NotTo(HaveOccurred())
	return &c.Owner
}

// TestDomainVerification walks one domain through its life: pending, the
// TXT record set, verified and claimed; contested by a second tenant who
// can even get its own token into the record, and who forges its status;
// the record removed (unverified, released, and handed to the tenant
// waiting for it); the domain dropped from spec.
func TestDomainVerification(t *testing.T) {
	startManager(t)
	g := NewWithT(t)
	ctx := context.Background()
	domain := newDomain("acme")
	challenge := domains.ChallengeName(domain)

	a := orgWithDomains(newNamespace(t), "domains-a", domain)
	g.Expect(k8s.Create(ctx, a)).To(Succeed())
	var tokenA string
	g.Eventually(func(g Gomega) {
		d := domainStatus(g, a, domain)
		g.Expect(d.Verified).To(BeFalse())
		g.Expect(d.VerifiedAt).To(BeNil())
		tokenA = d.VerificationToken
		g.Expect(domainsCond(g, a).Reason).To(Equal(tav1.ReasonDomainsPending))
	}).WithTimeout(domainWait).Should(Succeed())
	g.Expect(tokenA).To(Equal(domains.Token(testKey, string(a.UID), domain)), "the token is derived, not taken from status")
	g.Expect(claimOwner(g, domain)).To(BeNil())

	t.Run("a record with another value verifies nothing", func(t *testing.T) {
		g := NewWithT(t)
		dnsSrv.SetTXT(challenge, "google-site-verification=xyz", "not-the-token")
		g.Consistently(func(g Gomega) {
			g.Expect(domainStatus(g, a, domain).Verified).To(BeFalse())
		}).WithTimeout(2 * time.Second).Should(Succeed())
		g.Expect(claimOwner(g, domain)).To(BeNil())
	})

	t.Run("the token in the TXT record verifies and claims the domain", func(t *testing.T) {
		g := NewWithT(t)
		dnsSrv.SetTXT(challenge, "google-site-verification=xyz", tokenA)
		g.Eventually(func(g Gomega) {
			d := domainStatus(g, a, domain)
			g.Expect(d.Verified).To(BeTrue())
			g.Expect(d.VerifiedAt).NotTo(BeNil())
			g.Expect(domainsCond(g, a).Status).To(Equal(metav1.ConditionTrue))
		}).WithTimeout(domainWait).Should(Succeed())
		g.Expect(claimOwner(g, domain)).To(HaveValue(Equal(trust.OwnerOf(a))))
	})

	b := orgWithDomains(newNamespace(t), "domains-b", domain)
	t.Run("a second organization listing the domain is not verified, even with its own token in the record", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(k8s.Create(ctx, b)).To(Succeed())
		g.Eventually(func(g Gomega) {
			d := domainStatus(g, b, domain)
			g.Expect(d.VerificationToken).NotTo(BeEmpty())
			g.Expect(d.VerificationToken).NotTo(Equal(tokenA))
			g.Expect(d.Verified).To(BeFalse())
		}).WithTimeout(domainWait).Should(Succeed())
		// Grant the attacker more than it could get: its token in the
		// victim's record too.
		dnsSrv.SetTXT(challenge, tokenA, domainStatus(g, b, domain).VerificationToken)
		g.Eventually(func(g Gomega) {
			g.Expect(domainsCond(g, b).Reason).To(Equal(tav1.ReasonDomainClaimed))
		}).WithTimeout(domainWait).Should(Succeed())
		g.Consistently(func(g Gomega) {
			g.Expect(domainStatus(g, b, domain).Verified).To(BeFalse())
			g.Expect(domainStatus(g, a, domain).Verified).To(BeTrue())
			g.Expect(claimOwner(g, domain)).To(HaveValue(Equal(trust.OwnerOf(a))), "the first organization keeps the domain")
		}).WithTimeout(3 * time.Second).Should(Succeed())
	})

	t.Run("a forged status proves nothing and is overwritten", func(t *testing.T) {
		g := NewWithT(t)
		now := metav1.Now()
		g.Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error { // the DNS re-checks write it meanwhile
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(b), b); err != nil {
				return err
			}
			b.Status.Domains = []tav1.DomainStatus{{Name: domain, VerificationToken: tokenA, Verified: true, VerifiedAt: &now}}
			return k8s.Status().Update(ctx, b)
		})).To(Succeed())
		g.Eventually(func(g Gomega) {
			g.Expect(domainStatus(g, b, domain).Verified).To(BeFalse())
		}).WithTimeout(domainWait).Should(Succeed())
		g.Expect(claimOwner(g, domain)).To(HaveValue(Equal(trust.OwnerOf(a))))
	})

	t.Run("a lookup that fails keeps a verified domain", func(t *testing.T) {
		g := NewWithT(t)
		dnsSrv.SetFailing(challenge, true)
		g.Eventually(func(g Gomega) {
			g.Expect(domainsCond(g, a).Reason).To(Equal(tav1.ReasonDNSLookupFailed))
		}).WithTimeout(domainWait).Should(Succeed())
		g.Expect(domainStatus(g, a, domain).Verified).To(BeTrue())
		g.Expect(claimOwner(g, domain)).To(HaveValue(Equal(trust.OwnerOf(a))))
		dnsSrv.SetFailing(challenge, false)
		g.Eventually(func(g Gomega) {
			g.Expect(domainsCond(g, a).Status).To(Equal(metav1.ConditionTrue))
		}).WithTimeout(domainWait).Should(Succeed())
	})

	t.Run("the record removed: the re-check unverifies and releases, and the waiting organization takes it", func(t *testing.T) {
		g := NewWithT(t)
		dnsSrv.SetTXT(challenge, domainStatus(g, b, domain).VerificationToken)
		g.Eventually(func(g Gomega) {
			g.Expect(domainStatus(g, a, domain).Verified).To(BeFalse())
			g.Expect(domainStatus(g, a, domain).VerifiedAt).To(BeNil())
			g.Expect(domainStatus(g, b, domain).Verified).To(BeTrue())
			g.Expect(claimOwner(g, domain)).To(HaveValue(Equal(trust.OwnerOf(b))))
		}).WithTimeout(domainWait).Should(Succeed())
	})

	t.Run("a domain dropped from spec is released", func(t *testing.T) {
		g := NewWithT(t)
		g.Eventually(func() error { // the controller writes status meanwhile
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(b), b); err != nil {
				return err
			}
			b.Spec.Domains = nil
			return k8s.Update(ctx, b)
		}).WithTimeout(15 * time.Second).Should(Succeed())
		g.Eventually(func(g Gomega) {
			g.Expect(claimOwner(g, domain)).To(BeNil())
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(b), b)).To(Succeed())
			g.Expect(b.Status.Domains).To(BeEmpty())
			g.Expect(meta.FindStatusCondition(b.Status.Conditions, tav1.ConditionDomainsVerified)).To(BeNil())
		}).WithTimeout(domainWait).Should(Succeed())
	})
}

// TestDomainClaimsEndWithTheOrganization: deleting the Organization
// releases its domains, and a claim left by an Organization that went
// without its finalizer is freed for the next one that proves the domain.
func TestDomainClaimsEndWithTheOrganization(t *testing.T) {
	startManager(t)
	g := NewWithT(t)
	ctx := context.Background()
	domain := newDomain("gone")
	org := orgWithDomains(newNamespace(t), "domains-gone", domain)
	g.Expect(k8s.Create(ctx, org)).To(Succeed())
	g.Eventually(func(g Gomega) {
		dnsSrv.SetTXT(domains.ChallengeName(domain), domainStatus(g, org, domain).VerificationToken)
		g.Expect(domainStatus(g, org, domain).Verified).To(BeTrue())
	}).WithTimeout(domainWait).Should(Succeed())
	g.Expect(k8s.Delete(ctx, org)).To(Succeed())
	g.Eventually(func(g Gomega) { g.Expect(claimOwner(g, domain)).To(BeNil()) }).WithTimeout(domainWait).Should(Succeed())

	stale := newDomain("stale")
	ghost := trust.New(systemNS, trust.DomainClaimName(stale), trust.ComponentDomainClaim,
		trust.Owner{Namespace: "nowhere", Name: "ghost", UID: "0000-ghost"})
	ghost.Annotations[trust.AnnotationDomain] = stale
	g.Expect(k8s.Create(ctx, ghost)).To(Succeed())
	next := orgWithDomains(newNamespace(t), "domains-next", stale)
	g.Expect(k8s.Create(ctx, next)).To(Succeed())
	g.Eventually(func(g Gomega) {
		dnsSrv.SetTXT(domains.ChallengeName(stale), domainStatus(g, next, stale).VerificationToken)
		g.Expect(domainStatus(g, next, stale).Verified).To(BeTrue())
		g.Expect(claimOwner(g, stale)).To(HaveValue(Equal(trust.OwnerOf(next))))
	}).WithTimeout(domainWait).Should(Succeed())
}

// TestPublicMailDomainsAreNeverClaimed plays a tenant that lists
// gmail.com where no webhook stopped it and even gets its token into the
// record: the domain is refused and nothing is claimed.
func TestPublicMailDomainsAreNeverClaimed(t *testing.T) {
	startManager(t)
	g := NewWithT(t)
	ctx := context.Background()
	org := orgWithDomains(newNamespace(t), "domains-freemail", "gmail.com")
	g.Expect(k8s.Create(ctx, org)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(domainsCond(g, org).Reason).To(Equal(tav1.ReasonPublicMailDomain))
	}).WithTimeout(domainWait).Should(Succeed())
	dnsSrv.SetTXT(domains.ChallengeName("gmail.com"), domains.Token(testKey, string(org.UID), "gmail.com"))
	g.Consistently(func(g Gomega) {
		g.Expect(domainStatus(g, org, "gmail.com").Verified).To(BeFalse())
		g.Expect(claimOwner(g, "gmail.com")).To(BeNil())
	}).WithTimeout(2 * time.Second).Should(Succeed())
	g.Expect(dnsSrv.Queries(domains.ChallengeName("gmail.com"))).To(BeZero(), "a public mail domain is not even looked up")
}

// TestUnverifiedSignupDomainsAreReported: allowedEmailDomains that are
// not verified for the organization (admitted before this rule, or by a
// cluster admin) show on DomainsVerified, which says they admit nobody
// (the auth server checks the claim, too).
func TestUnverifiedSignupDomainsAreReported(t *testing.T) {
	startManager(t)
	g := NewWithT(t)
	ctx := context.Background()
	org := newOrg(newNamespace(t), "domains-legacy")
	org.Spec.SelfSignup.AllowedEmailDomains = []string{"legacy.test"}
	g.Expect(k8s.Create(ctx, org)).To(Succeed())
	g.Eventually(func(g Gomega) {
		c := domainsCond(g, org)
		g.Expect(c.Reason).To(Equal(tav1.ReasonUnverifiedSignupDomain))
		g.Expect(c.Message).To(ContainSubstring("lists legacy.test, not verified for this organization: nobody signs up through them"))
	}).WithTimeout(domainWait).Should(Succeed())
}
