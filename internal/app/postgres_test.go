package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
