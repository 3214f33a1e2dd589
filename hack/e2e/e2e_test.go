//go:build e2e

// Package e2e is the end-to-end test of tenantauth on a real single-node
// cluster: hack/e2e/run.sh (make e2e) brings the cluster up, imports the
// images, runs this test and tears everything down. The test installs the
// Helm chart and checks the product the way a user meets it. All of its
// HTTP traffic goes to 127.0.0.1, through kubectl port-forward.
package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestE2E(t *testing.T) {
	c := loadConfig(t)
	if !t.Run("cluster", c.testCluster) {
		return
	}
	if os.Getenv("E2E_CLUSTER_ONLY") == "1" {
		t.Log("E2E_CLUSTER_ONLY=1: the tenantauth checks are skipped")
		return
	}
	t.Run("invalid values fail at the schema", c.testInvalidValues)
	if !t.Run("helm install", c.testInstall) {
		return
	}
	if !t.Run("samples and tenant objects", c.testObjects) {
		return
	}
	t.Run("health and JWKS", c.testHealthAndJWKS)
	t.Run("API key verify and revoke", c.testVerifyAndRevoke)
	t.Run("admission denies", c.testAdmission)
	t.Run("idle RSS", c.testRSS)
	t.Run("verify while an auth server pod is deleted", c.testPodDeletion)
	t.Run("uninstall keeps CRDs, reinstall keeps keys", c.testReinstall)
	t.Run("kustomize default passes server-side validation", c.testKustomize)
}

// testKustomize checks that config/default builds and that the API server
// accepts every object in it (a server-side dry run: nothing changes).
func (c config) testKustomize(t *testing.T) {
	out, err := c.kubectl("apply", "-k", "../../config/default", "--dry-run=server") // go test runs in hack/e2e
	if err != nil {
		t.Fatalf("kubectl apply -k config/default --dry-run=server: %v\n%s", err, out)
	}
	for _, want := range []string{"deployment.apps/tenantauth-operator", "deployment.apps/tenantauth-authserver", "validatingwebhookconfiguration.admissionregistration.k8s.io/tenantauth-validating-webhook-configuration"} {
		if !strings.Contains(out, want) {
			t.Errorf("config/default has no %s:\n%s", want, out)
		}
	}
}

// testCluster proves the cluster itself: pods, a Service, logs and a
// port-forward.
func (c config) testCluster(t *testing.T) {
	c.apply(t, echo)
	c.mustKubectl(t, "-n", "default", "rollout", "status", "deploy/echo", "--timeout=90s")
	url := c.portForward(t, "default", "svc/echo", 80)
	r, err := get(url+"/hello", nil)
	if err != nil || r.status != 200 || !strings.Contains(r.body, "echo from echo-") {
		t.Fatalf("GET /hello through the echo Service: %v %d %q", err, r.status, r.body)
	}
	c.mustKubectl(t, "-n", "default", "logs", "deploy/echo")
	c.mustKubectl(t, "-n", "default", "delete", "deploy/echo", "svc/echo", "--wait=false")
}

func (c config) testInvalidValues(t *testing.T) {
	cases := []struct {
		name  string
		args  []string
		value string
	}{
		{"replicas not an integer", []string{"--set", "operator.replicas=two"}, "/operator/replicas"},
		{"replicas a fraction", []string{"--set-json", "authserver.replicas=1.5"}, "/authserver/replicas"},
		{"unknown store", []string{"--set", "store.backend=redis"}, "/store/backend"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := c.helmCmd(time.Minute, c.installArgs(tc.args...)...)
			if err == nil {
				t.Fatalf("helm install %v succeeded", tc.args)
			}
			if !strings.Contains(out, tc.value) {
				t.Fatalf("helm install %v: the error does not name %s:\n%s", tc.args, tc.value, out)
			}
		})
	}
	if out, err := c.helmCmd(time.Minute, "status", c.release, "-n", c.namespace); err == nil {
		t.Fatalf("a release exists after the invalid installs:\n%s", out)
	}
}

