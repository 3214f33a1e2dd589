package hostile

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/internal/apikey"
	"github.com/tenantauth/tenantauth/internal/signingkeys"
	"github.com/tenantauth/tenantauth/internal/trust"
)

// TestPlantedAPIKeyHash: eve plants, in her own namespace, the hash of a
// key she forged with acme-ci's key ID and a valid checksum, once in the
// old hash-Secret shape and once in the shape of a verification record
// naming acme-ci. Neither is trusted, and deleting them changes nothing.
//
// Old behaviour it catches: authserver/kube/source.go keyed hashes by bare
// key ID from Secrets in any namespace, trusting the api-key-hash label
// alone. The forged key answered 200 and the real key 401, and the real
// key stayed broken after the planted Secret was deleted.
func TestPlantedAPIKeyHash(t *testing.T) {
	g := newG(t)
	forged := forgeKey("live", world.acmeKeyID, cryptoIntN)
	parsed, err := apikey.Parse(forged)
	g.Expect(err).NotTo(HaveOccurred(), "the forged key passes the format and checksum check")
	g.Expect(parsed.ID).To(Equal(world.acmeKeyID))
	g.Expect(forged).NotTo(Equal(world.acmeKey))
	g.Expect(verifyKey(forged, "org=acme&scope=write")).To(Equal(401), "before the attack")

	legacy := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: evilNS, Name: tav1.APIKeyHashSecretName(world.acmeKeyID), Labels: map[string]string{
			tav1.LabelManagedBy: tav1.ManagedByValue, tav1.LabelComponent: tav1.ComponentAPIKeyHash,
			tav1.LabelKeyID: world.acmeKeyID, tav1.LabelAPIKey: "acme-ci", tav1.LabelOrganization: "acme",
		}},
		Data: map[string][]byte{tav1.APIKeyHashDataKey: []byte(keyHash(forged))},
	}
	record := trust.New(evilNS, trust.APIKeyRecordName(world.acmeKeyID), trust.ComponentAPIKeyRecord,
		trust.Owner{Namespace: victimNS, Name: "acme-ci", UID: types.UID(world.acmeKeyUID)})
	record.Labels[tav1.LabelKeyID] = world.acmeKeyID
	record.Annotations[trust.AnnotationKeyID] = world.acmeKeyID
	record.Annotations[trust.AnnotationOrganization] = "acme"
	record.Data = map[string][]byte{trust.APIKeyHashDataKey: []byte(keyHash(forged))}

	for _, sec := range []*corev1.Secret{legacy, record} {
		t.Run(sec.Labels[tav1.LabelComponent], func(t *testing.T) {
			g := newG(t)
			plant(t, g, world.eve, sec) // as eve: her namespace RBAC allows it
			g.Consistently(func(g Gomega) {
				g.Expect(verifyKey(forged, "org=acme&scope=write")).To(Equal(401), "the forged key")
				victimWorks(g)
			}).Should(Succeed())

			unplant(g, world.eve, sec)
			g.Consistently(func(g Gomega) {
				g.Expect(verifyKey(forged, "org=acme&scope=write")).To(Equal(401), "the forged key")
				victimWorks(g)
			}).Should(Succeed())
		})
	}

	// The operator did not adopt either copy: acme-ci still shows its own
	// key ID and is Ready.
	k := &tav1.APIKey{}
	g.Expect(world.admin.Get(world.ctx, client.ObjectKey{Namespace: victimNS, Name: "acme-ci"}, k)).To(Succeed())
	g.Expect(k.Status.KeyID).To(Equal(world.acmeKeyID))
	g.Expect(readyReason(k.Status.Conditions)).To(Equal("True/" + tav1.ReasonReady))
}

