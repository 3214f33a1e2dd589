package v1alpha1

import (
	"os"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/tenantauth/tenantauth/api/consts"
)

// TestCRDDefaults checks that the +kubebuilder:default markers, as
// generated into the CRD, say what package consts says.
func TestCRDDefaults(t *testing.T) {
	raw, err := os.ReadFile("../../config/crd/bases/tenantauth.io_organizations.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var crd map[string]any
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		t.Fatal(err)
	}
	spec := dig(t, crd, "spec", "versions", 0, "schema", "openAPIV3Schema", "properties", "spec", "properties")
	durations := []struct {
		path []any
		want time.Duration
	}{
		{[]any{"sessions", "properties", "accessTokenTTL", "default"}, consts.DefaultAccessTokenTTL},
		{[]any{"sessions", "properties", "refreshTokenIdleTTL", "default"}, consts.DefaultRefreshTokenIdleTTL},
		{[]any{"sessions", "properties", "refreshTokenAbsoluteTTL", "default"}, consts.DefaultRefreshTokenAbsoluteTTL},
		{[]any{"signing", "properties", "rotationInterval", "default"}, consts.DefaultRotationInterval},
	}
	for _, d := range durations {
		s, _ := dig(t, spec, d.path...).(string)
		got, err := time.ParseDuration(s)
		if err != nil || got != d.want {
			t.Errorf("%v: CRD default %q, consts say %s", d.path, s, d.want)
		}
	}
	if got := dig(t, spec, "selfSignup", "properties", "defaultRole", "default"); got != consts.DefaultRole {
		t.Errorf("selfSignup.defaultRole: CRD default %v, consts say %q", got, consts.DefaultRole)
	}
}

// TestSSOConnectionCRDDefaults: members made just in time get the
// self-signup default role, member, unless the connection says otherwise.
func TestSSOConnectionCRDDefaults(t *testing.T) {
	raw, err := os.ReadFile("../../config/crd/bases/tenantauth.io_ssoconnections.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var crd map[string]any
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		t.Fatal(err)
	}
	spec := dig(t, crd, "spec", "versions", 0, "schema", "openAPIV3Schema", "properties", "spec", "properties")
	if got := dig(t, spec, "defaultRole", "default"); got != consts.DefaultRole {
		t.Errorf("defaultRole: CRD default %v, consts say %q", got, consts.DefaultRole)
	}
	if got := (&SSOConnection{}).EffectiveDefaultRole(); got != consts.DefaultRole {
		t.Errorf("EffectiveDefaultRole of an unset role is %q", got)
	}
}

func dig(t *testing.T, v any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("no %q in %v", k, path)
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || len(l) <= k {
				t.Fatalf("no [%d] in %v", k, path)
			}
			v = l[k]
		}
	}
	return v
}
