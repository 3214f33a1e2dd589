package controllers

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/internal/apikey"
	"github.com/tenantauth/tenantauth/internal/signingkeys"
	"github.com/tenantauth/tenantauth/internal/trust"
)

// legacyLayout is what a release before the system-namespace records left
// in a tenant namespace: the signing keys and the API key hash beside the
// plaintext, and the IDs in status.
type legacyLayout struct {
	org       *tav1.Organization
	orgID     string
	keys      []byte
	key       *tav1.APIKey
	plaintext string
	keyID     string
}

func makeLegacyLayout(t *testing.T, ns, name string) legacyLayout {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	l := legacyLayout{orgID: "org_" + strings.ToLower(ulid.Make().String())}
	l.org = newOrg(ns, name)
	g.Expect(k8s.Create(ctx, l.org)).To(Succeed())
	set := &signingkeys.Set{}
	_, _, err := set.Rotate(signingkeys.Policy{Algorithm: "ES256", RotationInterval: 720 * time.Hour, AccessTokenTTL: 15 * time.Minute}, time.Now().Add(-time.Hour))
	g.Expect(err).NotTo(HaveOccurred())
	l.keys, err = set.Marshal()
	g.Expect(err).NotTo(HaveOccurred())
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: l.org.LegacySigningKeySecretName(),
		Labels:      map[string]string{tav1.LabelComponent: tav1.ComponentSigningKeys, tav1.LabelOrganization: l.org.Name},
		Annotations: map[string]string{tav1.AnnotationOrganizationID: l.orgID}},
		Data: map[string][]byte{signingkeys.DataKey: l.keys}}
	g.Expect(controllerutil.SetControllerReference(l.org, sec, scheme)).To(Succeed())
	g.Expect(k8s.Create(ctx, sec)).To(Succeed())
	l.org.Status.ID = l.orgID
	g.Expect(k8s.Status().Update(ctx, l.org)).To(Succeed())

	l.key = &tav1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ci"}, Spec: tav1.APIKeySpec{Organization: name}}
	g.Expect(k8s.Create(ctx, l.key)).To(Succeed())
	plaintext, k, err := apikey.Generate("live")
	g.Expect(err).NotTo(HaveOccurred())
	l.plaintext, l.keyID = plaintext, k.ID
	plain := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ci",
		Labels: map[string]string{tav1.LabelComponent: tav1.ComponentAPIKey, tav1.LabelAPIKey: "ci"}},
		Data: map[string][]byte{tav1.APIKeyDataKey: []byte(plaintext)}}
	hash := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: tav1.APIKeyHashSecretName(k.ID),
		Labels: map[string]string{tav1.LabelComponent: tav1.ComponentAPIKeyHash, tav1.LabelAPIKey: "ci", tav1.LabelKeyID: k.ID}},
		Data: map[string][]byte{tav1.APIKeyHashDataKey: []byte(k.Hash())}}
	for _, s := range []*corev1.Secret{plain, hash} {
		g.Expect(controllerutil.SetControllerReference(l.key, s, scheme)).To(Succeed())
		g.Expect(k8s.Create(ctx, s)).To(Succeed())
	}
	l.key.Status.KeyID = k.ID
	g.Expect(k8s.Status().Update(ctx, l.key)).To(Succeed())
	return l
}

// upgradeNow plays the upgrade: the new operator starts after the layouts
// were written, so it marks the start of records afresh.
func upgradeNow(t *testing.T) {
	t.Helper()
	time.Sleep(1100 * time.Millisecond) // creation timestamps have one-second resolution
	err := k8s.Delete(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: systemNS, Name: recordsSinceName}})
	if client.IgnoreNotFound(err) != nil {
		t.Fatal(err)
	}
}

// failDeletes is a client that dies on every Delete: the operator killed
// after it wrote the system-namespace record and before it removed the
// pre-upgrade Secret.
func failDeletes(c client.WithWatch) client.Client {
	return interceptor.NewClient(c, interceptor.Funcs{
		Delete: func(context.Context, client.WithWatch, client.Object, ...client.DeleteOption) error {
			return errors.New("operator killed")
		},
	})
}

