package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	tenantauthv1alpha1 "github.com/tenantauth/tenantauth/api/v1alpha1"
)

// benchMemberships is how many Memberships the benchmark organization has:
// the size at which a per-request List or scan would show.
const benchMemberships = 10000

var (
	benchOnce sync.Once
	benchTeam team
	benchErr  error
)

// BenchmarkMembershipCreateAdmission measures the admission handlers of a
// Membership create, called directly with a crafted request, against the
// manager's cache holding one organization with 10,000 Memberships. It
// reports p50 and p99 latency per request (mutating and validating handler
// together) and fails if a request reads from the API server instead of the
// cache.
//
//	go test ./webhook/ -run '^$' -bench MembershipCreateAdmission -benchtime 20000x
func BenchmarkMembershipCreateAdmission(b *testing.B) {
	benchOnce.Do(func() { benchTeam, benchErr = fillBenchOrganization(b) })
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	tm := benchTeam
	live := &countingReader{Reader: mgr.GetAPIReader()}
	v, err := newValidatorsWith(mgr.GetCache(), live, Options{})
	if err != nil {
		b.Fatal(err)
	}
	validate := admission.WithValidator(scheme, v.membership)
	mutate := admission.WithDefaulter(scheme, &MembershipDefaulter{})

	cases := []struct{ name, requester, role string }{
		{"admin-creates-member", "admin", "member"},
		{"owner-creates-owner", "owner", "owner"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			reqs := make([]admission.Request, b.N)
			for i := range reqs {
				reqs[i] = createRequest(b, tm, c.requester, fmt.Sprintf("new-%s-%d", c.name, i), c.role)
			}
			latencies := make([]time.Duration, b.N)
			live.calls.Store(0)
			ctx := context.Background()
			b.ResetTimer()
			for i := range b.N {
				start := time.Now()
				m := mutate.Handle(ctx, reqs[i])
				r := validate.Handle(ctx, reqs[i])
				latencies[i] = time.Since(start)
				if !m.Allowed || !r.Allowed {
					b.Fatalf("request %d denied: mutate %+v validate %+v", i, m.Result, r.Result)
				}
			}
			b.StopTimer()
			if n := live.calls.Load(); n > 0 {
				b.Fatalf("%d API server reads during %d admissions: want none", n, b.N)
			}
			slices.Sort(latencies)
			b.ReportMetric(float64(percentile(latencies, 50).Nanoseconds()), "p50-ns")
			b.ReportMetric(float64(percentile(latencies, 99).Nanoseconds()), "p99-ns")
			b.ReportMetric(float64(latencies[len(latencies)-1].Nanoseconds()), "max-ns")
		})
	}
}

func percentile(sorted []time.Duration, p int) time.Duration {
	return sorted[(len(sorted)-1)*p/100]
}

// createRequest is the AdmissionRequest the API server sends when
// requester creates a Membership with role for a new email.
func createRequest(b *testing.B, tm team, requester, name, role string) admission.Request {
	m := membership(tm.ns, name, tm.org, name+"@bench.test", role)
	m.SetGroupVersionKind(tenantauthv1alpha1.GroupVersion.WithKind("Membership"))
	raw, err := json.Marshal(m)
	if err != nil {
		b.Fatal(err)
	}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "bench", Operation: admissionv1.Create, Namespace: tm.ns, Name: name,
		Kind:     metav1.GroupVersionKind{Group: "tenantauth.io", Version: "v1alpha1", Kind: "Membership"},
		Resource: metav1.GroupVersionResource{Group: "tenantauth.io", Version: "v1alpha1", Resource: "memberships"},
		UserInfo: authenticationv1.UserInfo{Username: tm.email(requester), Groups: []string{"system:authenticated"}},
		Object:   runtime.RawExtension{Raw: raw},
	}}
}

// fillBenchOrganization makes an organization with one Membership per
// built-in role plus benchMemberships members, through the API server and
// the webhooks, and waits until the manager's cache holds them all.
func fillBenchOrganization(b *testing.B) (team, error) {
	ns := newNamespace(b)
	tm := team{ns: ns, org: ns + "-bench"}
	rc := rest.CopyConfig(cfg)
	rc.QPS, rc.Burst = 1000, 2000
	c, err := client.New(rc, client.Options{Scheme: scheme, Mapper: admin.RESTMapper()})
	if err != nil {
		return tm, err
	}
	if err := c.Create(testCtx, org(ns, tm.org)); err != nil {
		return tm, err
	}
	for _, r := range builtinRoleNames {
		if err := c.Create(testCtx, membership(ns, r, tm.org, tm.email(r), r)); err != nil {
			return tm, err
		}
	}
	start := time.Now()
	var (
		next     atomic.Int64
		firstErr error
		errOnce  sync.Once
		wg       sync.WaitGroup
	)
	for range 8 {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < benchMemberships; i = next.Add(1) - 1 {
				m := membership(ns, fmt.Sprintf("m-%05d", i), tm.org, fmt.Sprintf("user-%05d@bench.test", i), "member")
				if err := c.Create(testCtx, m); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return tm, firstErr
	}
	want := benchMemberships + len(builtinRoleNames)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var list tenantauthv1alpha1.MembershipList
		if err := mgr.GetCache().List(testCtx, &list, client.InNamespace(ns), client.UnsafeDisableDeepCopy); err != nil {
			return tm, err
		}
		if len(list.Items) == want {
			break
		}
		if time.Now().After(deadline) {
			return tm, fmt.Errorf("cache holds %d of %d Memberships", len(list.Items), want)
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.Logf("created %d Memberships through the webhooks in %s", want, time.Since(start).Round(time.Millisecond))
	return tm, nil
}

// countingReader counts reads that reach the API server.
type countingReader struct {
	client.Reader
	calls atomic.Int64
}

func (r *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	r.calls.Add(1)
	return r.Reader.Get(ctx, key, obj, opts...)
}

func (r *countingReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	r.calls.Add(1)
	return r.Reader.List(ctx, list, opts...)
}
