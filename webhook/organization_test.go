package webhook

import (
	"context"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	tenantauthv1alpha1 "github.com/tenantauth/tenantauth/api/v1alpha1"
)

func TestOrganizationDefaults(t *testing.T) {
	ns := newNamespace(t)
	o := org(ns, ns+"-acme")
	mustCreate(t, admin, o)

	s := o.Spec
	if s.Slug != o.Name || s.DisplayName != o.Name {
		t.Errorf("slug %q, displayName %q: want both %q", s.Slug, s.DisplayName, o.Name)
	}
	durations := map[string]struct {
		got  time.Duration
		want time.Duration
	}{
		"accessTokenTTL":          {o.AccessTokenTTL(), 15 * time.Minute},
		"refreshTokenIdleTTL":     {o.RefreshTokenIdleTTL(), 720 * time.Hour},
		"refreshTokenAbsoluteTTL": {o.RefreshTokenAbsoluteTTL(), 2160 * time.Hour},
		"rotationInterval":        {o.RotationInterval(), 720 * time.Hour},
	}
	for name, d := range durations {
		if d.got != d.want {
			t.Errorf("%s = %s, want %s", name, d.got, d.want)
		}
	}
	if s.Sessions.AccessTokenTTL == nil || s.Signing.RotationInterval == nil {
		t.Errorf("durations not stored: sessions %+v, signing %+v", s.Sessions, s.Signing)
	}
	if s.Signing.Algorithm != tenantauthv1alpha1.AlgES256 {
		t.Errorf("algorithm %q, want ES256", s.Signing.Algorithm)
	}
	for name, b := range map[string]*bool{"password": s.AuthMethods.Password, "magicLink": s.AuthMethods.MagicLink, "apiKeys": s.AuthMethods.APIKeys} {
		if b == nil || !*b {
			t.Errorf("authMethods.%s = %v, want true", name, b)
		}
	}
	if s.SelfSignup.DefaultRole != tenantauthv1alpha1.RoleMember {
		t.Errorf("selfSignup.defaultRole %q, want member", s.SelfSignup.DefaultRole)
	}
}

