package controllers

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/internal/apikey"
	"github.com/tenantauth/tenantauth/internal/identity"
	"github.com/tenantauth/tenantauth/internal/trust"
)

func readyOf(g Gomega, obj client.Object, conds *[]metav1.Condition) *metav1.Condition {
	g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)).To(Succeed())
	c := findReady(*conds)
	g.Expect(c).NotTo(BeNil(), "no Ready condition yet")
	return c
}

func TestAPIKeyLifecycle(t *testing.T) {
	startManager(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)

	key := &tav1.APIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ci"},
		Spec:       tav1.APIKeySpec{Organization: "acme", Scopes: []tav1.APIKeyScope{tav1.ScopeRead, tav1.ScopeWrite}},
	}
	g.Expect(k8s.Create(ctx, key)).To(Succeed())
	g.Expect(key.Spec.Environment).To(Equal(tav1.EnvironmentLive), "the CRD defaults the environment")

	t.Run("waits for its Organization", func(t *testing.T) {
		g := NewWithT(t)
		g.Eventually(func(g Gomega) {
			g.Expect(readyOf(g, key, &key.Status.Conditions).Reason).To(Equal(tav1.ReasonOrganizationNotFound))
		}).WithTimeout(10 * time.Second).Should(Succeed())
		g.Expect(key.Status.KeyID).To(BeEmpty(), "no key before the Organization exists")
	})

	var plaintext string
	t.Run("issued once the Organization appears", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(k8s.Create(ctx, newOrg(ns, "acme"))).To(Succeed())
		g.Eventually(func(g Gomega) {
			g.Expect(readyOf(g, key, &key.Status.Conditions).Status).To(Equal(metav1.ConditionTrue))
		}).WithTimeout(10 * time.Second).Should(Succeed())

		var s corev1.Secret
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "ci"}, &s)).To(Succeed())
		plaintext = string(s.Data[tav1.APIKeyDataKey])
		parsed, err := apikey.Parse(plaintext)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(plaintext).To(HavePrefix("osk_live_"))
		g.Expect(parsed.ID).To(Equal(key.Status.KeyID))
		g.Expect(key.Status.DisplayPrefix).To(Equal(parsed.DisplayPrefix()))
		g.Expect(metav1.IsControlledBy(&s, key)).To(BeTrue())

		var h corev1.Secret
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: systemNS, Name: trust.APIKeyRecordName(parsed.ID)}, &h)).To(Succeed())
		g.Expect(parsed.Matches(string(h.Data[tav1.APIKeyHashDataKey]))).To(BeTrue())
		g.Expect(h.Labels).To(HaveKeyWithValue(tav1.LabelComponent, trust.ComponentAPIKeyRecord))
		g.Expect(h.Labels).To(HaveKeyWithValue(trust.LabelOwnerUID, string(key.UID)))
		g.Expect(apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: tav1.APIKeyHashSecretName(parsed.ID)}, &corev1.Secret{}))).
			To(BeTrue(), "no hash in the tenant namespace")
		for _, v := range h.Data {
			g.Expect(string(v)).NotTo(ContainSubstring(plaintext[9:]), "the hash Secret never holds the key")
		}
	})

	t.Run("the plaintext is never in status, annotations or events", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(key), key)).To(Succeed())
		secretPart := plaintext[len("osk_live_")+12:]
		for _, s := range []string{key.Status.DisplayPrefix, key.Status.KeyID, findReady(key.Status.Conditions).Message} {
			g.Expect(s).NotTo(ContainSubstring(secretPart))
		}
		for _, v := range key.Annotations {
			g.Expect(v).NotTo(ContainSubstring(secretPart))
		}
		var evs corev1.EventList
		g.Expect(k8s.List(ctx, &evs, client.InNamespace(ns))).To(Succeed())
		for _, e := range evs.Items {
			g.Expect(e.Message).NotTo(ContainSubstring(secretPart))
		}
	})

	t.Run("revoked", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(key), key); err != nil {
				return err
			}
			key.Spec.Revoked = true
			return k8s.Update(ctx, key)
		})).To(Succeed())
		g.Eventually(func(g Gomega) {
			g.Expect(readyOf(g, key, &key.Status.Conditions).Reason).To(Equal(tav1.ReasonRevoked))
		}).WithTimeout(10 * time.Second).Should(Succeed())
	})

	t.Run("expired", func(t *testing.T) {
		g := NewWithT(t)
		soon := metav1.NewTime(time.Now().Add(2 * time.Second))
		k := &tav1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "short"},
			Spec: tav1.APIKeySpec{Organization: "acme", ExpiresAt: &soon}}
		g.Expect(k8s.Create(ctx, k)).To(Succeed())
		g.Eventually(func(g Gomega) {
			g.Expect(readyOf(g, k, &k.Status.Conditions).Reason).To(Equal(tav1.ReasonExpired))
		}).WithTimeout(15 * time.Second).Should(Succeed())
	})

	t.Run("a foreign Secret is never overwritten", func(t *testing.T) {
		g := NewWithT(t)
		foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "taken"}, StringData: map[string]string{"api-key": "someone else's"}}
		g.Expect(k8s.Create(ctx, foreign)).To(Succeed())
		k := &tav1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "wants-taken"},
			Spec: tav1.APIKeySpec{Organization: "acme", SecretName: "taken"}}
		g.Expect(k8s.Create(ctx, k)).To(Succeed())
		g.Eventually(func(g Gomega) {
			g.Expect(readyOf(g, k, &k.Status.Conditions).Reason).To(Equal(tav1.ReasonSecretConflict))
		}).WithTimeout(10 * time.Second).Should(Succeed())
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(foreign), foreign)).To(Succeed())
		g.Expect(string(foreign.Data["api-key"])).To(Equal("someone else's"))
		g.Expect(k.Status.KeyID).To(BeEmpty())
	})

	t.Run("a deleted plaintext Secret is not issued again", func(t *testing.T) {
		g := NewWithT(t)
		k := &tav1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "once"}, Spec: tav1.APIKeySpec{Organization: "acme"}}
		g.Expect(k8s.Create(ctx, k)).To(Succeed())
		g.Eventually(func(g Gomega) {
			g.Expect(readyOf(g, k, &k.Status.Conditions).Status).To(Equal(metav1.ConditionTrue))
		}).WithTimeout(10 * time.Second).Should(Succeed())
		keyID := k.Status.KeyID
		g.Expect(k8s.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "once"}})).To(Succeed())
		g.Eventually(func(g Gomega) {
			g.Expect(readyOf(g, k, &k.Status.Conditions).Reason).To(Equal(tav1.ReasonSecretMissing))
		}).WithTimeout(10 * time.Second).Should(Succeed())
		g.Consistently(func(g Gomega) {
			var s corev1.Secret
			err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "once"}, &s)
			g.Expect(client.IgnoreNotFound(err)).To(Succeed())
			g.Expect(err).To(HaveOccurred(), "no second plaintext is written")
		}).WithTimeout(2 * time.Second).Should(Succeed())
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(k), k)).To(Succeed())
		g.Expect(k.Status.KeyID).To(Equal(keyID))
	})
}

