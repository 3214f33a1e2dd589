package hostile

import (
	"testing"

	. "github.com/onsi/gomega"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
)

// TestForgedStatus: eve writes acme's organization ID into her
// Organization's status and acme-ci's key ID into her APIKey's status.
// Nothing is served by status: her key still belongs to evil only, acme's
// key still answers for acme's ID, and the operator writes both statuses
// back from the records.
//
// Old behaviour it catches: the auth server took the organization ID and
// the key ID from status, and the directory let the last writer win, so
// her key passed /verify?org=<acme id> and both organizations shared the
// ID.
func TestForgedStatus(t *testing.T) {
	g := newG(t)
	ctx := world.ctx
	g.Expect(verifyKey(world.evilKey, "org="+world.acmeID)).To(Equal(403), "before the attack")

	org := &tav1.Organization{}
	g.Expect(world.eve.Get(ctx, client.ObjectKeyFromObject(world.evilOrg), org)).To(Succeed())
	patch := client.MergeFrom(org.DeepCopy())
	org.Status.ID = world.acmeID
	g.Expect(world.eve.Status().Patch(ctx, org, patch)).To(Succeed(), "eve may write her status")
	key := &tav1.APIKey{}
	g.Expect(world.eve.Get(ctx, client.ObjectKey{Namespace: evilNS, Name: "evil-ci"}, key)).To(Succeed())
	keyPatch := client.MergeFrom(key.DeepCopy())
	key.Status.KeyID = world.acmeKeyID
	g.Expect(world.eve.Status().Patch(ctx, key, keyPatch)).To(Succeed())

	// The operator puts status back to what the records say.
	g.Eventually(func(g Gomega) {
		g.Expect(world.admin.Get(ctx, client.ObjectKeyFromObject(org), org)).To(Succeed())
		g.Expect(org.Status.ID).To(Equal(world.evilID))
		g.Expect(world.admin.Get(ctx, client.ObjectKeyFromObject(key), key)).To(Succeed())
		g.Expect(key.Status.KeyID).To(Equal(world.evilKeyID))
	}).Should(Succeed())

	// Meanwhile and after, nothing changed at /verify.
	g.Consistently(func(g Gomega) {
		g.Expect(verifyKey(world.evilKey, "org="+world.acmeID)).To(BeElementOf(401, 403), "eve's key for acme's ID")
		g.Expect(verifyKey(world.evilKey, "org=acme")).To(BeElementOf(401, 403), "eve's key for acme's slug")
		g.Expect(verifyKey(world.evilKey, "org="+world.evilID)).To(Equal(200), "eve's key for her own org")
		g.Expect(verifyJWT(world.eveJWT, "org="+world.acmeID)).To(Equal(403), "eve's token for acme's ID")
		victimWorks(g)
	}).Should(Succeed())
	acme := &tav1.Organization{}
	g.Expect(world.admin.Get(ctx, client.ObjectKeyFromObject(world.acmeOrg), acme)).To(Succeed())
	g.Expect(acme.Status.ID).To(Equal(world.acmeID), "acme keeps its ID")
}

