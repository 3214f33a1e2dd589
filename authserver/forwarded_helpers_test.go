package authserver

import "testing"

// withForwardedSource runs the harness with --forwarded-uri-source=name.
func withForwardedSource(t testing.TB, name string) harnessOption {
	t.Helper()
	src, err := ParseForwardedURISource(name)
	if err != nil {
		t.Fatal(err)
	}
	return func(c *Config) { c.ForwardedURISource = src }
}
