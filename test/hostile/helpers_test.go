package hostile

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash/crc32"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/internal/app"
	"github.com/tenantauth/tenantauth/internal/b32"
	"github.com/tenantauth/tenantauth/internal/signingkeys"
	"github.com/tenantauth/tenantauth/internal/testenv"
)

// newG is a Gomega for t with the suite's timeouts: informers propagate
// in milliseconds here, so 20 s means something is wrong.
// Consistently windows are 1 s: planted state the auth server would pick
// up reaches it within milliseconds here.
func newG(t *testing.T) *WithT {
	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(20 * time.Second)
	g.SetDefaultEventuallyPollingInterval(50 * time.Millisecond)
	g.SetDefaultConsistentlyDuration(time.Second)
	g.SetDefaultConsistentlyPollingInterval(100 * time.Millisecond)
	return g
}

// impersonate is a client acting as user, with the groups every
// authenticated user has plus groups.
func impersonate(g Gomega, user string, groups ...string) client.Client {
	c, err := client.New(impersonatedConfig(user, groups...), client.Options{Scheme: app.Scheme()})
	g.Expect(err).NotTo(HaveOccurred())
	return c
}

func impersonatedConfig(user string, groups ...string) *rest.Config {
	rc := rest.CopyConfig(world.cfg)
	rc.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: append([]string{"system:authenticated"}, groups...)}
	return rc
}

// serviceAccount is the user name and groups Kubernetes gives a service
// account's token.
func serviceAccount(ns, name string) (string, []string) {
	return "system:serviceaccount:" + ns + ":" + name, []string{"system:serviceaccounts", "system:serviceaccounts:" + ns}
}

func readyReason(conds []metav1.Condition) string {
	if c := meta.FindStatusCondition(conds, tav1.ConditionReady); c != nil {
		return string(c.Status) + "/" + c.Reason
	}
	return ""
}

