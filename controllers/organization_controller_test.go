package controllers

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/internal/signingkeys"
	"github.com/tenantauth/tenantauth/internal/trust"
)

// writeCounter wraps a client and counts every write it sends.
func writeCounter(c client.Client, n *int) client.Client {
	return interceptor.NewClient(c.(client.WithWatch), interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.CreateOption) error {
			*n++
			return c.Create(ctx, o, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.UpdateOption) error {
			*n++
			return c.Update(ctx, o, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, o client.Object, p client.Patch, opts ...client.PatchOption) error {
			*n++
			return c.Patch(ctx, o, p, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.DeleteOption) error {
			*n++
			return c.Delete(ctx, o, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, o client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
			*n++
			return c.SubResource(sub).Patch(ctx, o, p, opts...)
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, o client.Object, opts ...client.SubResourceUpdateOption) error {
			*n++
			return c.SubResource(sub).Update(ctx, o, opts...)
		},
	})
}

func withWatch(t *testing.T) client.WithWatch {
	t.Helper()
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func reconcileOrg(t *testing.T, r *OrganizationReconciler, org *tav1.Organization) (ctrl.Result, error) {
	t.Helper()
	return r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(org)})
}

func loadKeys(t *testing.T, org *tav1.Organization) *signingkeys.Set {
	t.Helper()
	var s corev1.Secret
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(org), org); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: systemNS, Name: trust.SigningKeysName(org.Status.ID)}, &s); err != nil {
		t.Fatalf("get signing keys: %v", err)
	}
	set, err := signingkeys.Parse(s.Data[signingkeys.DataKey])
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func TestOrganizationKeysRotateAndPrune(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	org := newOrg(ns, "acme")
	org.Spec.Signing.RotationInterval = &metav1.Duration{Duration: time.Hour}
	org.Spec.Sessions.AccessTokenTTL = &metav1.Duration{Duration: 10 * time.Minute}
	g.Expect(k8s.Create(ctx, org)).To(Succeed())

	clk := &clock{t: time.Now().UTC().Truncate(time.Second)}
	writes := 0
	c := withWatch(t)
	r := &OrganizationReconciler{Client: writeCounter(c, &writes), APIReader: c, Recorder: nopRecorder{}, Now: clk.Now, SystemNamespace: systemNS}

	res, err := reconcileOrg(t, r, org)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.RequeueAfter).To(BeNumerically("~", time.Hour, time.Second), "the next wake-up is the rotation time")
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(org), org)).To(Succeed())
	g.Expect(org.Status.ID).To(MatchRegexp(`^org_[0-9a-z]{26}$`))
	g.Expect(org.Status.Keys).To(HaveLen(1))
	g.Expect(org.Status.ActiveKeyID).To(Equal(org.Status.Keys[0].KID))
	g.Expect(org.Status.Keys[0].Algorithm).To(Equal(tav1.AlgES256))
	g.Expect(org.Status.ObservedGeneration).To(Equal(org.Generation))
	firstID, firstKID := org.Status.ID, org.Status.ActiveKeyID

	t.Run("steady state writes nothing", func(t *testing.T) {
		writes = 0
		for range 3 {
			if _, err := reconcileOrg(t, r, org); err != nil {
				t.Fatal(err)
			}
		}
		if writes != 0 {
			t.Fatalf("steady-state reconciles sent %d writes, want 0", writes)
		}
	})

	t.Run("rotation publishes ahead and retires the old key", func(t *testing.T) {
		g := NewWithT(t)
		clk.t = clk.t.Add(time.Hour)
		_, err := reconcileOrg(t, r, org)
		g.Expect(err).NotTo(HaveOccurred())
		set := loadKeys(t, org)
		g.Expect(set.Entries).To(HaveLen(2))
		g.Expect(set.Entries[0].KID).To(Equal(firstKID))
		g.Expect(set.Entries[0].RetiresAt).To(Equal(set.Entries[1].ActiveFrom.Add(10*time.Minute + signingkeys.RetireMargin)))
		active, _ := set.Active(clk.t)
		g.Expect(active.KID).To(Equal(firstKID), "the new key is published before it signs")
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(org), org)).To(Succeed())
		g.Expect(org.Status.ID).To(Equal(firstID), "the organization ID never changes")
		g.Expect(org.Status.Keys).To(HaveLen(2))

		clk.t = set.Entries[1].ActiveFrom
		_, err = reconcileOrg(t, r, org)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(org), org)).To(Succeed())
		g.Expect(org.Status.ActiveKeyID).To(Equal(set.Entries[1].KID))
	})

	t.Run("a retired key is pruned after its window", func(t *testing.T) {
		g := NewWithT(t)
		clk.t = clk.t.Add(10*time.Minute + signingkeys.RetireMargin)
		_, err := reconcileOrg(t, r, org)
		g.Expect(err).NotTo(HaveOccurred())
		set := loadKeys(t, org)
		g.Expect(set.Entries).To(HaveLen(1))
		g.Expect(set.Entries[0].KID).NotTo(Equal(firstKID))
	})

	t.Run("algorithm change rotates to the new algorithm", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(org), org)).To(Succeed())
		org.Spec.Signing.Algorithm = tav1.AlgEdDSA
		g.Expect(k8s.Update(ctx, org)).To(Succeed())
		_, err := reconcileOrg(t, r, org)
		g.Expect(err).NotTo(HaveOccurred())
		set := loadKeys(t, org)
		g.Expect(set.Entries).To(HaveLen(2))
		g.Expect(set.Entries[1].Algorithm).To(Equal("EdDSA"))
	})
}