// TestUpgradeMovesKeysWithoutLoss moves a pre-upgrade layout, with the
// operator dying half-way: the record carries the same ID, the same keys
// and the same API key hash, and no key material stays in the tenant
// namespace.
func TestUpgradeMovesKeysWithoutLoss(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	l := makeLegacyLayout(t, ns, "legacy-moved")
	upgradeNow(t)
	direct := withWatch(t)
	orgR := func(c client.Client) *OrganizationReconciler {
		return &OrganizationReconciler{Client: c, APIReader: k8s, Recorder: nopRecorder{}, Now: time.Now, SystemNamespace: systemNS}
	}
	keyR := func(c client.Client) *APIKeyReconciler {
		return &APIKeyReconciler{Client: c, APIReader: k8s, Recorder: nopRecorder{}, Now: time.Now, SystemNamespace: systemNS}
	}
	orgReq := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(l.org)}
	keyReq := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(l.key)}

	_, err := orgR(failDeletes(direct)).Reconcile(ctx, orgReq)
	g.Expect(err).To(MatchError(ContainSubstring("operator killed")))
	_, err = keyR(failDeletes(direct)).Reconcile(ctx, keyReq)
	g.Expect(err).To(MatchError(ContainSubstring("operator killed")))
	for range 2 { // converges, and a second run changes nothing
		_, err = orgR(direct).Reconcile(ctx, orgReq)
		g.Expect(err).NotTo(HaveOccurred())
		_, err = keyR(direct).Reconcile(ctx, keyReq)
		g.Expect(err).NotTo(HaveOccurred())
	}

	rec := &corev1.Secret{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: systemNS, Name: trust.SigningKeysName(l.orgID)}, rec)).To(Succeed())
	parsed, err := trust.ParseOrgRecord(rec, systemNS)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(parsed.ID).To(Equal(l.orgID), "the organization keeps its ID")
	g.Expect(parsed.Owner.Owns(l.org)).To(BeTrue())
	before, _ := signingkeys.Parse(l.keys)
	after, err := signingkeys.Parse(parsed.Keys)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(after.Entries).To(HaveLen(len(before.Entries)), "no key lost, none added")
	for i := range before.Entries {
		g.Expect(after.Entries[i].KID).To(Equal(before.Entries[i].KID))
	}
	g.Expect(apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: l.org.LegacySigningKeySecretName()}, &corev1.Secret{}))).
		To(BeTrue(), "the private keys left the tenant namespace")

	krec := &corev1.Secret{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: systemNS, Name: trust.APIKeyRecordName(l.keyID)}, krec)).To(Succeed())
	kparsed, err := trust.ParseAPIKeyRecord(krec, systemNS)
	g.Expect(err).NotTo(HaveOccurred())
	key, err := apikey.Parse(l.plaintext)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(key.Matches(kparsed.Hash)).To(BeTrue(), "the key issued before the upgrade still matches")
	g.Expect(apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: tav1.APIKeyHashSecretName(l.keyID)}, &corev1.Secret{}))).
		To(BeTrue(), "the hash left the tenant namespace")

	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(l.org), l.org)).To(Succeed())
	g.Expect(l.org.Status.ID).To(Equal(l.orgID))
	g.Expect(l.org.Status.SigningKeySecret).To(Equal(systemNS + "/" + rec.Name))
	g.Expect(findReady(l.org.Status.Conditions).Status).To(Equal(metav1.ConditionTrue))
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(l.key), l.key)).To(Succeed())
	g.Expect(l.key.Status.KeyID).To(Equal(l.keyID))
	g.Expect(findReady(l.key.Status.Conditions).Status).To(Equal(metav1.ConditionTrue))
}

// TestUpgradeRefusesACopiedID plays a tenant who, before the upgrade,
// planted a signing-key Secret carrying another organization's ID: the
// older, genuine Secret keeps the ID, and the copy gets a fresh one.
func TestUpgradeRefusesACopiedID(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	victim := makeLegacyLayout(t, newNamespace(t), "legacy-victim")
	time.Sleep(1100 * time.Millisecond) // creation timestamps have one-second resolution
	evilNS := newNamespace(t)
	evil := newOrg(evilNS, "legacy-evil")
	g.Expect(k8s.Create(ctx, evil)).To(Succeed())
	copied := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: evilNS, Name: evil.LegacySigningKeySecretName(),
		Labels:      map[string]string{tav1.LabelComponent: tav1.ComponentSigningKeys, tav1.LabelOrganization: evil.Name},
		Annotations: map[string]string{tav1.AnnotationOrganizationID: victim.orgID}},
		Data: map[string][]byte{signingkeys.DataKey: victim.keys}}
	g.Expect(controllerutil.SetControllerReference(evil, copied, scheme)).To(Succeed())
	g.Expect(k8s.Create(ctx, copied)).To(Succeed())
	upgradeNow(t)

	r := &OrganizationReconciler{Client: withWatch(t), APIReader: k8s, Recorder: nopRecorder{}, Now: time.Now, SystemNamespace: systemNS}
	// The attacker's Organization is reconciled first.
	for _, o := range []*tav1.Organization{evil, victim.org} {
		_, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(o)})
		g.Expect(err).NotTo(HaveOccurred())
	}
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(evil), evil)).To(Succeed())
	g.Expect(evil.Status.ID).NotTo(Equal(victim.orgID), "the copy does not get the victim's ID")
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(victim.org), victim.org)).To(Succeed())
	g.Expect(victim.org.Status.ID).To(Equal(victim.orgID), "the victim keeps its ID")
	g.Expect(findReady(victim.org.Status.Conditions).Status).To(Equal(metav1.ConditionTrue))
}

