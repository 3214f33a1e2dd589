package hostile

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/internal/signingkeys"
	"github.com/tenantauth/tenantauth/internal/trust"
)

// fuzzSeed is the default seed; HOSTILE_FUZZ_SEED replaces it to
// reproduce or widen a run.
const fuzzSeed = 20261202

// probe is one fixed /verify request and the answer it must keep giving.
type probe struct {
	name string
	ask  func() int
}

// TestPlantedSecretFuzz plants 200 Secrets in eve's namespace with random
// combinations of tenantauth labels, annotations, owner references and
// data drawn from the victim's real names, IDs and UIDs and from random
// ones, 20 at a time. After each batch every probe answers as it did
// before the first.
//
// Old behaviour it catches: labels alone made a Secret trusted, in any
// namespace; the first batch with a signing-keys or api-key-hash Secret
// for acme changed acme's answers.
func TestPlantedSecretFuzz(t *testing.T) {
	g := newG(t)
	ctx := world.ctx
	seed := uint64(fuzzSeed)
	if s := os.Getenv("HOSTILE_FUZZ_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		g.Expect(err).NotTo(HaveOccurred(), "HOSTILE_FUZZ_SEED")
		seed = n
	}
	t.Logf("fuzz seed %d (set HOSTILE_FUZZ_SEED to reproduce another)", seed)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	jwks, eveKey := newSigningKeys(g)
	f := &fuzzer{r: r, jwks: jwks, forged: forgeKey("live", world.acmeKeyID, r.IntN)}
	forgedJWT := signToken(g, eveKey.Key, tokenFor(world.eveSession))
	probes := []probe{
		{"acme-ci by slug", func() int { return verifyKey(world.acmeKey, "org=acme&scope=write") }},
		{"acme-ci by ID", func() int { return verifyKey(world.acmeKey, "org="+world.acmeID+"&scope=write") }},
		{"alice's token", func() int { return verifyJWT(world.aliceJWT, "org=acme&role=owner") }},
		{"forged acme-ci key", func() int { return verifyKey(f.forged, "org=acme&scope=write") }},
		{"evil-ci against acme", func() int { return verifyKey(world.evilKey, "org=acme") }},
		{"evil-ci against acme's ID", func() int { return verifyKey(world.evilKey, "org="+world.acmeID) }},
		{"eve's token against acme", func() int { return verifyJWT(world.eveJWT, "org=acme") }},
		{"eve-signed token for alice", func() int { return verifyJWT(forgedJWT, "org=acme&role=owner") }},
		{"evil-ci for evil", func() int { return verifyKey(world.evilKey, "org=evil&scope=write") }},
	}
	answers := func() map[string]int {
		out := map[string]int{}
		for _, p := range probes {
			out[p.name] = p.ask()
		}
		return out
	}
	before := answers()
	g.Expect(before).To(Equal(map[string]int{
		"acme-ci by slug": 200, "acme-ci by ID": 200, "alice's token": 200, "forged acme-ci key": 401,
		"evil-ci against acme": 403, "evil-ci against acme's ID": 403, "eve's token against acme": 403,
		"eve-signed token for alice": 401, "evil-ci for evil": 200,
	}), "the answers before the fuzz")

	var planted []*corev1.Secret
	t.Cleanup(func() {
		for _, s := range planted {
			_ = client.IgnoreNotFound(world.admin.Delete(ctx, s))
		}
	})
	for batch := range 10 {
		for i := range 20 {
			sec := f.secret(batch*20 + i)
			err := world.admin.Create(ctx, sec)
			if err != nil && sec.Name != f.fallbackName(batch*20+i) {
				// A canonical name already planted (or deleted as a
				// pre-upgrade copy and not gone yet): plant it under a
				// fresh one instead.
				sec.Name, sec.ResourceVersion = f.fallbackName(batch*20+i), ""
				err = world.admin.Create(ctx, sec)
			}
			g.Expect(err).NotTo(HaveOccurred(), "plant #%d %s (seed %d)", batch*20+i, sec.Name, seed)
			planted = append(planted, sec)
		}
		g.Consistently(answers).WithTimeout(500*time.Millisecond).Should(Equal(before), "after batch %d (seed %d)", batch, seed)
	}
	g.Expect(planted).To(HaveLen(200))

	for _, s := range planted {
		g.Expect(client.IgnoreNotFound(world.admin.Delete(ctx, s))).To(Succeed())
	}
	g.Consistently(answers).Should(Equal(before), "after the planted Secrets are deleted (seed %d)", seed)

	// The operator was not moved either: every status still mirrors the
	// records.
	acme, evil := &tav1.Organization{}, &tav1.Organization{}
	g.Expect(world.admin.Get(ctx, client.ObjectKeyFromObject(world.acmeOrg), acme)).To(Succeed())
	g.Expect(world.admin.Get(ctx, client.ObjectKeyFromObject(world.evilOrg), evil)).To(Succeed())
	g.Expect([]string{acme.Status.ID, readyReason(acme.Status.Conditions), evil.Status.ID, readyReason(evil.Status.Conditions)}).
		To(Equal([]string{world.acmeID, "True/Ready", world.evilID, "True/Ready"}))
	k := &tav1.APIKey{}
	g.Expect(world.admin.Get(ctx, client.ObjectKey{Namespace: victimNS, Name: "acme-ci"}, k)).To(Succeed())
	g.Expect(k.Status.KeyID).To(Equal(world.acmeKeyID))
}

// fuzzer draws planted Secrets.
type fuzzer struct {
	r      *rand.Rand
	jwks   []byte // eve's private JWK set, in the record format
	forged string // a key with acme-ci's key ID and a valid checksum
}

func (f *fuzzer) pick(vals ...string) string { return vals[f.r.IntN(len(vals))] }
func (f *fuzzer) coin(p float64) bool        { return f.r.Float64() < p }