func TestMembershipUserIDs(t *testing.T) {
	startManager(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	g.Expect(k8s.Create(ctx, newOrg(ns, "one"))).To(Succeed())
	g.Expect(k8s.Create(ctx, newOrg(ns, "two"))).To(Succeed())

	mk := func(name, org, email string) *tav1.Membership {
		m := &tav1.Membership{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: tav1.MembershipSpec{Organization: org, Email: email}}
		g.Expect(k8s.Create(ctx, m)).To(Succeed())
		return m
	}
	a := mk("alice-one", "one", "alice@acme.com")
	b := mk("alice-two", "two", "alice@acme.com")
	lost := mk("alice-nowhere", "missing", "alice@acme.com")
	for _, m := range []*tav1.Membership{a, b} {
		g.Eventually(func(g Gomega) {
			g.Expect(readyOf(g, m, &m.Status.Conditions).Status).To(Equal(metav1.ConditionTrue))
		}).WithTimeout(10 * time.Second).Should(Succeed())
	}
	g.Expect(a.Status.UserID).To(MatchRegexp(`^usr_[a-z2-7]{26}$`))
	g.Expect(b.Status.UserID).To(Equal(a.Status.UserID), "one email, one user ID in every organization")
	g.Expect(a.Status.UserID).To(Equal(identity.UserID(testKey, "Alice@Acme.com ")))
	g.Expect(a.Spec.Role).To(Equal("member"), "the CRD defaults the role")

	g.Eventually(func(g Gomega) {
		g.Expect(readyOf(g, lost, &lost.Status.Conditions).Reason).To(Equal(tav1.ReasonOrganizationNotFound))
	}).WithTimeout(10 * time.Second).Should(Succeed())
	g.Expect(k8s.Create(ctx, newOrg(ns, "missing"))).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(readyOf(g, lost, &lost.Status.Conditions).Status).To(Equal(metav1.ConditionTrue))
	}).WithTimeout(10*time.Second).Should(Succeed(), "recovers when the Organization appears")

	t.Run("re-created membership keeps its user ID", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(k8s.Delete(ctx, a)).To(Succeed())
		again := mk("alice-one-again", "one", "ALICE@acme.com")
		g.Eventually(func(g Gomega) {
			g.Expect(readyOf(g, again, &again.Status.Conditions).Status).To(Equal(metav1.ConditionTrue))
		}).WithTimeout(10 * time.Second).Should(Succeed())
		g.Expect(again.Status.UserID).To(Equal(b.Status.UserID))
	})

	t.Run("disabled", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(b), b); err != nil {
				return err
			}
			b.Spec.Disabled = true
			return k8s.Update(ctx, b)
		})).To(Succeed())
		g.Eventually(func(g Gomega) {
			g.Expect(readyOf(g, b, &b.Status.Conditions).Reason).To(Equal(tav1.ReasonDisabled))
		}).WithTimeout(10 * time.Second).Should(Succeed())
	})
}