// TestPlantedAPIKeyHashViaMigration: eve makes an APIKey of her own whose
// pre-upgrade hash Secret (owned by it, so the migration would move it)
// carries acme-ci's key ID and the forged hash. The record's name is the
// key ID, so the claim fails and her key is not served.
//
// Old behaviour it catches: there was no claim; the hash Secret with the
// copied key ID was served as acme-ci's (last writer wins).
func TestPlantedAPIKeyHashViaMigration(t *testing.T) {
	g := newG(t)
	ctx := world.ctx
	forged := forgeKey("live", world.acmeKeyID, cryptoIntN)

	// The APIKey names an Organization that does not exist yet, so the
	// operator issues nothing until eve has planted the "old" hash.
	k := &tav1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: evilNS, Name: "steal"},
		Spec: tav1.APIKeySpec{Organization: "evil-later", Scopes: []tav1.APIKeyScope{tav1.ScopeRead, tav1.ScopeWrite}}}
	g.Expect(world.eve.Create(ctx, k)).To(Succeed())
	t.Cleanup(func() { _ = world.admin.Delete(ctx, k) })
	g.Eventually(func() string {
		_ = world.admin.Get(ctx, client.ObjectKeyFromObject(k), k)
		return readyReason(k.Status.Conditions)
	}).Should(Equal("False/" + tav1.ReasonOrganizationNotFound))

	legacy := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: evilNS, Name: tav1.APIKeyHashSecretName(world.acmeKeyID), Labels: map[string]string{
			tav1.LabelManagedBy: tav1.ManagedByValue, tav1.LabelComponent: tav1.ComponentAPIKeyHash,
			tav1.LabelKeyID: world.acmeKeyID, tav1.LabelAPIKey: k.Name,
		}, OwnerReferences: []metav1.OwnerReference{{APIVersion: tav1.GroupVersion.String(), Kind: "APIKey", Name: k.Name, UID: k.UID,
			Controller: new(true), BlockOwnerDeletion: new(true)}}},
		Data: map[string][]byte{tav1.APIKeyHashDataKey: []byte(keyHash(forged))},
	}
	plant(t, g, world.eve, legacy)
	org := &tav1.Organization{ObjectMeta: metav1.ObjectMeta{Namespace: evilNS, Name: "evil-later"}}
	g.Expect(world.eve.Create(ctx, org)).To(Succeed())
	t.Cleanup(func() { _ = world.admin.Delete(ctx, org) })

	g.Eventually(func() string {
		_ = world.admin.Get(ctx, client.ObjectKeyFromObject(k), k)
		return readyReason(k.Status.Conditions)
	}).Should(Equal("False/" + tav1.ReasonKeyIDConflict))
	g.Consistently(func(g Gomega) {
		g.Expect(verifyKey(forged, "org=acme")).To(Equal(401), "the forged key against acme")
		g.Expect(verifyKey(forged, "org=evil-later")).To(Equal(401), "the forged key against eve's new org")
		victimWorks(g)
	}).Should(Succeed())
}

// TestPlantedSigningKeys: eve plants her own ES256 key as acme's signing
// keys in her namespace, once with the old labels and once in the shape of
// acme's record, and signs a token for alice as owner of acme that names
// eve's own live session. It is refused; deleting the planted Secret leaves
// acme's real keys in place.
//
// Old behaviour it catches: any Secret with the signing-keys labels for an
// organization, in any namespace, became its key set, so the forged token
// passed /verify?role=owner; deleting it removed acme's real keys from the
// auth server until the next resync.
func TestPlantedSigningKeys(t *testing.T) {
	g := newG(t)
	kidsBefore := jwksKids("acme")
	g.Expect(kidsBefore).NotTo(BeEmpty())
	data, eveKey := newSigningKeys(g)
	forged := signToken(g, eveKey.Key, tokenFor(world.eveSession))
	g.Expect(verifyJWT(forged, "org=acme&role=owner")).To(Equal(401), "before the attack")

	old := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: evilNS, Name: "acme-signing-keys", Labels: map[string]string{
			tav1.LabelManagedBy: tav1.ManagedByValue, tav1.LabelComponent: tav1.ComponentSigningKeys, tav1.LabelOrganization: "acme",
		}, Annotations: map[string]string{tav1.AnnotationOrganizationID: world.acmeID}},
		Data: map[string][]byte{signingkeys.DataKey: data},
	}
	record := trust.New(evilNS, trust.SigningKeysName(world.acmeID), trust.ComponentSigningKeys, trust.OwnerOf(world.acmeOrg))
	record.Annotations[trust.AnnotationOrganizationID] = world.acmeID
	record.Data = map[string][]byte{signingkeys.DataKey: data}

	for _, sec := range []*corev1.Secret{old, record} {
		t.Run(sec.Name, func(t *testing.T) {
			g := newG(t)
			plant(t, g, world.eve, sec)
			g.Consistently(func(g Gomega) {
				g.Expect(verifyJWT(forged, "role=owner&org=acme")).To(Equal(401), "eve's token for alice")
				g.Expect(jwksKids("acme")).To(ConsistOf(kidsBefore), "acme's published keys")
				victimWorks(g)
			}).Should(Succeed())
			unplant(g, world.eve, sec)
			g.Consistently(func(g Gomega) {
				g.Expect(verifyJWT(forged, "role=owner&org=acme")).To(Equal(401), "eve's token for alice")
				g.Expect(jwksKids("acme")).To(ConsistOf(kidsBefore), "acme's published keys")
				victimWorks(g)
			}).Should(Succeed())
		})
	}
}

