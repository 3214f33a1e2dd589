//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// config is what run.sh hands the test through the environment.
type config struct {
	kubectlBin string
	helmBin    string
	kubeconfig string
	chart      string
	samples    string
	imageRepo  string
	imageTag   string
	containerd string
	namespace  string
	release    string
}

func loadConfig(t *testing.T) config {
	t.Helper()
	get := func(k string) string {
		v := os.Getenv(k)
		if v == "" {
			t.Fatalf("%s is not set: run the e2e test through `make e2e` (hack/e2e/run.sh)", k)
		}
		return v
	}
	return config{
		kubectlBin: get("E2E_KUBECTL"),
		helmBin:    get("E2E_HELM"),
		kubeconfig: get("KUBECONFIG"),
		chart:      get("E2E_CHART"),
		samples:    os.Getenv("E2E_SAMPLES"),
		imageRepo:  get("E2E_IMAGE_REPOSITORY"),
		imageTag:   get("E2E_IMAGE_TAG"),
		containerd: get("E2E_CONTAINERD_ADDRESS"),
		namespace:  "tenantauth-system",
		release:    "tenantauth",
	}
}

// metric prints one measured figure in a form run.sh collects.
func metric(t *testing.T, name string, value any, unit string) {
	t.Helper()
	line := fmt.Sprintf("E2E-METRIC %s %v %s", name, value, unit)
	t.Log(line)
	fmt.Println(line)
}

// run runs a command with a deadline and returns its combined output.
func run(timeout time.Duration, stdin string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return string(out), fmt.Errorf("%s %s: timed out after %s", name, strings.Join(args, " "), timeout)
	}
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (c config) kubectl(args ...string) (string, error) {
	return run(2*time.Minute, "", c.kubectlBin, args...)
}

func (c config) mustKubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.kubectl(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// apply applies a manifest given on standard input.
func (c config) apply(t *testing.T, manifest string) {
	t.Helper()
	if out, err := run(time.Minute, manifest, c.kubectlBin, "apply", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
}

func (c config) helmCmd(timeout time.Duration, args ...string) (string, error) {
	return run(timeout, "", c.helmBin, args...)
}

// installArgs are the helm arguments that point the chart at the image the
// e2e run imported.
func (c config) installArgs(extra ...string) []string {
	args := []string{
		"install", c.release, c.chart, "--namespace", c.namespace, "--create-namespace",
		"--set", "image.repository=" + c.imageRepo,
		"--set", "image.tag=" + c.imageTag,
		"--set", "image.pullPolicy=Never",
	}
	return append(args, extra...)
}

// eventually retries f every interval until it returns nil or timeout passes.
func eventually(t *testing.T, timeout, interval time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %s: %v", what, timeout, err)
		}
		time.Sleep(interval)
	}
}

var forwarding = regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+) ->`)

// portForward runs `kubectl port-forward` to target on 127.0.0.1 only and
// returns the local base URL. The process is stopped by its PID when the
// test ends.
func (c config) portForward(t *testing.T, namespace, target string, port int) string {
	t.Helper()
	cmd := exec.Command(c.kubectlBin, "-n", namespace, "port-forward", "--address", "127.0.0.1", target, fmt.Sprintf(":%d", port))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := forwarding.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
				break
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case p := <-found:
		return "http://127.0.0.1:" + p
	case <-time.After(30 * time.Second):
		t.Fatalf("port-forward to %s/%s did not start: %s", namespace, target, stderr.String())
		return ""
	}
}

// client talks only to 127.0.0.1 (port-forwards); it never follows a
// redirect elsewhere.
var client = &http.Client{
	Timeout: 5 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

type response struct {
	status int
	header http.Header
	body   string
}

func get(url string, header map[string]string) (response, error) {
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		return response{}, fmt.Errorf("refusing to call %s: the e2e test only calls 127.0.0.1", url)
	}
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return response{}, err
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return response{status: resp.StatusCode, header: resp.Header, body: string(body)}, err
}

// podRSS returns the resident set size, in KiB, of the main process of
// every container of the pods matching selector in namespace, read from
// /proc through containerd's task list.
func (c config) podRSS(t *testing.T, namespace, selector string) map[string]int {
	t.Helper()
	ids := c.mustKubectl(t, "-n", namespace, "get", "pods", "-l", selector, "-o",
		`jsonpath={range .items[*]}{.metadata.name}{" "}{.status.containerStatuses[0].containerID}{"\n"}{end}`)
	tasks, err := run(30*time.Second, "", "ctr", "--address", c.containerd, "-n", "k8s.io", "tasks", "ls")
	if err != nil {
		t.Fatal(err)
	}
	pids := map[string]string{}
	for _, line := range strings.Split(tasks, "\n")[1:] {
		if f := strings.Fields(line); len(f) >= 2 {
			pids[f[0]] = f[1]
		}
	}
	rss := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(ids), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		pid := pids[strings.TrimPrefix(f[1], "containerd://")]
		status, err := os.ReadFile("/proc/" + pid + "/status")
		if pid == "" || err != nil {
			t.Fatalf("no process for pod %s (container %s): %v", f[0], f[1], err)
		}
		for _, l := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(l, "VmRSS:") {
				kib, _ := strconv.Atoi(strings.Fields(l)[1])
				rss[f[0]] = kib
			}
		}
	}
	return rss
}