func (f *fuzzer) word(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = b32Alphabet[f.r.IntN(len(b32Alphabet))]
	}
	return string(b)
}

func (f *fuzzer) fallbackName(i int) string { return fmt.Sprintf("fuzz-%03d", i) }

// secret is planted Secret number i.
func (f *fuzzer) secret(i int) *corev1.Secret {
	name := f.fallbackName(i)
	if f.coin(0.3) {
		name = f.pick(
			tav1.APIKeyHashSecretName(world.acmeKeyID), trust.APIKeyRecordName(world.evilKeyID),
			trust.SigningKeysName(world.acmeID), trust.SigningKeysName(world.evilID),
			trust.SlugClaimName("acme"), trust.SlugClaimName("evil"), "acme-signing-keys", "evil-signing-keys",
		)
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: evilNS, Name: name,
		Labels: map[string]string{}, Annotations: map[string]string{}}}
	orgID := func() string { return f.pick(world.acmeID, world.evilID, "org_"+f.word(26)) }
	keyID := func() string { return f.pick(world.acmeKeyID, world.evilKeyID, f.word(12)) }
	uid := func() string {
		return f.pick(string(world.acmeOrg.UID), world.acmeKeyUID, string(world.evilOrg.UID), "00000000-0000-0000-0000-"+f.word(12))
	}
	labels := map[string]func() string{
		tav1.LabelComponent: func() string {
			return f.pick(trust.ComponentSigningKeys, tav1.ComponentAPIKeyHash, trust.ComponentAPIKeyRecord,
				trust.ComponentSlugClaim, tav1.ComponentStore, tav1.ComponentAPIKey, "installation", f.word(6))
		},
		tav1.LabelManagedBy:    func() string { return tav1.ManagedByValue },
		tav1.LabelOrganization: func() string { return f.pick("acme", "evil", f.word(5)) },
		tav1.LabelKeyID:        keyID,
		tav1.LabelAPIKey:       func() string { return f.pick("acme-ci", "evil-ci") },
		trust.LabelOwnerUID:    uid,
	}
	annotations := map[string]func() string{
		trust.AnnotationOwnerNamespace: func() string { return f.pick(victimNS, evilNS, systemNS, f.word(5)) },
		trust.AnnotationOwnerName:      func() string { return f.pick("acme", "acme-ci", "evil", "evil-ci", f.word(5)) },
		trust.AnnotationOrganizationID: orgID,
		trust.AnnotationSlug:           func() string { return f.pick("acme", "evil", f.word(5)) },
		trust.AnnotationKeyID:          keyID,
		trust.AnnotationOrganization:   func() string { return f.pick("acme", "evil") },
	}
	// Map order is random; draw in a fixed order so a seed reproduces.
	for _, k := range []string{tav1.LabelComponent, tav1.LabelManagedBy, tav1.LabelOrganization, tav1.LabelKeyID, tav1.LabelAPIKey, trust.LabelOwnerUID} {
		if k == tav1.LabelComponent && f.coin(0.9) || f.coin(0.5) {
			sec.Labels[k] = labels[k]()
		}
	}
	for _, k := range []string{trust.AnnotationOwnerNamespace, trust.AnnotationOwnerName, trust.AnnotationOrganizationID,
		trust.AnnotationSlug, trust.AnnotationKeyID, trust.AnnotationOrganization} {
		if f.coin(0.5) {
			sec.Annotations[k] = annotations[k]()
		}
	}
	if f.coin(0.25) {
		// Eve may make her own objects the controller of what she plants,
		// which is what the pre-upgrade migration looks for; she may also
		// name the victim's, which the API server does not check.
		owner := f.pick("evil-org", "evil-ci", "acme-org", "acme-ci")
		ref := map[string]metav1.OwnerReference{
			"evil-org": {Kind: "Organization", Name: "evil", UID: world.evilOrg.UID},
			"evil-ci":  {Kind: "APIKey", Name: "evil-ci", UID: f.uidOf(evilNS, "evil-ci")},
			"acme-org": {Kind: "Organization", Name: "acme", UID: world.acmeOrg.UID},
			"acme-ci":  {Kind: "APIKey", Name: "acme-ci", UID: types.UID(world.acmeKeyUID)},
		}[owner]
		ref.APIVersion, ref.Controller = tav1.GroupVersion.String(), new(true)
		sec.OwnerReferences = []metav1.OwnerReference{ref}
	}
	sec.Data = map[string][]byte{}
	for range 1 + f.r.IntN(3) {
		key := f.pick(tav1.APIKeyHashDataKey, signingkeys.DataKey, tav1.APIKeyDataKey, f.word(4))
		sec.Data[key] = f.value()
	}
	return sec
}

// value is a random data value: real-looking hashes, key sets and keys,
// or junk.
func (f *fuzzer) value() []byte {
	switch f.r.IntN(8) {
	case 0, 1:
		return []byte(keyHash(f.forged))
	case 2:
		return []byte(keyHash(forgeKey("live", f.word(12), f.r.IntN)))
	case 3, 4:
		return f.jwks
	case 5:
		return []byte(f.forged)
	case 6:
		return []byte(f.pick(`{}`, `{"keys":[]}`, `{"keys":[{"kty":"EC"}]}`, "null", ""))
	default:
		b := make([]byte, f.r.IntN(64))
		for i := range b {
			b[i] = byte(f.r.UintN(256))
		}
		return b
	}
}

func (f *fuzzer) uidOf(ns, name string) types.UID {
	k := &tav1.APIKey{}
	if err := world.admin.Get(world.ctx, client.ObjectKey{Namespace: ns, Name: name}, k); err != nil {
		return "missing"
	}
	return k.UID
}