// testInstall installs the chart and measures the time to every pod Ready.
func (c config) testInstall(t *testing.T) {
	start := time.Now()
	out, err := c.helmCmd(6*time.Minute, c.installArgs("--wait", "--timeout", "5m")...)
	if err != nil {
		c.dumpNamespace(t)
		t.Fatalf("helm install: %v\n%s", err, out)
	}
	metric(t, "helm_install_wait", time.Since(start).Round(100*time.Millisecond).Seconds(), "s")
	c.mustKubectl(t, "-n", c.namespace, "wait", "pods", "--all", "--for=condition=Ready", "--timeout=3m")
	metric(t, "helm_install_to_all_pods_ready", time.Since(start).Round(100*time.Millisecond).Seconds(), "s")
	c.waitForWebhooks(t)
	metric(t, "helm_install_to_webhooks_serving", time.Since(start).Round(100*time.Millisecond).Seconds(), "s")
	restarts := c.mustKubectl(t, "-n", c.namespace, "get", "pods", "-o",
		`jsonpath={range .items[*]}{.metadata.labels.app\.kubernetes\.io/component}={.status.containerStatuses[0].restartCount} {end}`)
	metric(t, "container_restarts_during_install", strings.TrimSpace(restarts), "")
}

// waitForWebhooks waits until the API server can call the webhooks: a
// server-side dry run of an Organization passes through them.
func (c config) waitForWebhooks(t *testing.T) {
	t.Helper()
	probe := "apiVersion: tenantauth.io/v1alpha1\nkind: Organization\nmetadata: {name: webhook-probe, namespace: default}\nspec: {}\n"
	eventually(t, 3*time.Minute, time.Second, "the webhooks answer", func() error {
		_, err := run(20*time.Second, probe, c.kubectlBin, "create", "--dry-run=server", "-f", "-")
		return err
	})
}

func (c config) testObjects(t *testing.T) {
	if c.samples != "" {
		args := []string{"apply", "-f", c.samples, "-R"}
		if _, err := os.Stat(c.samples + "/kustomization.yaml"); err == nil {
			args = []string{"apply", "-k", c.samples}
		}
		c.mustKubectl(t, args...)
	}
	c.apply(t, tenantObjects)
	for _, o := range []string{"org/" + orgSlug, "org/" + otherSlug, "mbr/owner", "mbr/viewer", "apikey/" + keyName, "apikey/" + loadKey} {
		c.mustKubectl(t, "-n", tenantNS, "wait", o, "--for=condition=Ready", "--timeout=90s")
	}
	if c.samples != "" {
		c.mustKubectl(t, "wait", "org,mbr,apikey", "--all", "--all-namespaces", "--for=condition=Ready", "--timeout=90s")
	}
}

func (c config) authURL(t *testing.T) string {
	return c.portForward(t, c.namespace, "svc/"+c.release+"-authserver", 80)
}

func (c config) jwksKIDs(t *testing.T, url string) []string {
	t.Helper()
	var kids []string
	eventually(t, 30*time.Second, 500*time.Millisecond, "JWKS of "+orgSlug, func() error {
		r, err := get(url+"/orgs/"+orgSlug+"/.well-known/jwks.json", nil)
		if err != nil {
			return err
		}
		if r.status != 200 {
			return fmt.Errorf("status %d: %s", r.status, r.body)
		}
		var set struct {
			Keys []struct {
				KID string `json:"kid"`
				KTY string `json:"kty"`
				D   string `json:"d"`
			} `json:"keys"`
		}
		if err := json.Unmarshal([]byte(r.body), &set); err != nil {
			return fmt.Errorf("decode %q: %w", r.body, err)
		}
		kids = nil
		for _, k := range set.Keys {
			if k.D != "" {
				t.Fatalf("the JWKS publishes a private key: %s", r.body)
			}
			if k.KID == "" || k.KTY == "" {
				return fmt.Errorf("key without kid or kty: %s", r.body)
			}
			kids = append(kids, k.KID)
		}
		if len(kids) == 0 {
			return fmt.Errorf("no keys: %s", r.body)
		}
		return nil
	})
	sort.Strings(kids)
	return kids
}

