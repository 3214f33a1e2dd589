package webhook

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenantauthv1alpha1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/internal/trust"
)

// claimDomain makes the operator's claim of domain for org, as the
// Organization controller does once the TXT record holds org's token.
func claimDomain(t *testing.T, o *tenantauthv1alpha1.Organization, domain string) {
	t.Helper()
	if err := admin.Get(testCtx, client.ObjectKeyFromObject(o), o); err != nil {
		t.Fatal(err)
	}
	claim := trust.New(systemNS, trust.DomainClaimName(domain), trust.ComponentDomainClaim, trust.OwnerOf(o))
	claim.Annotations[trust.AnnotationDomain] = domain
	mustCreate(t, admin, claim)
}

func allowDomains(ds ...string) func(*tenantauthv1alpha1.Organization) {
	return func(o *tenantauthv1alpha1.Organization) { o.Spec.SelfSignup.AllowedEmailDomains = ds }
}

func withDomains(ds ...string) func(*tenantauthv1alpha1.Organization) {
	return func(o *tenantauthv1alpha1.Organization) {
		o.Spec.Domains = nil
		for _, d := range ds {
			o.Spec.Domains = append(o.Spec.Domains, tenantauthv1alpha1.Domain{Name: d})
		}
	}
}

// TestSignupDomainsMustBeVerifiedForTheSameOrganization plays tenant B,
// owner of its organization, who wants self-signup from tenant A's
// verified domain: listing it in spec.domains gets B nothing, forging
// status.domains gets B nothing, and A keeps using it.
func TestSignupDomainsMustBeVerifiedForTheSameOrganization(t *testing.T) {
	victim, attacker := newTeam(t), newTeam(t)
	domain := victim.ns + "-corp.test"
	vOrg, aOrg := org(victim.ns, victim.org), org(attacker.ns, attacker.org)
	mustUpdate(t, victim.as(t, "owner"), vOrg, withDomains(domain))
	claimDomain(t, vOrg, domain)
	eve := attacker.as(t, "owner")
	field := "spec.selfSignup.allowedEmailDomains[0]"

	t.Run("the owner of the verified domain may admit self-signup from it", func(t *testing.T) {
		check(t, update(victim.as(t, "admin"), vOrg, allowDomains(domain)), allowed)
	})
	t.Run("another organization may not, though it lists the domain", func(t *testing.T) {
		check(t, update(eve, aOrg, withDomains(domain)), allowed)
		waitCached(t, aOrg)
		check(t, update(eve, aOrg, allowDomains(domain)), invalidField(field, "not verified for this Organization"))
	})
	t.Run("a forged status.domains proves nothing", func(t *testing.T) {
		now := metav1.Now()
		if err := admin.Get(testCtx, client.ObjectKeyFromObject(aOrg), aOrg); err != nil {
			t.Fatal(err)
		}
		aOrg.Status.Domains = []tenantauthv1alpha1.DomainStatus{{Name: domain, VerificationToken: "x", Verified: true, VerifiedAt: &now}}
		if err := eve.Status().Update(testCtx, aOrg); err != nil {
			t.Fatalf("a tenant may write its status (RBAC lets it): %v", err)
		}
		waitCached(t, aOrg)
		check(t, update(eve, aOrg, allowDomains(domain)), invalidField(field, "not verified"))
	})
	t.Run("a claim planted under another name or for another UID proves nothing", func(t *testing.T) {
		planted := trust.New(systemNS, trust.DomainClaimName(attacker.ns+"-x.test"), trust.ComponentDomainClaim,
			trust.Owner{Namespace: aOrg.Namespace, Name: aOrg.Name, UID: types.UID("not-the-uid")})
		planted.Annotations[trust.AnnotationDomain] = attacker.ns + "-x.test"
		mustCreate(t, admin, planted)
		check(t, update(eve, aOrg, allowDomains(attacker.ns+"-x.test")), invalidField(field, "not verified"))
	})
	t.Run("a new Organization may not start with an unverified signup domain", func(t *testing.T) {
		ns := newNamespace(t)
		check(t, as(t, "eve@"+ns+".test").Create(testCtx, org(ns, ns+"-new", allowDomains(domain))), invalidField(field, "not verified"))
	})
	t.Run("a cluster admin passes, and an entry an update keeps is not checked again", func(t *testing.T) {
		ns := newNamespace(t)
		legacy := org(ns, ns+"-legacy", allowDomains(ns+".test"))
		mustCreate(t, admin, legacy)
		mustCreate(t, admin, membership(ns, "owner", legacy.Name, "owner@"+ns+".test", "owner"))
		owner := as(t, "owner@"+ns+".test")
		check(t, update(owner, legacy, func(o *tenantauthv1alpha1.Organization) { o.Spec.DisplayName = "Legacy Inc." }), allowed)
		check(t, update(owner, legacy, allowDomains(ns+".test", "other-"+ns+".test")), invalidField("spec.selfSignup.allowedEmailDomains[1]", "not verified"))
	})
	t.Run("the victim keeps its domain", func(t *testing.T) {
		check(t, update(victim.as(t, "owner"), vOrg, func(o *tenantauthv1alpha1.Organization) { o.Spec.DisplayName = "Still ours" }), allowed)
	})
}

// TestPublicMailDomainsAreRefused: nobody, a cluster admin included, may
// list a public mail domain as the organization's own.
func TestPublicMailDomainsAreRefused(t *testing.T) {
	tm := newTeam(t)
	o := org(tm.ns, tm.org)
	for _, d := range []string{"gmail.com", "outlook.com", "gmx.de", "yahoo.co.uk", "eu.proton.me"} {
		t.Run(d, func(t *testing.T) {
			check(t, update(tm.as(t, "owner"), o, withDomains("acme-"+tm.ns+".test", d)),
				invalidField("spec.domains[1].name", "public mail domain"))
			check(t, update(admin, o, withDomains(d)), invalidField("spec.domains[0].name", "public mail domain"))
		})
	}
	check(t, update(tm.as(t, "owner"), o, allowDomains("gmail.com")), invalidField("spec.selfSignup.allowedEmailDomains[0]", "public mail domain"))
	// The schema refuses it before the webhook sees it.
	check(t, update(tm.as(t, "owner"), o, withDomains("Acme.com")), outcome{contains: []string{"spec.domains[0].name"}})
	check(t, update(tm.as(t, "owner"), o, withDomains("acme-"+tm.ns+".test")), allowed)
}
