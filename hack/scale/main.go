// Command scale measures the operator at scale on a local control plane:
// it starts envtest's kube-apiserver and etcd, runs `tenantauth operator`
// and `tenantauth authserver` as their own processes, applies 1,000
// Organizations, 10,000 Memberships and 1,000 APIKeys, and reports how long
// until all are Ready, how long until the auth server serves every
// organization, and both processes' peak RSS (VmHWM).
//
//	go build -o bin/tenantauth . && go run ./hack/scale
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/internal/testenv"
)

func main() {
	orgs := flag.Int("orgs", 1000, "Organizations")
	members := flag.Int("memberships", 10000, "Memberships, spread over the Organizations")
	keys := flag.Int("apikeys", 1000, "APIKeys, spread over the Organizations")
	binary := flag.String("binary", "bin/tenantauth", "the tenantauth binary")
	timeout := flag.Duration("timeout", 10*time.Minute, "give up after")
	flag.Parse()
	if err := run(*orgs, *members, *keys, *binary, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

func run(orgs, members, keys int, binary string, timeout time.Duration) error {
	env, cfg, err := testenv.Start()
	if err != nil {
		return err
	}
	defer env.Stop()
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = tav1.AddToScheme(scheme)
	cfg.QPS, cfg.Burst = 2000, 4000
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, ns := range []string{"tenantauth-system", "scale"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return err
		}
	}

	dir, _ := os.MkdirTemp("", "scale")
	defer os.RemoveAll(dir)
	kc := filepath.Join(dir, "kubeconfig")
	data, err := testenv.Kubeconfig(cfg, "scale")
	if err != nil {
		return err
	}
	if err := os.WriteFile(kc, data, 0o600); err != nil {
		return err
	}
	op := exec.Command(binary, "operator", "--enable-webhooks=false", "--metrics-bind-address=0",
		"--health-probe-bind-address=0", "--namespace=tenantauth-system", "--zap-log-level=error")
	op.Env = append(os.Environ(), "KUBECONFIG="+kc)
	op.Stdout, op.Stderr = os.Stderr, os.Stderr
	if err := op.Start(); err != nil {
		return fmt.Errorf("start operator: %w", err)
	}
	defer func() { _ = op.Process.Kill(); _, _ = op.Process.Wait() }()
	const authAddr = "127.0.0.1:18099"
	as := exec.Command(binary, "authserver", "--addr="+authAddr, "--metrics-addr=0", "--public-url=http://"+authAddr,
		"--namespace=tenantauth-system", "--store=memory", "--mailer=file", "--outbox-dir="+dir, "--zap-log-level=error")
	as.Env = op.Env
	as.Stdout, as.Stderr = os.Stderr, os.Stderr
	if err := as.Start(); err != nil {
		return fmt.Errorf("start auth server: %w", err)
	}
	defer func() { _ = as.Process.Kill(); _, _ = as.Process.Wait() }()

	start := time.Now()
	var objs []client.Object
	for i := range orgs {
		objs = append(objs, &tav1.Organization{ObjectMeta: metav1.ObjectMeta{Namespace: "scale", Name: fmt.Sprintf("org-%04d", i)}})
	}
	for i := range members {
		objs = append(objs, &tav1.Membership{ObjectMeta: metav1.ObjectMeta{Namespace: "scale", Name: fmt.Sprintf("m-%05d", i)},
			Spec: tav1.MembershipSpec{Organization: fmt.Sprintf("org-%04d", i%orgs), Email: fmt.Sprintf("user%d@example.com", i), Role: "member"}})
	}
	for i := range keys {
		objs = append(objs, &tav1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: "scale", Name: fmt.Sprintf("k-%04d", i)},
			Spec: tav1.APIKeySpec{Organization: fmt.Sprintf("org-%04d", i%orgs)}})
	}
	if err := createAll(ctx, c, objs); err != nil {
		return err
	}
	applied := time.Since(start)
	fmt.Printf("applied %d objects in %s\n", len(objs), applied.Round(time.Millisecond))

	peak := 0
	for {
		if kb := vmHWM(op.Process.Pid); kb > peak {
			peak = kb
		}
		o, m, k, err := readyCounts(ctx, c)
		if err != nil {
			return err
		}
		if o == orgs && m == members && k == keys {
			fmt.Printf("all Ready %s after the first apply (%s after the last)\n",
				time.Since(start).Round(time.Millisecond), (time.Since(start) - applied).Round(time.Millisecond))
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("timed out: ready orgs %d/%d, memberships %d/%d, apikeys %d/%d", o, orgs, m, members, k, keys)
		case <-time.After(time.Second):
		}
	}
	for {
		n, err := servedOrgs("http://" + authAddr)
		if err == nil && n == orgs {
			fmt.Printf("auth server serves all %d organizations %s after the first apply\n", n, time.Since(start).Round(time.Millisecond))
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("timed out: the auth server serves %d/%d organizations (%v)", n, orgs, err)
		case <-time.After(time.Second):
		}
	}
	time.Sleep(5 * time.Second) // let a resync-free steady state settle
	if kb := vmHWM(op.Process.Pid); kb > peak {
		peak = kb
	}
	fmt.Printf("operator peak RSS (VmHWM): %.1f MiB\n", float64(peak)/1024)
	fmt.Printf("auth server peak RSS (VmHWM): %.1f MiB\n", float64(vmHWM(as.Process.Pid))/1024)
	return nil
}

// servedOrgs counts the organizations whose keys the auth server's
// all-organizations JWKS publishes (one active key each at this scale).
func servedOrgs(base string) (int, error) {
	resp, err := http.Get(base + "/.well-known/jwks.json")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var jwks struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&jwks); err != nil {
		return 0, err
	}
	return len(jwks.Keys), nil
}

func createAll(ctx context.Context, c client.Client, objs []client.Object) error {
	work := make(chan client.Object)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range 16 {
		wg.Go(func() {
			for o := range work {
				if err := c.Create(ctx, o); err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("create %s: %w", o.GetName(), err)
					}
					mu.Unlock()
				}
			}
		})
	}
	for _, o := range objs {
		work <- o
	}
	close(work)
	wg.Wait()
	return first
}

func readyCounts(ctx context.Context, c client.Client) (orgs, members, keys int, err error) {
	var ol tav1.OrganizationList
	var ml tav1.MembershipList
	var kl tav1.APIKeyList
	for _, l := range []client.ObjectList{&ol, &ml, &kl} {
		if err := c.List(ctx, l, client.InNamespace("scale")); err != nil {
			return 0, 0, 0, err
		}
	}
	for _, o := range ol.Items {
		if meta.IsStatusConditionTrue(o.Status.Conditions, tav1.ConditionReady) {
			orgs++
		}
	}
	for _, m := range ml.Items {
		if meta.IsStatusConditionTrue(m.Status.Conditions, tav1.ConditionReady) {
			members++
		}
	}
	for _, k := range kl.Items {
		if meta.IsStatusConditionTrue(k.Status.Conditions, tav1.ConditionReady) {
			keys++
		}
	}
	return orgs, members, keys, nil
}

func vmHWM(pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			kb, _ := strconv.Atoi(f[1])
			return kb
		}
	}
	return 0
}