func (c config) testHealthAndJWKS(t *testing.T) {
	url := c.authURL(t)
	r, err := get(url+"/health", nil)
	if err != nil || r.status != 200 || !strings.Contains(r.body, `"ok"`) {
		t.Fatalf("GET /health: %v %d %q", err, r.status, r.body)
	}
	if r, err := get(url+"/readyz", nil); err != nil || r.status != 200 {
		t.Fatalf("GET /readyz: %v %d %q", err, r.status, r.body)
	}
	kids := c.jwksKIDs(t, url)
	status := c.mustKubectl(t, "-n", tenantNS, "get", "org", orgSlug, "-o", "jsonpath={.status.activeKeyID}")
	if !contains(kids, status) {
		t.Fatalf("the active key %q of %s is not in its JWKS %v", status, orgSlug, kids)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (c config) apiKey(t *testing.T, name string) string {
	t.Helper()
	b64 := c.mustKubectl(t, "-n", tenantNS, "get", "secret", name, "-o", "jsonpath={.data.api-key}")
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || !strings.HasPrefix(string(key), "osk_") {
		t.Fatalf("Secret %s/%s holds no osk_ key (%v)", tenantNS, name, err)
	}
	return string(key)
}

func (c config) testVerifyAndRevoke(t *testing.T) {
	url := c.authURL(t)
	key := c.apiKey(t, keyName)
	bearer := map[string]string{"Authorization": "Bearer " + key}
	verify := url + "/verify?org=" + orgSlug

	var r response
	eventually(t, 30*time.Second, 200*time.Millisecond, "the key passes /verify", func() error {
		var err error
		r, err = get(verify+"&scope=read", bearer)
		if err != nil {
			return err
		}
		if r.status != 200 {
			return fmt.Errorf("status %d: %s", r.status, r.body)
		}
		return nil
	})
	if got := r.header.Get("X-Auth-Org-Slug"); got != orgSlug {
		t.Errorf("X-Auth-Org-Slug = %q, want %q", got, orgSlug)
	}
	if r.header.Get("X-Auth-Key-Id") == "" || r.header.Get("X-Auth-Org-Id") == "" {
		t.Errorf("X-Auth-Key-Id or X-Auth-Org-Id missing: %v", r.header)
	}
	if got := r.header.Get("X-Auth-Scopes"); !strings.Contains(got, "read") {
		t.Errorf("X-Auth-Scopes = %q, want read in it", got)
	}
	if r, err := get(url+"/verify?org="+otherSlug, bearer); err != nil || r.status != 403 {
		t.Errorf("/verify for another organization: %v %d, want 403", err, r.status)
	}
	if r, err := get(verify+"&scope=admin", bearer); err != nil || r.status != 403 {
		t.Errorf("/verify with a scope the key lacks: %v %d, want 403", err, r.status)
	}
	if r, err := get(verify, nil); err != nil || r.status != 401 || r.header.Get("WWW-Authenticate") == "" {
		t.Errorf("/verify without credentials: %v %d %v, want 401 with WWW-Authenticate", err, r.status, r.header)
	}

	c.mustKubectl(t, "-n", tenantNS, "patch", "apikey", keyName, "--type=merge", "-p", `{"spec":{"revoked":true}}`)
	start := time.Now()
	for {
		r, err := get(verify, bearer)
		if err == nil && r.status == 401 {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("the revoked key still passes after 10s: %v %d", err, r.status)
		}
		time.Sleep(25 * time.Millisecond)
	}
	took := time.Since(start)
	metric(t, "revoke_to_401", took.Milliseconds(), "ms")
	if took > 2*time.Second {
		t.Errorf("the revoked key stopped working after %s, want within 2s", took)
	}
}

func (c config) testAdmission(t *testing.T) {
	// Only the validating webhook knows whether another object exists; it
	// answers with a field error, which the API server passes on as Invalid.
	out, err := run(30*time.Second, memberOfMissingOrg, c.kubectlBin, "create", "-f", "-")
	switch {
	case err == nil:
		t.Errorf("a Membership of a missing Organization was admitted")
	case strings.Contains(out, "failed calling webhook") || !strings.Contains(out, "spec.organization"):
		t.Errorf("a Membership of a missing Organization failed, but not by the webhook's validation: %s", out)
	}
	// Kubernetes RBAC allows the viewer to write APIKeys; the webhook's role
	// table does not.
	out, err = run(30*time.Second, viewerKey, c.kubectlBin, "--as", viewer, "create", "-f", "-")
	switch {
	case err == nil:
		t.Errorf("a viewer created an admin APIKey")
	case !strings.Contains(out, "admission webhook") || !strings.Contains(out, "denied the request"):
		t.Errorf("a viewer's APIKey failed, but not in admission: %s", out)
	}
	if _, err := c.kubectl("--as", viewer, "-n", tenantNS, "get", "apikeys"); err != nil {
		t.Errorf("the viewer cannot even read, so RBAC is in the way: %v", err)
	}
}

func (c config) testRSS(t *testing.T) {
	time.Sleep(10 * time.Second) // idle: nothing but the informers' watches
	for _, comp := range []string{"operator", "authserver"} {
		rss := c.podRSS(t, c.namespace, "app.kubernetes.io/component="+comp)
		if len(rss) == 0 {
			t.Fatalf("no %s pods", comp)
		}
		for pod, kib := range rss {
			metric(t, "idle_rss_"+comp+"{pod="+pod+"}", fmt.Sprintf("%.1f", float64(kib)/1024), "MiB")
		}
	}
}

// testPodDeletion deletes one auth server pod while clients keep calling
// /verify through the Service and counts the calls that failed.
func (c config) testPodDeletion(t *testing.T) {
	ip := c.mustKubectl(t, "-n", c.namespace, "get", "svc", c.release+"-authserver", "-o", "jsonpath={.spec.clusterIP}")
	c.apply(t, proxy("http://"+ip+":80"))
	c.mustKubectl(t, "-n", tenantNS, "rollout", "status", "deploy/verify-proxy", "--timeout=90s")
	url := c.portForward(t, tenantNS, "deploy/verify-proxy", 8080) + "/verify?org=" + orgSlug
	bearer := map[string]string{"Authorization": "Bearer " + c.apiKey(t, loadKey)}
	eventually(t, 30*time.Second, 200*time.Millisecond, "/verify through the proxy", func() error {
		r, err := get(url, bearer)
		if err == nil && r.status != 200 {
			err = fmt.Errorf("status %d: %s", r.status, r.body)
		}
		return err
	})

	var calls, failed atomic.Int64
	var mu sync.Mutex
	var failures []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 20000; n++ {
				select {
				case <-stop:
					return
				default:
				}
				r, err := get(url, bearer)
				calls.Add(1)
				if err != nil || r.status != 200 {
					failed.Add(1)
					mu.Lock()
					if len(failures) < 10 {
						failures = append(failures, fmt.Sprintf("%s: %v %d %s", time.Now().Format("15:04:05.000"), err, r.status, r.body))
					}
					mu.Unlock()
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	time.Sleep(2 * time.Second)
	pod := strings.Fields(c.mustKubectl(t, "-n", c.namespace, "get", "pods", "-l", "app.kubernetes.io/component=authserver", "-o", "jsonpath={.items[*].metadata.name}"))[0]
	deleted := time.Now()
	c.mustKubectl(t, "-n", c.namespace, "delete", "pod", pod, "--wait=false")
	eventually(t, 2*time.Minute, 500*time.Millisecond, "the pod is replaced", func() error {
		if out, err := c.kubectl("-n", c.namespace, "get", "pod", pod, "--ignore-not-found", "-o", "name"); err != nil || strings.TrimSpace(out) != "" {
			return fmt.Errorf("pod %s still there", pod)
		}
		ready, err := c.kubectl("-n", c.namespace, "get", "deploy", c.release+"-authserver", "-o", "jsonpath={.status.readyReplicas}/{.spec.replicas}")
		if err != nil || ready != "2/2" {
			return fmt.Errorf("ready replicas %s %v", ready, err)
		}
		return nil
	})
	metric(t, "authserver_pod_replaced_after", time.Since(deleted).Round(100*time.Millisecond).Seconds(), "s")
	time.Sleep(3 * time.Second)
	close(stop)
	wg.Wait()
	metric(t, "verify_calls_during_pod_deletion", calls.Load(), "calls")
	metric(t, "verify_calls_failed_during_pod_deletion", failed.Load(), "calls")
	if failed.Load() > 0 {
		msg := fmt.Sprintf("%d of %d /verify calls failed while pod %s was deleted; first failures:\n%s",
			failed.Load(), calls.Load(), pod, strings.Join(failures, "\n"))
		if os.Getenv("E2E_ALLOW_VERIFY_FAILURES") == "1" {
			t.Log(msg)
		} else {
			t.Error(msg)
		}
	}
}

// testReinstall uninstalls the release (the CRDs, the tenants' objects and
// their signing keys stay) and installs it again: the same keys still sign
// and verify.
func (c config) testReinstall(t *testing.T) {
	url := c.authURL(t)
	before := c.jwksKIDs(t, url)
	if out, err := c.helmCmd(3*time.Minute, "uninstall", c.release, "-n", c.namespace, "--wait"); err != nil {
		t.Fatalf("helm uninstall: %v\n%s", err, out)
	}
	for _, crd := range []string{"organizations", "memberships", "apikeys"} {
		if _, err := c.kubectl("get", "crd", crd+".tenantauth.io"); err != nil {
			t.Fatalf("helm uninstall removed CRD %s: %v", crd, err)
		}
	}
	c.mustKubectl(t, "-n", tenantNS, "get", "org", orgSlug)

	// The reinstall runs two operator replicas: one leads the controllers,
	// and both serve admission (each reports ready only once its webhook
	// server runs), so the admission checks below reach either.
	out, err := c.helmCmd(6*time.Minute, c.installArgs("--wait", "--timeout", "5m", "--set", "operator.replicas=2")...)
	if err != nil {
		c.dumpNamespace(t)
		t.Fatalf("helm install again: %v\n%s", err, out)
	}
	c.mustKubectl(t, "-n", c.namespace, "wait", "pods", "--all", "--for=condition=Ready", "--timeout=3m")
	pods := strings.Fields(c.mustKubectl(t, "-n", c.namespace, "get", "pods", "-l", "app.kubernetes.io/component=operator", "-o", "name"))
	if len(pods) != 2 {
		t.Fatalf("operator pods after the reinstall with operator.replicas=2: %v", pods)
	}
	for range 6 {
		c.testAdmission(t)
	}
	after := c.jwksKIDs(t, c.authURL(t))
	for _, kid := range before {
		if !contains(after, kid) {
			t.Errorf("key %s of %s is gone after the reinstall: before %v, after %v", kid, orgSlug, before, after)
		}
	}
	bearer := map[string]string{"Authorization": "Bearer " + c.apiKey(t, loadKey)}
	url = c.authURL(t)
	eventually(t, 30*time.Second, 200*time.Millisecond, "the API key passes /verify after the reinstall", func() error {
		r, err := get(url+"/verify?org="+orgSlug, bearer)
		if err == nil && r.status != 200 {
			err = fmt.Errorf("status %d: %s", r.status, r.body)
		}
		return err
	})
}

// dumpNamespace logs what a failed install left, for the reader of the log.
func (c config) dumpNamespace(t *testing.T) {
	out, _ := c.kubectl("-n", c.namespace, "get", "all,events", "-o", "wide")
	t.Log(out)
	out, _ = c.kubectl("-n", c.namespace, "logs", "-l", "app.kubernetes.io/name=tenantauth", "--all-containers", "--tail=40", "--prefix")
	t.Log(out)
}