// TestSteadyStateWritesNothing reconciles Ready objects of every kind again
// through a client that counts writes: a resync that changes nothing must
// send none.
func TestSteadyStateWritesNothing(t *testing.T) {
	startManager(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	org := newOrg(ns, "steady")
	g.Expect(k8s.Create(ctx, org)).To(Succeed())
	m := &tav1.Membership{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "m"}, Spec: tav1.MembershipSpec{Organization: "steady", Email: "a@b.co"}}
	k := &tav1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "k"}, Spec: tav1.APIKeySpec{Organization: "steady"}}
	g.Expect(k8s.Create(ctx, m)).To(Succeed())
	g.Expect(k8s.Create(ctx, k)).To(Succeed())
	g.Eventually(func(g Gomega) {
		for _, o := range []struct {
			obj   client.Object
			conds *[]metav1.Condition
		}{{org, &org.Status.Conditions}, {m, &m.Status.Conditions}, {k, &k.Status.Conditions}} {
			g.Expect(readyOf(g, o.obj, o.conds).Status).To(Equal(metav1.ConditionTrue))
		}
	}).WithTimeout(15 * time.Second).Should(Succeed())

	writes := 0
	c := writeCounter(withWatch(t), &writes)
	reconcilers := map[string]interface {
		Reconcile(context.Context, ctrl.Request) (ctrl.Result, error)
	}{
		"organization": &OrganizationReconciler{Client: c, APIReader: c, Recorder: nopRecorder{}, Now: time.Now, SystemNamespace: systemNS},
		"membership":   &MembershipReconciler{Client: c, InstallationKey: testKey},
		"apikey":       &APIKeyReconciler{Client: c, APIReader: c, Recorder: nopRecorder{}, Now: time.Now, SystemNamespace: systemNS},
	}
	names := map[string]string{"organization": "steady", "membership": "m", "apikey": "k"}
	for kind, r := range reconcilers {
		for range 3 {
			if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Namespace: ns, Name: names[kind]}}); err != nil {
				t.Fatalf("%s: %v", kind, err)
			}
		}
		if writes != 0 {
			t.Fatalf("steady-state %s reconciles sent %d writes, want 0", kind, writes)
		}
	}
}
