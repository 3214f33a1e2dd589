package webhook

import (
	"slices"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tenantauthv1alpha1 "github.com/tenantauth/tenantauth/api/v1alpha1"
)

func TestAPIKeyDefaults(t *testing.T) {
	ns := newNamespace(t)
	o := org(ns, ns+"-acme")
	mustCreate(t, admin, o)
	k := apiKey(ns, "ci", o.Name)
	mustCreate(t, admin, k)
	if k.Spec.Environment != tenantauthv1alpha1.EnvironmentLive ||
		!slices.Equal(k.Spec.Scopes, []tenantauthv1alpha1.APIKeyScope{tenantauthv1alpha1.ScopeRead}) ||
		k.Spec.SecretName != "ci" {
		t.Errorf("spec %+v: want environment live, scopes [read], secretName ci", k.Spec)
	}
}

func TestAPIKeyValidation(t *testing.T) {
	ns := newNamespace(t)
	o := org(ns, ns+"-acme")
	mustCreate(t, admin, o)
	mustCreate(t, admin, org(ns, ns+"-beta"))
	expiring := apiKey(ns, "expiring", o.Name)
	expiring.Spec.ExpiresAt = &metav1.Time{Time: time.Now().Add(time.Hour)}

	tests := []struct {
		name string
		do   func() error
		want outcome
	}{
		{"missing organization", func() error { return admin.Create(testCtx, apiKey(ns, "a", "nope")) },
			invalidField("spec.organization", `no Organization "nope"`)},
		{"expiry in the past", func() error {
			k := apiKey(ns, "b", o.Name)
			k.Spec.ExpiresAt = &metav1.Time{Time: time.Now().Add(-time.Minute)}
			return admin.Create(testCtx, k)
		}, invalidField("spec.expiresAt", "must be in the future", "leave it unset")},
		{"expiry in the future", func() error { return admin.Create(testCtx, expiring) }, allowed},
		{"expiring a key now", func() error {
			return update(admin, expiring, func(k *tenantauthv1alpha1.APIKey) {
				k.Spec.ExpiresAt = &metav1.Time{Time: time.Now().Add(-time.Second)}
			})
		}, allowed},
		{"organization change (CRD rule)", func() error {
			return update(admin, expiring, func(k *tenantauthv1alpha1.APIKey) { k.Spec.Organization = ns + "-beta" })
		}, invalidField("", "immutable")},
		{"unknown scope (CRD enum)", func() error {
			return admin.Create(testCtx, apiKey(ns, "c", o.Name, "superuser"))
		}, invalidField("", "Unsupported value")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { check(t, tt.do(), tt.want) })
	}

	t.Run("organization change (webhook)", func(t *testing.T) {
		old := apiKey(ns, "d", o.Name)
		moved := old.DeepCopy()
		moved.Spec.Organization = ns + "-beta"
		_, err := testValidators(t, Options{}).apiKey.ValidateUpdate(requestContext(admissionv1.Update, "root", "system:masters"), old, moved)
		checkDirect(t, err, invalidField("spec.organization", "is immutable"))
	})
	t.Run("secret name change (webhook)", func(t *testing.T) {
		old := apiKey(ns, "e", o.Name)
		renamed := old.DeepCopy()
		renamed.Spec.SecretName = "elsewhere"
		_, err := testValidators(t, Options{}).apiKey.ValidateUpdate(requestContext(admissionv1.Update, "root", "system:masters"), old, renamed)
		checkDirect(t, err, invalidField("spec.secretName", "is immutable"))
	})
}

func TestValidateAPIKeySpec(t *testing.T) {
	tests := []struct {
		name  string
		key   *tenantauthv1alpha1.APIKey
		field string // "" means valid
	}{
		{"all scopes", apiKey("ns", "k", "acme", "read", "write", "delete", "admin"), ""},
		{"unknown scope", apiKey("ns", "k", "acme", "read", "root"), "spec.scopes[1]"},
		{"duplicate scope", apiKey("ns", "k", "acme", "read", "read"), "spec.scopes[1]"},
		{"unknown environment", func() *tenantauthv1alpha1.APIKey {
			k := apiKey("ns", "k", "acme")
			k.Spec.Environment = "staging"
			return k
		}(), "spec.environment"},
		{"bad secret name", func() *tenantauthv1alpha1.APIKey {
			k := apiKey("ns", "k", "acme")
			k.Spec.SecretName = "Not_A_Name"
			return k
		}(), "spec.secretName"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := validateAPIKeySpec(tt.key)
			switch {
			case tt.field == "" && len(errs) > 0:
				t.Fatalf("want valid, got %v", errs)
			case tt.field != "" && (len(errs) != 1 || errs[0].Field != tt.field):
				t.Fatalf("want one error on %s, got %v", tt.field, errs)
			}
		})
	}
}