func TestOrganizationDefaulterKeepsSetFields(t *testing.T) {
	o := org("ns", "acme", func(o *tenantauthv1alpha1.Organization) {
		o.Spec.Slug = "acme-inc"
		o.Spec.DisplayName = "Acme Inc."
		o.Spec.Signing.Algorithm = tenantauthv1alpha1.AlgEdDSA
		o.Spec.AuthMethods.Password = new(false)
	})
	if err := (&OrganizationDefaulter{}).Default(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if o.Spec.Slug != "acme-inc" || o.Spec.DisplayName != "Acme Inc." || o.Spec.Signing.Algorithm != tenantauthv1alpha1.AlgEdDSA || *o.Spec.AuthMethods.Password {
		t.Errorf("defaulter overwrote set fields: %+v", o.Spec)
	}
}

func TestOrganizationValidation(t *testing.T) {
	ns, other := newNamespace(t), newNamespace(t)
	taken := org(ns, ns+"-taken", func(o *tenantauthv1alpha1.Organization) {
		o.Spec.Roles = []tenantauthv1alpha1.Role{{Name: "lead", Rank: 85}, {Name: "spare", Rank: 10}}
	})
	mustCreate(t, admin, taken)
	mustCreate(t, admin, membership(ns, "lead", taken.Name, "lead@example.com", "lead"))

	tests := []struct {
		name string
		do   func() error
		want outcome
	}{
		{"slug used in another namespace", func() error {
			return admin.Create(testCtx, org(other, "x-"+ns, func(o *tenantauthv1alpha1.Organization) { o.Spec.Slug = taken.Name }))
		}, invalidField("spec.slug", "already uses it", "choose another")},
		{"slug defaulted from a name already used as slug", func() error {
			return admin.Create(testCtx, org(other, taken.Name))
		}, invalidField("spec.slug", "already uses it")},
		{"self-signup as owner", func() error {
			return admin.Create(testCtx, org(ns, ns+"-selfowner", func(o *tenantauthv1alpha1.Organization) { o.Spec.SelfSignup.DefaultRole = "owner" }))
		}, invalidField("spec.selfSignup.defaultRole", "may not become owners")},
		{"self-signup with an unknown role", func() error {
			return admin.Create(testCtx, org(ns, ns+"-ghost", func(o *tenantauthv1alpha1.Organization) { o.Spec.SelfSignup.DefaultRole = "ghost" }))
		}, invalidField("spec.selfSignup.defaultRole", "unknown role", "owner, admin, manager, member, viewer")},
		{"self-signup with a custom role", func() error {
			return admin.Create(testCtx, org(ns, ns+"-custom", func(o *tenantauthv1alpha1.Organization) {
				o.Spec.Roles = []tenantauthv1alpha1.Role{{Name: "guest", Rank: 5}}
				o.Spec.SelfSignup.DefaultRole = "guest"
			}))
		}, allowed},
		{"slug change (CRD rule)", func() error {
			return update(admin, taken.DeepCopy(), func(o *tenantauthv1alpha1.Organization) { o.Spec.Slug = "renamed" })
		}, invalidField("", "immutable")},
		{"removing a custom role still held", func() error {
			return update(admin, taken.DeepCopy(), func(o *tenantauthv1alpha1.Organization) { o.Spec.Roles = o.Spec.Roles[1:] })
		}, invalidField("spec.roles", `custom role "lead" is still held by 1 Membership(s)`, "give them another role first")},
		{"removing an unused custom role", func() error {
			return update(admin, taken.DeepCopy(), func(o *tenantauthv1alpha1.Organization) { o.Spec.Roles = o.Spec.Roles[:1] })
		}, allowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { check(t, tt.do(), tt.want) })
	}
}

// The CRD's own rule rejects a slug change before the webhook sees it; the
// webhook's check still guards clusters whose CRD lacks the rule.
func TestOrganizationSlugImmutableInWebhook(t *testing.T) {
	ns := newNamespace(t)
	old := org(ns, ns+"-acme")
	mustCreate(t, admin, old)
	renamed := old.DeepCopy()
	renamed.Spec.Slug = "renamed"
	v := testValidators(t, Options{})
	_, err := v.org.ValidateUpdate(requestContext(admissionv1.Update, "root", "system:masters"), old, renamed)
	checkDirect(t, err, invalidField("spec.slug", "is immutable", old.Name))
}

func TestValidateOrganizationSpec(t *testing.T) {
	tests := []struct {
		name  string
		org   *tenantauthv1alpha1.Organization
		field string // "" means valid
	}{
		{"defaults", org("ns", "acme"), ""},
		{"slug not a DNS label", org("ns", "acme", func(o *tenantauthv1alpha1.Organization) { o.Spec.Slug = "Acme_Inc" }), "spec.slug"},
		{"name not a DNS label", org("ns", "acme.inc"), "spec.slug"},
		{"unknown algorithm", org("ns", "acme", func(o *tenantauthv1alpha1.Organization) { o.Spec.Signing.Algorithm = "HS256" }), "spec.signing.algorithm"},
		{"custom role reusing a built-in name", org("ns", "acme", func(o *tenantauthv1alpha1.Organization) {
			o.Spec.Roles = []tenantauthv1alpha1.Role{{Name: "admin", Rank: 50}}
		}), "spec.roles[0].name"},
		{"custom role ranked like owner", org("ns", "acme", func(o *tenantauthv1alpha1.Organization) {
			o.Spec.Roles = []tenantauthv1alpha1.Role{{Name: "boss", Rank: 100}}
		}), "spec.roles[0].rank"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := validateOrganizationSpec(tt.org)
			switch {
			case tt.field == "" && len(errs) > 0:
				t.Fatalf("want valid, got %v", errs)
			case tt.field != "" && (len(errs) != 1 || errs[0].Field != tt.field):
				t.Fatalf("want one error on %s, got %v", tt.field, errs)
			}
		})
	}
}

// testValidators builds validators over the suite's manager cache, for
// calling a validator directly.
func testValidators(t testing.TB, opts Options) validators {
	t.Helper()
	v, err := newValidators(mgr, opts)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// requestContext is what the admission handler gives a validator: the
// request, with the requester's identity.
func requestContext(op admissionv1.Operation, user string, groups ...string) context.Context {
	return admission.NewContextWithRequest(testCtx, admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		Operation: op,
		UserInfo:  authenticationv1.UserInfo{Username: user, Groups: append([]string{"system:authenticated"}, groups...)},
	}})
}