// get asks the auth server at base (the main one when empty) and returns
// the status code; transport errors are 0, which no assertion expects.
func get(base, path string, headers ...string) int {
	if base == "" {
		base = world.publicURL
	}
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		return 0
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

func verifyKeyAt(base, key, query string) int {
	return get(base, "/verify?"+query, "X-API-Key", key)
}

func verifyJWTAt(base, jwt, query string) int {
	return get(base, "/verify?"+query, "Authorization", "Bearer "+jwt)
}

func verifyKey(key, query string) int { return verifyKeyAt("", key, query) }
func verifyJWT(jwt, query string) int { return verifyJWTAt("", jwt, query) }

// login signs email in to org (slug or ID) on the main auth server and
// returns the access token and the session object.
func login(g Gomega, email, org string) (string, map[string]any) {
	code, body := loginAt(world.publicURL, email, org)
	g.Expect(code).To(Equal(200), "login %s to %s: %v", email, org, body)
	jwt, _ := body["access_token"].(string)
	g.Expect(jwt).NotTo(BeEmpty())
	sess, _ := body["session"].(map[string]any)
	return jwt, sess
}

func loginAt(base, email, org string) (int, map[string]any) {
	b, _ := json.Marshal(map[string]string{"email": email, "password": password, "organization": org})
	resp, err := http.Post(base+"/auth/login", "application/json", bytes.NewReader(b))
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// jwksKids is the set of kids /orgs/<org>/.well-known/jwks.json publishes,
// or nil when it does not answer 200.
func jwksKids(org string) []string {
	resp, err := http.Get(world.publicURL + "/orgs/" + org + "/.well-known/jwks.json")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil
	}
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if json.NewDecoder(resp.Body).Decode(&set) != nil {
		return nil
	}
	out := []string{}
	for _, k := range set.Keys {
		out = append(out, k.Kid)
	}
	return out
}

// victimWorks checks, once, that acme's key and alice's token verify, by
// slug and by ID.
func victimWorks(g Gomega) {
	g.Expect(verifyKey(world.acmeKey, "org=acme&scope=write")).To(Equal(200), "acme-ci by slug")
	g.Expect(verifyKey(world.acmeKey, "org="+world.acmeID+"&scope=write")).To(Equal(200), "acme-ci by ID")
	g.Expect(verifyJWT(world.aliceJWT, "org=acme&role=owner")).To(Equal(200), "alice's token by slug")
	g.Expect(verifyJWT(world.aliceJWT, "org="+world.acmeID+"&role=owner")).To(Equal(200), "alice's token by ID")
}

// --- forging -------------------------------------------------------------

const b32Alphabet = b32.Alphabet

// forgeKey builds an API key with keyID and a valid checksum, the way
// internal/apikey does (CRC-32 IEEE of everything before it, big-endian,
// base32), from random characters rnd supplies.
func forgeKey(env, keyID string, rnd func(n int) int) string {
	secret := make([]byte, 52)
	for i := range secret {
		secret[i] = b32Alphabet[rnd(len(b32Alphabet))]
	}
	head := "osk_" + env + "_" + keyID + string(secret)
	c := crc32.ChecksumIEEE([]byte(head))
	return head + b32.Lower.EncodeToString([]byte{byte(c >> 24), byte(c >> 16), byte(c >> 8), byte(c)})
}

// cryptoIntN is a uniform random int below n from crypto/rand.
func cryptoIntN(n int) int {
	b := make([]byte, 1)
	for {
		_, _ = rand.Read(b)
		if int(b[0]) < 256-256%n {
			return int(b[0]) % n
		}
	}
}

// keyHash is what the auth server stores for a key: hex SHA-256.
func keyHash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// newSigningKeys makes a private JWK set in the Secret format, with one
// active ES256 key, and returns the set and the key.
func newSigningKeys(g Gomega) ([]byte, signingkeys.Entry) {
	set := &signingkeys.Set{}
	_, _, err := set.Rotate(signingkeys.Policy{Algorithm: "ES256", RotationInterval: 720 * time.Hour, AccessTokenTTL: 15 * time.Minute},
		time.Now().Add(-time.Minute))
	g.Expect(err).NotTo(HaveOccurred())
	data, err := set.Marshal()
	g.Expect(err).NotTo(HaveOccurred())
	e, ok := set.Active(time.Now())
	g.Expect(ok).To(BeTrue())
	return data, e
}

// tokenFor is the claim set the auth server itself issues to alice in acme
// (DESIGN section 4), with session sid.
func tokenFor(sid string) map[string]any {
	now := time.Now()
	iss := world.publicURL + "/orgs/acme"
	return map[string]any{
		"iss": iss, "aud": iss, "sub": world.aliceUserID, "exp": now.Add(10 * time.Minute).Unix(),
		"iat": now.Unix(), "nbf": now.Unix(), "jti": "forged-" + forgeKey("live", "aaaaaaaaaaaa", cryptoIntN)[20:40],
		"sid": sid, "org_id": world.acmeID, "org_slug": "acme", "role": tav1.RoleOwner,
		"permissions": []string{"org:delete"}, "email": aliceEmail, "amr": []string{"pwd"},
	}
}

// signToken signs claims with key as an access token (ES256, typ at+jwt).
func signToken(g Gomega, key jwk.Key, claims map[string]any) string {
	payload, err := json.Marshal(claims)
	g.Expect(err).NotTo(HaveOccurred())
	h := jws.NewHeaders()
	g.Expect(h.Set(jws.KeyIDKey, key.KeyID())).To(Succeed())
	g.Expect(h.Set(jws.TypeKey, "at+jwt")).To(Succeed())
	out, err := jws.Sign(payload, jws.WithKey(jwa.ES256, key, jws.WithProtectedHeaders(h)))
	g.Expect(err).NotTo(HaveOccurred())
	return string(out)
}

// --- planting ------------------------------------------------------------

// plant creates sec with c and removes it when the test ends.
func plant(t *testing.T, g Gomega, c client.Client, sec *corev1.Secret) {
	t.Helper()
	g.Expect(c.Create(world.ctx, sec)).To(Succeed(), "plant %s/%s", sec.Namespace, sec.Name)
	t.Cleanup(func() { _ = world.admin.Delete(world.ctx, sec) })
}

// unplant deletes sec and waits until it is gone.
func unplant(g *WithT, c client.Client, sec *corev1.Secret) {
	g.Expect(c.Delete(world.ctx, sec)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(world.admin.Get(world.ctx, client.ObjectKeyFromObject(sec), &corev1.Secret{}))
	}).Should(BeTrue())
}

