package app

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tenantauth/tenantauth/internal/testenv"
)

// TestDevEndToEnd runs `tenantauth dev` as a user would: it must print
// "ready", serve /health and the samples' JWKS, write a kubeconfig, sign
// up through the samples' verified domain, and on Ctrl-C exit cleanly
// leaving no child process behind.
func TestDevEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	bin := filepath.Join(t.TempDir(), "tenantauth")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = testenv.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	state := t.TempDir()
	cmd := exec.Command(bin, "dev", "--addr", addr, "--state-dir", state, "--zap-log-level=error")
	cmd.Dir = testenv.RepoRoot()
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()

	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "ready") && strings.Contains(sc.Text(), addr) {
				close(ready)
				break
			}
		}
		for sc.Scan() {
		}
	}()
	select {
	case <-ready:
	case <-time.After(3 * time.Minute):
		t.Fatal("no ready line within 3 minutes")
	}

	base := "http://" + addr
	if code := get(t, base+"/health", nil); code != 200 {
		t.Fatalf("/health: %d", code)
	}
	var jwks struct{ Keys []map[string]any }
	deadline := time.Now().Add(30 * time.Second)
	for len(jwks.Keys) == 0 && time.Now().Before(deadline) {
		get(t, base+"/orgs/acme/.well-known/jwks.json", &jwks)
		time.Sleep(200 * time.Millisecond)
	}
	if len(jwks.Keys) == 0 {
		t.Fatal("the sample organization acme has no published key")
	}
	if _, err := os.Stat(filepath.Join(state, "kubeconfig")); err != nil {
		t.Fatalf("kubeconfig: %v", err)
	}

	devSignup(t, base, filepath.Join(state, "outbox"))

	children := childPIDs(cmd.Process.Pid)
	if len(children) < 2 {
		t.Fatalf("expected etcd and kube-apiserver children, found %v", children)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("dev exited with %v after Ctrl-C", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("dev did not exit within a minute of Ctrl-C")
	}
	for _, pid := range children {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
			t.Errorf("child %d is still running after dev exited", pid)
		}
	}
}

// devSignup walks the README's self-signup on the samples: acme admits
// acme.com, which dev's own DNS server verifies within seconds of the
// start (self-signup speaks only for verified domains), so a register
// gets a verification mail in the outbox and verify-email signs carol in.
func devSignup(t *testing.T, base, outbox string) {
	t.Helper()
	link := regexp.MustCompile(`token=(ve_[A-Za-z0-9._-]+)`)
	token := ""
	// Every 3 seconds, under the per-email limit of 20 a minute.
	for deadline := time.Now().Add(45 * time.Second); token == "" && time.Now().Before(deadline); time.Sleep(3 * time.Second) {
		if code, body := post(t, base+"/auth/register", `{"email":"carol@acme.com","password":"another long passphrase","organization":"acme"}`); code != 202 {
			t.Fatalf("register: %d %s", code, body)
		}
		time.Sleep(500 * time.Millisecond) // the mail is written in the background
		files, _ := filepath.Glob(filepath.Join(outbox, "*.eml"))
		for _, f := range files {
			if data, err := os.ReadFile(f); err == nil && strings.Contains(string(data), "carol@acme.com") {
				if m := link.FindSubmatch(data); m != nil {
					token = string(m[1])
				}
			}
		}
	}
	if token == "" {
		t.Fatal("no verification mail for carol@acme.com: is the samples' acme.com verified?")
	}
	code, body := post(t, base+"/auth/verify-email", `{"token":"`+token+`"}`)
	if code != 200 || !strings.Contains(body, `"slug":"acme"`) {
		t.Fatalf("verify-email: %d %s", code, body)
	}
}

func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

func get(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil {
		_ = json.NewDecoder(resp.Body).Decode(v)
	}
	return resp.StatusCode
}

// childPIDs lists the direct children of pid.
func childPIDs(pid int) []int {
	var out []int
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range dirs {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		s := string(data)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			c, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
			out = append(out, c)
		}
	}
	return out
}