// TestSlugTaken: with no webhook to stop her, eve creates an Organization
// with acme's slug, and a Membership making herself its owner. The first
// claim wins: hers is Ready=False SlugConflict with an event, never served,
// and she cannot sign in to "acme".
//
// Old behaviour it catches: the directory mapped a slug to whichever
// Organization it saw last, so the copy took acme's JWKS, issuer and
// logins.
func TestSlugTaken(t *testing.T) {
	g := newG(t)
	ctx := world.ctx
	kidsBefore := jwksKids("acme")
	g.Expect(kidsBefore).NotTo(BeEmpty())

	clone := &tav1.Organization{ObjectMeta: metav1.ObjectMeta{Namespace: evilNS, Name: "acme-clone"},
		Spec: tav1.OrganizationSpec{Slug: "acme", DisplayName: "Acme"}}
	g.Expect(world.eve.Create(ctx, clone)).To(Succeed())
	t.Cleanup(func() { _ = world.admin.Delete(ctx, clone) })
	m := &tav1.Membership{ObjectMeta: metav1.ObjectMeta{Namespace: evilNS, Name: "eve-in-clone"},
		Spec: tav1.MembershipSpec{Organization: clone.Name, Email: eveEmail, Role: tav1.RoleOwner}}
	g.Expect(world.eve.Create(ctx, m)).To(Succeed())
	t.Cleanup(func() { _ = world.admin.Delete(ctx, m) })

	g.Eventually(func() string {
		_ = world.admin.Get(ctx, client.ObjectKeyFromObject(clone), clone)
		return readyReason(clone.Status.Conditions)
	}).Should(Equal("False/" + tav1.ReasonSlugConflict))
	g.Eventually(func() bool {
		events := &eventsv1.EventList{}
		if world.admin.List(ctx, events, client.InNamespace(evilNS)) != nil {
			return false
		}
		for _, e := range events.Items {
			if e.Regarding.Name == clone.Name && e.Reason == tav1.ReasonSlugConflict && e.Type == "Warning" {
				return true
			}
		}
		return false
	}).Should(BeTrue(), "a SlugConflict event on the loser")

	g.Consistently(func(g Gomega) {
		g.Expect(jwksKids("acme")).To(ConsistOf(kidsBefore), "acme's JWKS")
		victimWorks(g)
	}).Should(Succeed())
	// Sign-ins count failures per account, so this is asked once, after
	// the window in which a served copy would have shown.
	code, body := loginAt(world.publicURL, eveEmail, "acme")
	g.Expect(code).To(BeElementOf(401, 403, 404), "eve signs in to acme: %v", body)

	// Giving up the copy releases nothing of acme's.
	g.Expect(world.admin.Delete(ctx, clone)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(world.admin.Get(ctx, client.ObjectKeyFromObject(clone), clone))
	}).Should(BeTrue(), "the copy is gone (its finalizer ran)")
	g.Consistently(func(g Gomega) {
		g.Expect(jwksKids("acme")).To(ConsistOf(kidsBefore), "acme's JWKS")
		victimWorks(g)
	}).Should(Succeed())
}

// TestSystemNamespaceNotServed: an Organization in the system namespace
// (where the webhooks never look) is never served: Ready=False
// ReservedNamespace, no JWKS, no sign-in.
//
// Old behaviour it catches: the webhooks skip the release namespace, so an
// Organization there skipped the slug check and was served like any other.
func TestSystemNamespaceNotServed(t *testing.T) {
	g := newG(t)
	ctx := world.ctx
	org := &tav1.Organization{ObjectMeta: metav1.ObjectMeta{Namespace: systemNS, Name: "sysorg"}}
	g.Expect(world.admin.Create(ctx, org)).To(Succeed())
	t.Cleanup(func() { _ = world.admin.Delete(ctx, org) })
	m := &tav1.Membership{ObjectMeta: metav1.ObjectMeta{Namespace: systemNS, Name: "eve"},
		Spec: tav1.MembershipSpec{Organization: org.Name, Email: eveEmail, Role: tav1.RoleOwner}}
	g.Expect(world.admin.Create(ctx, m)).To(Succeed())
	t.Cleanup(func() { _ = world.admin.Delete(ctx, m) })

	g.Eventually(func() string {
		_ = world.admin.Get(ctx, client.ObjectKeyFromObject(org), org)
		return readyReason(org.Status.Conditions)
	}).Should(Equal("False/" + tav1.ReasonReservedNamespace))
	g.Consistently(func(g Gomega) {
		g.Expect(jwksKids("sysorg")).To(BeNil(), "no JWKS for sysorg")
		victimWorks(g)
	}).Should(Succeed())
	code, body := loginAt(world.publicURL, eveEmail, "sysorg")
	g.Expect(code).To(BeElementOf(401, 403, 404), "sign-in to sysorg: %v", body)
}
