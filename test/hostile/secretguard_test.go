package hostile

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/internal/testenv"
	"github.com/tenantauth/tenantauth/internal/trust"
)

// labelled is a Secret in ns with a tenantauth component label.
func labelled(ns, name, component string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{tav1.LabelComponent: component}},
		Data:       map[string][]byte{"hash": []byte(keyHash(name))},
	}
}

// TestSecretGuard applies the shipped ValidatingAdmissionPolicy as
// shipped, and removes it when done so the other tests plant as eve.
//
// Old behaviour it catches: there was no policy; anyone who could write
// Secrets in a namespace could write one with the tenantauth labels.
func TestSecretGuard(t *testing.T) {
	g := newG(t)
	ctx := world.ctx
	applyShippedRBAC(g)
	objs := readManifest(g, "config/policy/secret_guard.yaml")
	g.Expect(objs).To(HaveLen(2))
	// The shipped file must install as it is (kubectl apply -k
	// config/default).
	g.Expect(apply(objs[0])).To(Succeed(), "the shipped policy")
	g.Expect(apply(objs[1])).To(Succeed(), "the binding")
	guardInEffect(t, g, objs)

	opUser, opGroups := serviceAccount(systemNS, "tenantauth-operator")
	operator := impersonate(g, opUser, opGroups...)
	asUser, asGroups := serviceAccount(systemNS, "tenantauth-authserver")
	authSA := impersonate(g, asUser, asGroups...)

	forged := forgeKey("live", world.acmeKeyID, cryptoIntN)
	hash := labelled(evilNS, tav1.APIKeyHashSecretName(world.acmeKeyID), tav1.ComponentAPIKeyHash)
	hash.Labels[tav1.LabelKeyID] = world.acmeKeyID
	hash.Data = map[string][]byte{tav1.APIKeyHashDataKey: []byte(keyHash(forged))}
	record := trust.New(evilNS, trust.APIKeyRecordName(world.acmeKeyID), trust.ComponentAPIKeyRecord,
		trust.Owner{Namespace: victimNS, Name: "acme-ci", UID: "0"})

	cases := []struct {
		name    string
		c       client.Client
		sec     *corev1.Secret
		allowed bool
	}{
		{"eve plants an api-key-hash Secret in evil", world.eve, hash, false},
		{"eve plants an api-key-record Secret in evil", world.eve, record, false},
		{"eve plants signing keys in evil", world.eve, labelled(evilNS, "acme-signing-keys", tav1.ComponentSigningKeys), false},
		{"eve writes an unlabelled Secret in evil", world.eve, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: evilNS, Name: "plain"}}, true},
		{"the operator writes a record in the system namespace", operator, labelled(systemNS, "guard-operator", trust.ComponentAPIKeyRecord), true},
		{"the operator writes an API-key Secret in a tenant namespace", operator, labelled(evilNS, "guard-operator", tav1.ComponentAPIKey), true},
		{"the auth server writes a store record", authSA, labelled(systemNS, "guard-store", tav1.ComponentStore), true},
		{"the auth server writes an API-key record", authSA, labelled(systemNS, "guard-authserver", trust.ComponentAPIKeyRecord), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := newG(t)
			err := tc.c.Create(ctx, tc.sec)
			if err == nil {
				t.Cleanup(func() { _ = world.admin.Delete(ctx, tc.sec) })
			}
			if tc.allowed {
				g.Expect(err).NotTo(HaveOccurred())
			} else {
				g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "want Forbidden, got %v", err)
				g.Expect(err.Error()).To(ContainSubstring("written only by the tenantauth operator"))
			}
		})
	}

	t.Run("eve takes the label off her API-key Secret", func(t *testing.T) {
		g := newG(t)
		sec := &corev1.Secret{}
		g.Expect(world.eve.Get(ctx, client.ObjectKey{Namespace: evilNS, Name: "evil-ci"}, sec)).To(Succeed())
		p := client.MergeFrom(sec.DeepCopy())
		delete(sec.Labels, tav1.LabelComponent)
		err := world.eve.Patch(ctx, sec, p)
		g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "want Forbidden, got %v", err)
	})

	g.Expect(verifyKey(forged, "org=acme&scope=write")).To(Equal(401))
	victimWorks(g)
}