// TestOrganizationRotationSurvivesCrash kills the reconcile between its
// Secret write and its status write, then runs it again: the new key is
// neither lost nor made twice.
func TestOrganizationRotationSurvivesCrash(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	org := newOrg(ns, "crashy")
	org.Spec.Signing.RotationInterval = &metav1.Duration{Duration: time.Hour}
	g.Expect(k8s.Create(ctx, org)).To(Succeed())
	clk := &clock{t: time.Now().UTC().Truncate(time.Second)}
	healthy := &OrganizationReconciler{Client: withWatch(t), APIReader: k8s, Recorder: nopRecorder{}, Now: clk.Now, SystemNamespace: systemNS}
	_, err := reconcileOrg(t, healthy, org)
	g.Expect(err).NotTo(HaveOccurred())

	crashing := &OrganizationReconciler{Recorder: nopRecorder{}, Now: clk.Now, APIReader: k8s, SystemNamespace: systemNS,
		Client: interceptor.NewClient(withWatch(t), interceptor.Funcs{
			SubResourcePatch: func(context.Context, client.Client, string, client.Object, client.Patch, ...client.SubResourcePatchOption) error {
				return errors.New("operator killed")
			},
		})}
	clk.t = clk.t.Add(time.Hour)
	_, err = reconcileOrg(t, crashing, org)
	g.Expect(err).To(MatchError(ContainSubstring("operator killed")))
	afterCrash := loadKeys(t, org)
	g.Expect(afterCrash.Entries).To(HaveLen(2), "the Secret write happened before the crash")

	_, err = reconcileOrg(t, healthy, org)
	g.Expect(err).NotTo(HaveOccurred())
	again := loadKeys(t, org)
	g.Expect(again.Entries).To(HaveLen(2), "a second run makes no second new key")
	for i := range again.Entries {
		g.Expect(again.Entries[i].KID).To(Equal(afterCrash.Entries[i].KID))
	}
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(org), org)).To(Succeed())
	g.Expect(org.Status.Keys).To(HaveLen(2))
	g.Expect(org.Status.Keys[1].KID).To(Equal(afterCrash.Entries[1].KID))
}

