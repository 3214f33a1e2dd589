package kube

import "testing"

// TestIndexKeyIsSecretName checks that the allocation-free index key is
// the Secret name for every ID a Secret can be named after, and for the
// others is a key no Secret name can equal.
func TestIndexKeyIsSecretName(t *testing.T) {
	tests := []struct{ kind, id string }{
		{"session", "ses_abcdefghijklmnop234567"},
		{"family", "fam_ABCDEF234567"},
		{"token", "pr_x_y_z"},
		{"credentials", ""},
		{"session", "ses_" + string(make([]byte, 200))}, // past the stack buffer
	}
	for _, tt := range tests {
		if got, want := string(appendIndexKey(nil, tt.kind, tt.id)), secretName(tt.kind, tt.id); got != want {
			t.Errorf("appendIndexKey(%q, %q) = %q, want %q", tt.kind, tt.id, got, want)
		}
	}
	// strings.ToLower lowers non-ASCII letters, appendIndexKey keeps them:
	// either way the key is not ASCII, so it is in no index of Secret names.
	for _, id := range []string{"ses_ÄBC", "ses_\xff"} {
		key := appendIndexKey(nil, "session", id)
		ascii := true
		for _, c := range key {
			ascii = ascii && c < 0x80
		}
		if ascii {
			t.Errorf("appendIndexKey(%q) = %q is ASCII", id, key)
		}
	}
}
