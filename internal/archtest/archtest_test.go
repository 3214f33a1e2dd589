package archtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckSyntheticGraphs(t *testing.T) {
	m := Module + "/"
	std := map[string]bool{"fmt": true, "net/http": true, "time": true}
	tests := []struct {
		name    string
		imports map[string][]string
		want    []string // "package imports import", in order
	}{
		{"clean", map[string][]string{
			m + "api/v1alpha1":    {"fmt", "k8s.io/apimachinery/pkg/apis/meta/v1", "sigs.k8s.io/controller-runtime/pkg/scheme", m + "api/consts"},
			m + "api/consts":      {"time"},
			m + "controllers":     {m + "api/v1alpha1", "sigs.k8s.io/controller-runtime"},
			m + "webhook":         {m + "api/v1alpha1"},
			m + "authserver":      {"net/http", m + "api/consts"},
			m + "authserver/kube": {m + "authserver", "k8s.io/client-go"},
			m + "internal/app":    {m + "authserver/kube", m + "controllers", "net/http"},
		}, nil},
		{"api imports client-go", map[string][]string{
			m + "api/v1alpha1": {"k8s.io/client-go/kubernetes"},
		}, []string{m + "api/v1alpha1 imports k8s.io/client-go/kubernetes"}},
		{"api imports an internal package", map[string][]string{
			m + "api/v1alpha1":      {m + "internal/identity"},
			m + "internal/identity": {"fmt"},
		}, []string{m + "api/v1alpha1 imports " + m + "internal/identity"}},
		{"webhook reaches authserver through a helper", map[string][]string{
			m + "webhook":         {m + "internal/helper"},
			m + "internal/helper": {m + "authserver/mail"},
			m + "authserver/mail": {"fmt"},
		}, []string{m + "webhook imports " + m + "authserver/mail"}},
		{"controllers import authserver", map[string][]string{
			m + "controllers": {m + "authserver"},
			m + "authserver":  {"net/http"},
		}, []string{m + "controllers imports " + m + "authserver"}},
		{"authserver reaches apimachinery through api", map[string][]string{
			m + "authserver":                       {m + "api/v1alpha1"},
			m + "api/v1alpha1":                     {"k8s.io/apimachinery/pkg/apis/meta/v1"},
			"k8s.io/apimachinery/pkg/apis/meta/v1": {},
		}, []string{m + "authserver imports " + "k8s.io/apimachinery/pkg/apis/meta/v1"}},
		{"a new authserver package imports controller-runtime", map[string][]string{
			m + "authserver/token": {"sigs.k8s.io/controller-runtime/pkg/client"},
		}, []string{m + "authserver/token imports sigs.k8s.io/controller-runtime/pkg/client"}},
		{"authserver/kube may import Kubernetes", map[string][]string{
			m + "authserver/kube": {"k8s.io/api/core/v1", "sigs.k8s.io/controller-runtime/pkg/cache"},
		}, nil},
		{"the session layer reaches up into account", map[string][]string{
			m + "authserver/session": {m + "authserver/account", m + "authserver/store"},
			m + "authserver/account": {m + "authserver/session"},
		}, []string{m + "authserver/session imports " + m + "authserver/account"}},
		{"the token format imports the store", map[string][]string{
			m + "authserver/token": {m + "authserver/store", m + "authserver/directory"},
		}, []string{m + "authserver/token imports " + m + "authserver/store"}},
		{"a new authserver package imports net/http", map[string][]string{
			m + "authserver/session": {"net/http"},
		}, []string{m + "authserver/session imports net/http"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, v := range Check(Graph{Imports: tt.imports, Standard: std}) {
				got = append(got, v.Package+" imports "+v.Import)
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("violations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestModule runs the rules over the module's real import graph.
func TestModule(t *testing.T) {
	g := moduleGraph(t)
	if len(g.Imports) < 10 || g.Imports[Module+"/authserver"] == nil {
		t.Fatalf("go list found %d packages and no authserver: the graph is not the module's", len(g.Imports))
	}
	for _, v := range Check(g) {
		t.Error(v)
	}
}

// TestWrongImportFails plays a wrong import in a real file: through go
// list's overlay, the session package gains a file importing net/http and
// the mail package, without touching the tree. The check must name it.
func TestWrongImportFails(t *testing.T) {
	root := moduleRoot(t)
	probe := filepath.Join(root, "authserver", "session", "zz_archtest_probe.go")
	src := "package session\n\nimport (\n\t_ \"net/http\"\n\n\t_ \"" + Module + "/authserver/mail\"\n)\n"
	dir := t.TempDir()
	file := filepath.Join(dir, "probe.go")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	overlay, _ := json.Marshal(map[string]any{"Replace": map[string]string{probe: file}})
	ov := filepath.Join(dir, "overlay.json")
	if err := os.WriteFile(ov, overlay, 0o644); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range Check(listGraph(t, root, "-overlay="+ov)) {
		got = append(got, v.String())
	}
	joined := strings.Join(got, "\n")
	for _, want := range []string{
		"authserver/session imports net/http",
		"authserver/session imports " + Module + "/authserver/mail",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("the probe's import %q was not reported; got:\n%s", want, joined)
		}
	}
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(gomod)))
}

func moduleGraph(t *testing.T) Graph {
	t.Helper()
	return listGraph(t, moduleRoot(t))
}

func listGraph(t *testing.T, root string, flags ...string) Graph {
	t.Helper()
	args := append([]string{"list"}, flags...)
	args = append(args, "-deps", "-f", "{{.ImportPath}}\t{{.Standard}}\t{{join .Imports \" \"}}", "./...")
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	g := Graph{Imports: map[string][]string{}, Standard: map[string]bool{}}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), "\t", 3)
		if len(f) != 3 {
			t.Fatalf("go list line %q", sc.Text())
		}
		g.Imports[f[0]] = strings.Fields(f[2])
		g.Standard[f[0]] = f[1] == "true"
	}
	return g
}
