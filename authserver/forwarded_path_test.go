package authserver

import "testing"

// TestParseForwardedPath pins the normaliser's readings of the paths whose
// reading is a choice: slashes collapse before dot segments resolve (as
// nginx and path.Clean do), a trailing slash is kept, and the literal
// reading keeps dot segments.
func TestParseForwardedPath(t *testing.T) {
	tests := []struct {
		in, clean, literal, tenant string
	}{
		{in: "/", clean: "/", literal: "/"},
		{in: "/api/org/acme/x", clean: "/api/org/acme/x", literal: "/api/org/acme/x", tenant: "acme"},
		{in: "//api//org/acme//", clean: "/api/org/acme/", literal: "/api/org/acme/", tenant: "acme"},
		{in: "/a//../b", clean: "/b", literal: "/a/../b"},
		{in: "/a/b/..", clean: "/a/", literal: "/a/b/.."},
		{in: "/a/./b/.", clean: "/a/b/", literal: "/a/./b/."},
		{in: "/../../x", clean: "/x", literal: "/../../x"},
		{in: "/%61pi/ORG/%41cme/%2e%2E/globex", clean: "/api/ORG/globex", literal: "/api/ORG/Acme/../globex", tenant: "globex"},
		{in: "/api/org/globex/x/../../..", clean: "/api/", literal: "/api/org/globex/x/../../.."},
		{in: "/api/org", clean: "/api/org", literal: "/api/org"},
		{in: "/api/org/caf%C3%A9", clean: "/api/org/café", literal: "/api/org/café", tenant: "café"},
		{in: "/ap%C4%B0/org/x", clean: "/apİ/org/x", literal: "/apİ/org/x", tenant: "x"},
	}
	for _, tt := range tests {
		fp, err := parseForwardedPath(tt.in)
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if fp.clean != tt.clean || fp.literal != tt.literal || fp.tenant() != tt.tenant {
			t.Errorf("%q: clean %q literal %q tenant %q, want %q %q %q", tt.in, fp.clean, fp.literal, fp.tenant(), tt.clean, tt.literal, tt.tenant)
		}
	}
	for _, bad := range []string{"", "api/org/x", "/a%2fb", "/a%5Cb", "/a%25", "/a%2", "/a%g0", "/a\\b", "/a;b", "/a%3Bb", "/a%3Fb", "/a%23b", "/a\x00", "/a%00", "/a%7F", "/a%C0%AF", "/\xff"} {
		if _, err := parseForwardedPath(bad); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}