// TestUpgradeIgnoresSecretsPlantedAfterIt plays a tenant who, after the
// upgrade, plants a pre-upgrade-looking key Secret for a new Organization:
// its keys and chosen ID are never imported.
func TestUpgradeIgnoresSecretsPlantedAfterIt(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	upgradeNow(t)
	r := &OrganizationReconciler{Client: withWatch(t), APIReader: k8s, Recorder: nopRecorder{}, Now: time.Now, SystemNamespace: systemNS}
	_, err := r.recordsSince(ctx) // the operator has started
	g.Expect(err).NotTo(HaveOccurred())
	time.Sleep(1100 * time.Millisecond)
	planted := makeLegacyLayout(t, newNamespace(t), "legacy-planted")
	_, err = r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(planted.org)})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(planted.org), planted.org)).To(Succeed())
	g.Expect(planted.org.Status.ID).NotTo(Equal(planted.orgID), "the planted ID is not imported")
	rec := &corev1.Secret{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: systemNS, Name: trust.SigningKeysName(planted.org.Status.ID)}, rec)).To(Succeed())
	g.Expect(rec.Data[signingkeys.DataKey]).NotTo(Equal(planted.keys), "the planted keys are not imported")
}

// TestUpgradeCarriesHashPastALaggingCache moves an API key whose plaintext
// Secret is gone and whose pre-upgrade hash Secret the cache has not seen
// yet: the key is still carried over, and no second key is made.
func TestUpgradeCarriesHashPastALaggingCache(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	l := makeLegacyLayout(t, ns, "legacy-lagging")
	g.Expect(k8s.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ci"}})).To(Succeed())
	upgradeNow(t)
	direct := withWatch(t)
	orgR := &OrganizationReconciler{Client: direct, APIReader: k8s, Recorder: nopRecorder{}, Now: time.Now, SystemNamespace: systemNS}
	_, err := orgR.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(l.org)})
	g.Expect(err).NotTo(HaveOccurred())

	lagging := interceptor.NewClient(direct, interceptor.Funcs{
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			if err := c.List(ctx, list, opts...); err != nil {
				return err
			}
			if secrets, ok := list.(*corev1.SecretList); ok {
				secrets.Items = slices.DeleteFunc(secrets.Items, func(s corev1.Secret) bool {
					return s.Labels[tav1.LabelComponent] == tav1.ComponentAPIKeyHash
				})
			}
			return nil
		},
	})
	keyR := &APIKeyReconciler{Client: lagging, APIReader: k8s, Recorder: nopRecorder{}, Now: time.Now, SystemNamespace: systemNS}
	_, err = keyR.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(l.key)})
	g.Expect(err).NotTo(HaveOccurred())

	krec := &corev1.Secret{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: systemNS, Name: trust.APIKeyRecordName(l.keyID)}, krec)).To(Succeed(), "the record keeps the pre-upgrade key ID")
	kparsed, err := trust.ParseAPIKeyRecord(krec, systemNS)
	g.Expect(err).NotTo(HaveOccurred())
	key, err := apikey.Parse(l.plaintext)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(key.Matches(kparsed.Hash)).To(BeTrue(), "the key issued before the upgrade still matches")
	g.Expect(apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "ci"}, &corev1.Secret{}))).
		To(BeTrue(), "no second plaintext was made")
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(l.key), l.key)).To(Succeed())
	g.Expect(l.key.Status.KeyID).To(Equal(l.keyID))
	g.Expect(findReady(l.key.Status.Conditions).Reason).To(Equal(tav1.ReasonSecretMissing))
}