// decodeClaims reads an access token's claims without checking anything.
func decodeClaims(g Gomega, jwt string) map[string]any {
	parts := strings.Split(jwt, ".")
	g.Expect(parts).To(HaveLen(3))
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	g.Expect(err).NotTo(HaveOccurred())
	var claims map[string]any
	g.Expect(json.Unmarshal(raw, &claims)).To(Succeed())
	return claims
}

// --- applying shipped manifests -----------------------------------------

// applyManifest creates every object in the repository's YAML file rel,
// with the kustomize namespace placeholder "system" rewritten to the
// system namespace, and updates objects that already exist.
func applyManifest(g Gomega, rel string) []*unstructured.Unstructured {
	objs := readManifest(g, rel)
	for _, u := range objs {
		g.Expect(apply(u)).To(Succeed(), "apply %s %s from %s", u.GetKind(), u.GetName(), rel)
	}
	return objs
}

// readManifest decodes the repository's YAML file rel, with the kustomize
// namespace placeholder "system" rewritten to the system namespace, in
// metadata and in RBAC subjects.
func readManifest(g Gomega, rel string) []*unstructured.Unstructured {
	f, err := os.Open(filepath.Join(testenv.RepoRoot(), rel))
	g.Expect(err).NotTo(HaveOccurred())
	defer f.Close()
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	var out []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			g.Expect(err).NotTo(HaveOccurred(), "decode %s", rel)
		}
		if len(u.Object) == 0 {
			continue
		}
		if u.GetNamespace() == "system" {
			u.SetNamespace(systemNS)
		}
		if subjects, ok, _ := unstructured.NestedSlice(u.Object, "subjects"); ok {
			for _, s := range subjects {
				if m, ok := s.(map[string]any); ok && m["namespace"] == "system" {
					m["namespace"] = systemNS
				}
			}
			g.Expect(unstructured.SetNestedSlice(u.Object, subjects, "subjects")).To(Succeed())
		}
		out = append(out, u)
	}
	g.Expect(out).NotTo(BeEmpty(), "%s holds no objects", rel)
	return out
}

// apply creates u, or updates it when it exists.
func apply(u *unstructured.Unstructured) error {
	u = u.DeepCopy()
	err := world.admin.Create(world.ctx, u)
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	existing := &unstructured.Unstructured{}
	existing.SetGroupVersionKind(u.GroupVersionKind())
	if err := world.admin.Get(world.ctx, client.ObjectKeyFromObject(u), existing); err != nil {
		return err
	}
	u.SetResourceVersion(existing.GetResourceVersion())
	return world.admin.Update(world.ctx, u)
}

// privateJWKs reports the data keys of sec that hold a private JWK (a JWK
// or JWK set with "d"), or a PEM private key.
func privateJWKs(sec *corev1.Secret) []string {
	var bad []string
	for k, v := range sec.Data {
		if strings.Contains(string(v), "PRIVATE KEY") {
			bad = append(bad, k)
			continue
		}
		var set struct {
			Keys []map[string]any `json:"keys"`
		}
		var one map[string]any
		switch {
		case json.Unmarshal(v, &set) == nil && len(set.Keys) > 0:
			for _, key := range set.Keys {
				if _, ok := key["d"]; ok {
					bad = append(bad, k)
					break
				}
			}
		case json.Unmarshal(v, &one) == nil:
			if _, ok := one["d"]; ok {
				bad = append(bad, k)
			}
		}
	}
	return bad
}
