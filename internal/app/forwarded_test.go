package app

import (
	"flag"
	"io"
	"strings"
	"testing"
)

// TestForwardedURISourceFlag checks --forwarded-uri-source on both modes
// that serve /verify: ingress-nginx by default, every documented value
// accepted, and anything else refused at flag parsing with a message
// that names the choices.
func TestForwardedURISourceFlag(t *testing.T) {
	binders := map[string]func(*flag.FlagSet) func() string{
		"authserver": func(fs *flag.FlagSet) func() string {
			var o AuthServerOptions
			o.Bind(fs)
			return func() string { return o.ForwardedURISource.String() }
		},
		"dev": func(fs *flag.FlagSet) func() string {
			var o DevOptions
			o.Bind(fs)
			return func() string { return o.ForwardedURISource.String() }
		},
	}
	tests := []struct {
		args    []string
		want    string
		wantErr string
	}{
		{args: nil, want: "ingress-nginx"},
		{args: []string{"--forwarded-uri-source=ingress-nginx"}, want: "ingress-nginx"},
		{args: []string{"--forwarded-uri-source=traefik"}, want: "traefik"},
		{args: []string{"--forwarded-uri-source=envoy"}, want: "envoy"},
		{args: []string{"--forwarded-uri-source=header:x-auth-request-uri"}, want: "header:X-Auth-Request-Uri"},
		{args: []string{"--forwarded-uri-source=header:X-Uri,X-Method"}, want: "header:X-Uri,X-Method"},
		{args: []string{"--forwarded-uri-source=nginx"}, wantErr: "must be ingress-nginx, traefik, envoy or header:<name>"},
		{args: []string{"--forwarded-uri-source="}, wantErr: "must be ingress-nginx"},
		{args: []string{"--forwarded-uri-source=Envoy"}, wantErr: "must be ingress-nginx"},
		{args: []string{"--forwarded-uri-source=header:"}, wantErr: "header name is empty"},
		{args: []string{"--forwarded-uri-source=header:X Uri"}, wantErr: "not a valid HTTP header name"},
		{args: []string{"--forwarded-uri-source=header:Authorization"}, wantErr: "carries credentials"},
		{args: []string{"--forwarded-uri-source=header:X-Uri,"}, wantErr: "method header"},
	}
	for mode, bind := range binders {
		for _, tt := range tests {
			fs := flag.NewFlagSet(mode, flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			get := bind(fs)
			err := fs.Parse(tt.args)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("%s %v: %v", mode, tt.args, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("%s %v: error %v, want one containing %q", mode, tt.args, err, tt.wantErr)
			case tt.wantErr == "" && get() != tt.want:
				t.Errorf("%s %v: source %q, want %q", mode, tt.args, get(), tt.want)
			}
		}
	}
}