// TestSessionBelongsToToken: a token validly signed with acme's own key
// (as if it had leaked) for alice, but naming eve's live session in evil,
// is refused: the session a JWT names must belong to its sub and org_id.
//
// Old behaviour it catches: the session check only asked whether the sid
// was live, so any live session of anyone made the token pass.
func TestSessionBelongsToToken(t *testing.T) {
	g := newG(t)
	rec := &corev1.Secret{}
	g.Expect(world.admin.Get(world.ctx, client.ObjectKey{Namespace: systemNS, Name: trust.SigningKeysName(world.acmeID)}, rec)).To(Succeed())
	set, err := signingkeys.Parse(rec.Data[signingkeys.DataKey])
	g.Expect(err).NotTo(HaveOccurred())
	active, ok := set.Active(time.Now())
	g.Expect(ok).To(BeTrue())

	// Control: the same hand-made claims with alice's own session pass,
	// so a refusal below is about the session and nothing else.
	aliceSID := sessionOf(g, world.aliceJWT)
	g.Expect(verifyJWT(signToken(g, active.Key, tokenFor(aliceSID)), "org=acme&role=owner")).To(Equal(200), "alice's own session")

	stolen := signToken(g, active.Key, tokenFor(world.eveSession))
	g.Expect(verifyJWT(stolen, "org=acme&role=owner")).To(Equal(401), "alice's claims with eve's session in evil")
	victimWorks(g)
}

// TestNoPrivateKeysInTenantNamespaces scans every Secret in the tenant
// namespaces for private key material.
//
// Old behaviour it catches: each Organization's private JWK set sat in a
// Secret in its own namespace, beside the API-key Secrets its members may
// read.
func TestNoPrivateKeysInTenantNamespaces(t *testing.T) {
	g := newG(t)
	scanned := 0
	for _, ns := range []string{victimNS, evilNS} {
		list := &corev1.SecretList{}
		g.Expect(world.admin.List(world.ctx, list, client.InNamespace(ns))).To(Succeed())
		for i := range list.Items {
			scanned++
			g.Expect(privateJWKs(&list.Items[i])).To(BeEmpty(), "Secret %s/%s", ns, list.Items[i].Name)
		}
	}
	g.Expect(scanned).To(BeNumerically(">=", 2), "the API-key Secrets of acme-ci and evil-ci at least")

	// The scanner itself finds a private set where there is one.
	rec := &corev1.Secret{}
	g.Expect(world.admin.Get(world.ctx, client.ObjectKey{Namespace: systemNS, Name: trust.SigningKeysName(world.acmeID)}, rec)).To(Succeed())
	g.Expect(privateJWKs(rec)).NotTo(BeEmpty(), "acme's record in the system namespace holds its private keys")
}

// sessionOf reads the sid claim of an access token, without checking it.
func sessionOf(g Gomega, jwt string) string {
	claims := decodeClaims(g, jwt)
	sid, _ := claims["sid"].(string)
	g.Expect(sid).NotTo(BeEmpty())
	return sid
}
