package controllers

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/internal/trust"
)

// TestSlugClaimFirstComeFirstServed plays a tenant who creates an
// Organization with another tenant's slug where admission did not stop it
// (a race, or no webhook): the later one is SlugConflict and the winner
// keeps its claim; when the winner goes, the waiting one takes the slug.
func TestSlugClaimFirstComeFirstServed(t *testing.T) {
	startManager(t)
	g := NewWithT(t)
	ctx := context.Background()
	winner := newOrg(newNamespace(t), "first")
	winner.Spec.Slug = "contested"
	g.Expect(k8s.Create(ctx, winner)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(readyOf(g, winner, &winner.Status.Conditions).Status).To(Equal(metav1.ConditionTrue))
	}).WithTimeout(10 * time.Second).Should(Succeed())

	loser := newOrg(newNamespace(t), "second")
	loser.Spec.Slug = "contested"
	g.Expect(k8s.Create(ctx, loser)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(readyOf(g, loser, &loser.Status.Conditions).Reason).To(Equal(tav1.ReasonSlugConflict))
	}).WithTimeout(10 * time.Second).Should(Succeed())
	claim := &corev1.Secret{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: systemNS, Name: trust.SlugClaimName("contested")}, claim)).To(Succeed())
	c, err := trust.ParseSlugClaim(claim, systemNS)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(c.Owner.Owns(winner)).To(BeTrue(), "the first Organization keeps the slug")
	g.Consistently(func(g Gomega) {
		g.Expect(readyOf(g, winner, &winner.Status.Conditions).Status).To(Equal(metav1.ConditionTrue))
	}).WithTimeout(time.Second).Should(Succeed())

	g.Expect(k8s.Delete(ctx, winner)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(readyOf(g, loser, &loser.Status.Conditions).Status).To(Equal(metav1.ConditionTrue))
	}).WithTimeout(15*time.Second).Should(Succeed(), "a released slug goes to the Organization waiting for it")
}

// TestForgedStatusIsOverwritten plays a tenant who writes another
// organization's ID into its Organization's status and another key's ID
// into its APIKey's status: the operator puts its own records back.
func TestForgedStatusIsOverwritten(t *testing.T) {
	startManager(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	org := newOrg(ns, "forger")
	g.Expect(k8s.Create(ctx, org)).To(Succeed())
	key := &tav1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "k"}, Spec: tav1.APIKeySpec{Organization: "forger"}}
	g.Expect(k8s.Create(ctx, key)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(readyOf(g, org, &org.Status.Conditions).Status).To(Equal(metav1.ConditionTrue))
		g.Expect(readyOf(g, key, &key.Status.Conditions).Status).To(Equal(metav1.ConditionTrue))
	}).WithTimeout(10 * time.Second).Should(Succeed())
	realID, realKeyID := org.Status.ID, key.Status.KeyID

	// The operator may write either meanwhile: forge on a fresh read.
	g.Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(org), org); err != nil {
			return err
		}
		org.Status.ID = "org_01jzvictim0000000000000000"
		return k8s.Status().Update(ctx, org)
	})).To(Succeed())
	g.Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(key), key); err != nil {
			return err
		}
		key.Status.KeyID = "victimkeyid0"
		return k8s.Status().Update(ctx, key)
	})).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(org), org)).To(Succeed())
		g.Expect(org.Status.ID).To(Equal(realID))
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(key), key)).To(Succeed())
		g.Expect(key.Status.KeyID).To(Equal(realKeyID))
	}).WithTimeout(10 * time.Second).Should(Succeed())
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: systemNS, Name: trust.SigningKeysName("org_01jzvictim0000000000000000")}, &corev1.Secret{})).
		NotTo(Succeed(), "no record is made for a forged ID")
}

// TestFirstReconcileWrites counts the API writes one new Organization and
// one new APIKey cost, so the price of the claims is known.
func TestFirstReconcileWrites(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	org := newOrg(ns, "counted")
	g.Expect(k8s.Create(ctx, org)).To(Succeed())
	key := &tav1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "k"}, Spec: tav1.APIKeySpec{Organization: "counted"}}
	g.Expect(k8s.Create(ctx, key)).To(Succeed())
	writes := 0
	c := writeCounter(withWatch(t), &writes)
	orgR := &OrganizationReconciler{Client: c, APIReader: k8s, Recorder: nopRecorder{}, Now: time.Now, SystemNamespace: systemNS}
	_, err := orgR.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(org)})
	g.Expect(err).NotTo(HaveOccurred())
	// finalizer, record (ID and keys), slug claim, status
	g.Expect(writes).To(Equal(4), "writes of a new Organization")
	writes = 0
	keyR := &APIKeyReconciler{Client: c, APIReader: k8s, Recorder: nopRecorder{}, Now: time.Now, SystemNamespace: systemNS}
	_, err = keyR.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(key)})
	g.Expect(err).NotTo(HaveOccurred())
	// finalizer, plaintext Secret, record, status
	g.Expect(writes).To(Equal(4), "writes of a new APIKey")
}
