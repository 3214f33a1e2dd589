package app

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestPostgresDSN checks where the DSN comes from: the flag, a file (a
// mounted Secret key, trimmed), or the environment, and that a missing or
// doubly given DSN is a usage error that never echoes it.
func TestPostgresDSN(t *testing.T) {
	file := filepath.Join(t.TempDir(), "dsn")
	if err := os.WriteFile(file, []byte("postgres://u:s3cret@db/x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		o       PostgresOptions
		env     string
		want    string
		wantErr string
	}{
		{name: "flag", o: PostgresOptions{DSN: "postgres://a@b/c"}, want: "postgres://a@b/c"},
		{name: "file", o: PostgresOptions{DSNFile: file}, want: "postgres://u:s3cret@db/x"},
		{name: "env", env: "postgres://e@f/g", want: "postgres://e@f/g"},
		{name: "flag over env", o: PostgresOptions{DSN: "postgres://a@b/c"}, env: "postgres://e@f/g", want: "postgres://a@b/c"},
		{name: "none", wantErr: "--postgres-dsn"},
		{name: "both", o: PostgresOptions{DSN: "postgres://a:pw@b/c", DSNFile: file}, wantErr: "not both"},
		{name: "missing file", o: PostgresOptions{DSNFile: file + ".nope"}, wantErr: "--postgres-dsn-file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(postgresDSNEnv, tt.env)
			got, err := tt.o.resolve()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "pw@") {
					t.Fatalf("got %q, %v; want an error naming %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestPostgresTuningFlags: --postgres-batchers=-1 turns the batching off,
// as the store's metrics show (they have no batches to count), and the
// default keeps it.
func TestPostgresTuningFlags(t *testing.T) {
	for _, tt := range []struct {
		args    []string
		batches bool
	}{
		{nil, true},
		{[]string{"--postgres-batchers=-1", "--postgres-recent-sessions=-1"}, false},
	} {
		var o PostgresOptions
		fs := flag.NewFlagSet("authserver", flag.ContinueOnError)
		o.Bind(fs)
		if err := fs.Parse(append([]string{"--postgres-dsn=postgres://u@127.0.0.1:1/x"}, tt.args...)); err != nil {
			t.Fatal(err)
		}
		st, _, err := newPostgresStore(o, logr.Discard())
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(st)
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		found := slices.ContainsFunc(families, func(f *dto.MetricFamily) bool { return f.GetName() == "tenantauth_postgres_swap_batches_total" })
		if found != tt.batches {
			t.Errorf("%v: batch metrics %v, want %v", tt.args, found, tt.batches)
		}
	}
}