func TestOrganizationWithManager(t *testing.T) {
	startManager(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)

	t.Run("each algorithm gets a key and Ready", func(t *testing.T) {
		for _, alg := range []tav1.SigningAlgorithm{tav1.AlgES256, tav1.AlgEdDSA, tav1.AlgRS256} {
			org := newOrg(ns, "org-"+strings.ToLower(string(alg)))
			org.Spec.Signing.Algorithm = alg
			g.Expect(k8s.Create(ctx, org)).To(Succeed())
			g.Eventually(func(g Gomega) {
				g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(org), org)).To(Succeed())
				g.Expect(findReady(org.Status.Conditions)).NotTo(BeNil())
				g.Expect(findReady(org.Status.Conditions).Status).To(Equal(metav1.ConditionTrue))
				g.Expect(org.Status.Keys).To(HaveLen(1))
				g.Expect(org.Status.Keys[0].Algorithm).To(Equal(alg))
			}).WithTimeout(20 * time.Second).Should(Succeed())
		}
	})

	t.Run("a deleted record is made again at once", func(t *testing.T) {
		org := &tav1.Organization{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "org-es256"}, org)).To(Succeed())
		s := &corev1.Secret{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: systemNS, Name: trust.SigningKeysName(org.Status.ID)}, s)).To(Succeed())
		g.Expect(org.Status.SigningKeySecret).To(Equal(systemNS + "/" + s.Name))
		g.Expect(s.Labels).To(HaveKeyWithValue(tav1.LabelComponent, tav1.ComponentSigningKeys))
		g.Expect(s.Labels).To(HaveKeyWithValue(trust.LabelOwnerUID, string(org.UID)))
		g.Expect(s.Annotations).To(HaveKeyWithValue(tav1.AnnotationOrganizationID, org.Status.ID))
		oldID := org.Status.ID
		g.Expect(k8s.Delete(ctx, s)).To(Succeed())
		// The keys are gone with the record, and status (which a tenant may
		// write) is no source of IDs: the Organization gets a new record
		// under a new ID, and status follows it.
		g.Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(org), org)).To(Succeed())
			g.Expect(org.Status.ID).NotTo(Equal(oldID))
			fresh := &corev1.Secret{}
			g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: systemNS, Name: trust.SigningKeysName(org.Status.ID)}, fresh)).To(Succeed())
			g.Expect(fresh.Labels).To(HaveKeyWithValue(trust.LabelOwnerUID, string(org.UID)))
		}).WithTimeout(10 * time.Second).Should(Succeed())
	})

	t.Run("a Secret named like the old key Secret is left alone", func(t *testing.T) {
		foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "taken-signing-keys"}, StringData: map[string]string{"x": "mine"}}
		g.Expect(k8s.Create(ctx, foreign)).To(Succeed())
		org := newOrg(ns, "taken")
		g.Expect(k8s.Create(ctx, org)).To(Succeed())
		g.Eventually(func(g Gomega) {
			g.Expect(readyOf(g, org, &org.Status.Conditions).Status).To(Equal(metav1.ConditionTrue))
		}).WithTimeout(10 * time.Second).Should(Succeed())
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(foreign), foreign)).To(Succeed())
		g.Expect(foreign.Data).To(Equal(map[string][]byte{"x": []byte("mine")}))
	})
}

func TestOrganizationSchemaRejectsBadInput(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	tests := []struct {
		name   string
		mutate func(*tav1.Organization)
		field  string
	}{
		{"bad slug", func(o *tav1.Organization) { o.Spec.Slug = "Not_A_Label" }, "spec.slug"},
		{"bad algorithm", func(o *tav1.Organization) { o.Spec.Signing.Algorithm = "HS256" }, "spec.signing.algorithm"},
		{"unparsable TTL", func(o *tav1.Organization) { o.Spec.Sessions.AccessTokenTTL = &metav1.Duration{Duration: -time.Second} }, "spec.sessions.accessTokenTTL"},
		{"too short TTL", func(o *tav1.Organization) {
			o.Spec.Sessions.AccessTokenTTL = &metav1.Duration{Duration: time.Millisecond}
		}, "spec.sessions.accessTokenTTL"},
		{"absolute below idle", func(o *tav1.Organization) {
			o.Spec.Sessions.RefreshTokenIdleTTL = &metav1.Duration{Duration: 2 * time.Hour}
			o.Spec.Sessions.RefreshTokenAbsoluteTTL = &metav1.Duration{Duration: time.Hour}
		}, "spec.sessions"},
		{"custom role shadows a built-in", func(o *tav1.Organization) {
			o.Spec.Roles = []tav1.Role{{Name: "owner", Rank: 5}}
		}, "spec.roles[0].name"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			org := newOrg(ns, "bad-"+string(rune('a'+i)))
			tt.mutate(org)
			err := k8s.Create(ctx, org)
			if err == nil {
				t.Fatal("created, want rejection")
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("error %q does not name %s", err, tt.field)
			}
		})
	}

	t.Run("slug is immutable", func(t *testing.T) {
		g := NewWithT(t)
		org := newOrg(ns, "fixed")
		org.Spec.Slug = "fixed"
		g.Expect(k8s.Create(ctx, org)).To(Succeed())
		org.Spec.Slug = "moved"
		g.Expect(k8s.Update(ctx, org)).To(MatchError(ContainSubstring("spec.slug is immutable")))
	})
}
