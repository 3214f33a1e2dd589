package app

import (
	"context"
	"flag"
	"io"
	"strings"
	"testing"

	"k8s.io/client-go/rest"
)

// TestAuthServerFlags checks the client-IP and hashing flags: the removed
// --trust-forwarded-for stops the start with a pointer to its
// replacement, and bad values of the new flags are usage errors, before
// anything touches a cluster.
func TestAuthServerFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--trust-forwarded-for"}, "--trusted-proxies"},
		{[]string{"--trust-forwarded-for=false"}, "--trusted-proxies"},
		{[]string{"--trusted-proxies=10.0.0.0/8,not-a-cidr"}, "not-a-cidr"},
		{[]string{"--trusted-proxies=10.0.0.0/40"}, "10.0.0.0/40"},
		{[]string{"--password-hash-concurrency=-1"}, "--password-hash-concurrency"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var o AuthServerOptions
			fs := flag.NewFlagSet("authserver", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			o.Bind(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatalf("parse: %v", err)
			}
			_, _, err := NewAuthServer(context.Background(), &rest.Config{Host: "https://127.0.0.1:1"}, o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error naming %q", err, tt.want)
			}
		})
	}
	var o AuthServerOptions
	fs := flag.NewFlagSet("authserver", flag.ContinueOnError)
	o.Bind(fs)
	if err := fs.Parse([]string{"--trusted-proxies=10.244.0.0/16, fd00::/8", "--password-hash-concurrency=3"}); err != nil {
		t.Fatal(err)
	}
	if o.TrustedProxies != "10.244.0.0/16, fd00::/8" || o.PasswordHashConcurrency != 3 {
		t.Fatalf("parsed %+v", o)
	}
}