// guardInEffect waits until the applied policy objs refuses eve's
// labelled Secret, and removes them when the test ends, waiting again
// until eve may plant, so the other tests plant as eve whatever the order.
func guardInEffect(t *testing.T, g *WithT, objs []*unstructured.Unstructured) {
	ctx := world.ctx
	probe := labelled(evilNS, "guard-probe", tav1.ComponentAPIKeyHash)
	t.Cleanup(func() {
		for i := len(objs) - 1; i >= 0; i-- {
			_ = world.admin.Delete(ctx, objs[i])
		}
		g.Eventually(func() error { return world.eve.Create(ctx, probe.DeepCopy(), client.DryRunAll) }).Should(Succeed())
	})
	g.Eventually(func() bool {
		return apierrors.IsForbidden(world.eve.Create(ctx, probe.DeepCopy(), client.DryRunAll))
	}).Should(BeTrue(), "the policy takes effect")
}

// TestChartSecretGuard renders the Helm chart's secret guard for release
// "tenantauth" in tenantauth-system (with the template functions it uses,
// as sprig defines them) and checks the auth server may still write its
// store records under it, while eve may not plant.
//
// Old behaviour it catches: there was no policy.
func TestChartSecretGuard(t *testing.T) {
	g := newG(t)
	ctx := world.ctx
	applyShippedRBAC(g)
	objs := renderChartGuard(g)
	g.Expect(objs).To(HaveLen(2))
	for _, u := range objs {
		g.Expect(apply(u)).To(Succeed(), "apply the chart's %s", u.GetKind())
	}
	guardInEffect(t, g, objs)

	asUser, asGroups := serviceAccount(systemNS, "tenantauth-authserver")
	authSA := impersonate(g, asUser, asGroups...)
	store := labelled(systemNS, "chart-guard-store", tav1.ComponentStore)
	err := authSA.Create(ctx, store, client.DryRunAll)
	g.Expect(err).NotTo(HaveOccurred(), "the auth server writes a store record (every sign-in does)")
	err = world.eve.Create(ctx, labelled(evilNS, "chart-guard-plant", trust.ComponentAPIKeyRecord), client.DryRunAll)
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "eve plants a record: want Forbidden, got %v", err)
	victimWorks(g)
}

// renderChartGuard renders charts/tenantauth/templates/secret-guard.yaml
// with the default values.
func renderChartGuard(g Gomega) []*unstructured.Unstructured {
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "charts", "tenantauth", "templates", "secret-guard.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	includes := map[string]string{
		"tenantauth.fullname":                      "tenantauth",
		"tenantauth.labels":                        "app.kubernetes.io/name: tenantauth",
		"tenantauth.operator.serviceAccountName":   "tenantauth-operator",
		"tenantauth.authserver.serviceAccountName": "tenantauth-authserver",
	}
	tpl, err := template.New("guard").Funcs(template.FuncMap{
		"include": func(name string, _ any) (string, error) {
			if v, ok := includes[name]; ok {
				return v, nil
			}
			return "", fmt.Errorf("no helper %q", name)
		},
		// As sprig defines them.
		"quote":  func(s any) string { return fmt.Sprintf("%q", fmt.Sprint(s)) },
		"squote": func(s any) string { return fmt.Sprintf("'%v'", s) },
		"nindent": func(n int, s string) string {
			pad := strings.Repeat(" ", n)
			return "\n" + pad + strings.ReplaceAll(s, "\n", "\n"+pad)
		},
	}).Parse(string(raw))
	g.Expect(err).NotTo(HaveOccurred())
	var out bytes.Buffer
	g.Expect(tpl.Execute(&out, map[string]any{
		"Values":  map[string]any{"secretGuard": map[string]any{"enabled": true}},
		"Release": map[string]any{"Namespace": systemNS, "Name": "tenantauth"},
	})).To(Succeed())
	dec := utilyaml.NewYAMLOrJSONDecoder(&out, 4096)
	var objs []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			g.Expect(err).To(MatchError(io.EOF))
			break
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
	return objs
}
