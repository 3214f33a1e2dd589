package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tenantauth/tenantauth/authserver/account"

	"github.com/pquerna/otp/totp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/authserver/kube"
	"github.com/tenantauth/tenantauth/authserver/store"
)

func TestMagicLinkOnKubernetes(t *testing.T) {
	acme := newTenant(t, "acme", tav1.OrganizationSpec{})
	globex := newTenant(t, "globex", tav1.OrganizationSpec{Signing: tav1.SigningSpec{Algorithm: tav1.AlgEdDSA}})
	acme.addMember(t, "alice@ml.test", "owner")
	globex.addMember(t, "alice@ml.test", "viewer")

	before, authed := smtpSrv.Count(), smtpSrv.Authenticated()
	if r := post(t, "/users/send-magic-link", map[string]string{"email_address": "alice@ml.test"}); r.status != 202 {
		t.Fatalf("send: %d %s", r.status, r.raw)
	}
	if r := post(t, "/users/send-magic-link", map[string]string{"email_address": "nobody@ml.test"}); r.status != 202 {
		t.Fatalf("send to a stranger: %d %s", r.status, r.raw)
	}
	token, msg := mailToken(t, "alice@ml.test", before)
	if msg.Subject != "Your sign-in link" || !strings.Contains(msg.From, "<no-reply@tenantauth.test>") || smtpSrv.Authenticated() <= authed {
		t.Fatalf("mail %q from %q; SMTP AUTH used: %v", msg.Subject, msg.From, smtpSrv.Authenticated() > authed)
	}

	auth := post(t, "/users/authenticate-magic-link", map[string]string{"token": token})
	orgs, _ := auth.body["organizations"].([]any)
	if auth.status != 200 || len(orgs) != 2 || auth.str("intermediate_session_token") == "" {
		t.Fatalf("authenticate: %d %s", auth.status, auth.raw)
	}
	ex := post(t, "/users/exchange-session", map[string]string{
		"intermediate_session_token": auth.str("intermediate_session_token"), "organization_id": globex.slug})
	if ex.status != 200 || ex.str("organization.slug") != globex.slug || ex.str("role") != "viewer" {
		t.Fatalf("exchange: %d %s", ex.status, ex.raw)
	}
	if me := call(t, "GET", "/auth/me", nil, "Authorization", "Bearer "+ex.str("session.jwt")); me.status != 200 || me.str("email") != "alice@ml.test" {
		t.Fatalf("me: %d %s", me.status, me.raw)
	}
	if r := post(t, "/users/authenticate-magic-link", map[string]string{"token": token}); r.status != 401 || r.code() != "token_used" {
		t.Fatalf("second use: %d %s", r.status, r.raw)
	}
	if smtpSrv.Count() != before+1 {
		t.Fatalf("%d mails: the stranger must get none", smtpSrv.Count()-before)
	}

	// The token lives in a store Secret as a hash only.
	_, secret, _ := strings.Cut(token, ".")
	var secrets corev1.SecretList
	if err := k8s.List(context.Background(), &secrets, client.InNamespace(serverNamespace),
		client.MatchingLabels{tav1.LabelComponent: tav1.ComponentStore}); err != nil {
		t.Fatal(err)
	}
	tokens := 0
	for _, s := range secrets.Items {
		if s.Labels["tenantauth.io/store-kind"] == store.KindToken {
			tokens++
		}
		for _, v := range s.Data {
			if strings.Contains(string(v), secret) {
				t.Fatalf("secret %s holds the token", s.Name)
			}
		}
	}
	if tokens == 0 {
		t.Fatalf("no token records in the store")
	}
	assertLogsHide(t, secret, token)
}

// TestRegisterCreatesMembership signs up through a domain the operator
// verified (spec.domains and the TXT record). The cluster admin who made
// the Organization also listed example.net, never verified (admission
// lets the bypass group through with a warning): a register there mails
// nobody, and the operator names it on DomainsVerified.
func TestRegisterCreatesMembership(t *testing.T) {
	signup := newTenant(t, "signup", tav1.OrganizationSpec{Domains: []tav1.Domain{{Name: "example.org"}},
		SelfSignup: tav1.SelfSignupSpec{AllowedEmailDomains: []string{"example.org", "example.net"}, DefaultRole: "viewer"}})
	const password = "a perfectly decent passphrase"
	unverified := smtpSrv.Count()
	if r := post(t, "/auth/register", map[string]string{"email": "early@example.net", "password": password, "organization": signup.slug}); r.status != 202 {
		t.Fatalf("register on the unverified domain: %d %s", r.status, r.raw)
	}
	signup.verifyDomain(t, "example.org")
	eventually(t, "DomainsVerified naming example.net", func() bool {
		o := &tav1.Organization{}
		if k8s.Get(context.Background(), client.ObjectKey{Namespace: signup.ns, Name: signup.name}, o) != nil {
			return false
		}
		c := meta.FindStatusCondition(o.Status.Conditions, tav1.ConditionDomainsVerified)
		return c != nil && c.Reason == tav1.ReasonUnverifiedSignupDomain &&
			strings.Contains(c.Message, "example.net") && !strings.Contains(c.Message, "example.org")
	})
	before := smtpSrv.Count()
	reg := post(t, "/auth/register", map[string]string{"email": "New@Example.org", "password": password, "organization": signup.slug})
	if reg.status != 202 || reg.cookie("tenantauth_signup") == "" {
		t.Fatalf("register: %d %s", reg.status, reg.raw)
	}
	if r := post(t, "/auth/register", map[string]string{"email": "x@example.org", "password": "password", "organization": signup.slug}); r.status != 400 || r.code() != "weak_password" {
		t.Fatalf("weak password: %d %s", r.status, r.raw)
	}
	token, msg := mailToken(t, "new@example.org", before)
	if !strings.Contains(msg.Text, publicURL+"/auth/verify-email?token=") {
		t.Fatalf("link: %s", msg.Text)
	}

	// The registering client verifies, so its password is kept.
	v := post(t, "/auth/verify-email", map[string]string{"token": token}, "Cookie", reg.cookie("tenantauth_signup"))
	if v.status != 200 || v.str("role") != "viewer" || v.str("organization.slug") != signup.slug || v.str("access_token") == "" {
		t.Fatalf("verify: %d %s", v.status, v.raw)
	}
	// A real Membership, visible to kubectl, marked as made by signup; the
	// operator gives it the same user ID the session carries.
	var m tav1.Membership
	key := client.ObjectKey{Namespace: signup.ns, Name: account.SignupMembershipName("signup", "new@example.org")}
	eventually(t, "the Membership's user ID", func() bool {
		return k8s.Get(context.Background(), key, &m) == nil && m.Status.UserID != ""
	})
	if m.Spec.Email != "new@example.org" || m.Spec.Role != "viewer" || m.Spec.Organization != "signup" ||
		m.Labels[kube.LabelSignup] != "true" || m.Status.UserID != v.str("user.id") {
		t.Fatalf("membership %+v %+v", m.Spec, m.Status)
	}
	if me := call(t, "GET", "/auth/me", nil, "Authorization", "Bearer "+v.str("access_token")); me.status != 200 || me.str("role") != "viewer" {
		t.Fatalf("me: %d %s", me.status, me.raw)
	}
	if r := post(t, "/auth/login", map[string]string{"email": "new@example.org", "password": password}); r.status != 200 || r.str("access_token") == "" {
		t.Fatalf("login with the signup password: %d %s", r.status, r.raw)
	}
	if r := post(t, "/auth/verify-email", map[string]string{"token": token}); r.status != 401 || r.code() != "token_used" {
		t.Fatalf("second verify: %d %s", r.status, r.raw)
	}
	// Registering again, now as a member, changes nothing and mails nothing.
	n := smtpSrv.Count()
	if r := post(t, "/auth/register", map[string]string{"email": "new@example.org", "password": "another decent passphrase", "organization": signup.slug}); r.status != 202 {
		t.Fatalf("register again: %d %s", r.status, r.raw)
	}
	time.Sleep(300 * time.Millisecond)
	if smtpSrv.Count() != n {
		t.Fatalf("an existing member got a verification mail")
	}
	for _, m := range smtpSrv.Messages()[unverified:] {
		if slices.Contains(m.To, "early@example.net") {
			t.Fatal("a register on an allowed but unverified domain was mailed")
		}
	}
	_, secret, _ := strings.Cut(token, ".")
	assertLogsHide(t, secret, password)
}

func TestResetRevokesRefreshTokens(t *testing.T) {
	acme := newTenant(t, "reset", tav1.OrganizationSpec{})
	acme.addMember(t, "bob@reset.test", "member") // made with kubectl: no password yet

	reset := func(password string) {
		t.Helper()
		before := smtpSrv.Count()
		if r := post(t, "/auth/forgot-password", map[string]string{"email": "bob@reset.test"}); r.status != 202 {
			t.Fatalf("forgot: %d %s", r.status, r.raw)
		}
		token, _ := mailToken(t, "bob@reset.test", before)
		if r := post(t, "/auth/reset-password", map[string]string{"token": token, "password": password}); r.status != 204 {
			t.Fatalf("reset: %d %s", r.status, r.raw)
		}
		_, secret, _ := strings.Cut(token, ".")
		assertLogsHide(t, secret, password)
	}
	reset("first password for bob")
	var refresh []string
	for range 2 {
		r := post(t, "/auth/login", map[string]string{"email": "bob@reset.test", "password": "first password for bob"})
		if r.status != 200 || r.str("refresh_token") == "" {
			t.Fatalf("login: %d %s", r.status, r.raw)
		}
		refresh = append(refresh, r.str("refresh_token"))
	}
	reset("second password for bob")
	for _, rt := range refresh {
		if r := post(t, "/auth/refresh", map[string]string{"refresh_token": rt}); r.status != 401 || r.code() != "session_revoked" {
			t.Fatalf("a refresh token from before the reset: %d %s", r.status, r.raw)
		}
	}
	if r := post(t, "/auth/login", map[string]string{"email": "bob@reset.test", "password": "first password for bob"}); r.status != 401 {
		t.Fatalf("old password: %d %s", r.status, r.raw)
	}
	if r := post(t, "/auth/login", map[string]string{"email": "bob@reset.test", "password": "second password for bob"}); r.status != 200 {
		t.Fatalf("new password: %d %s", r.status, r.raw)
	}
}

func TestRequiredMFAOnKubernetes(t *testing.T) {
	strict := newTenant(t, "strict", tav1.OrganizationSpec{MFA: tav1.MFASpec{Required: true}})
	strict.addMember(t, "carol@mfa.test", "admin")
	before := smtpSrv.Count()
	post(t, "/users/send-magic-link", map[string]string{"email_address": "carol@mfa.test", "organization": strict.slug})
	token, _ := mailToken(t, "carol@mfa.test", before)
	auth := post(t, "/users/authenticate-magic-link", map[string]string{"token": token})
	ist := auth.str("intermediate_session_token")
	if auth.status != 200 || auth.body["mfa_required"] != true || ist == "" {
		t.Fatalf("authenticate: %d %s", auth.status, auth.raw)
	}
	setup := post(t, "/auth/2fa/setup", map[string]string{"intermediate_session_token": ist})
	if setup.status != 200 || !strings.HasPrefix(setup.str("qr_code"), "data:image/png;base64,") {
		t.Fatalf("setup: %d %s", setup.status, setup.raw)
	}
	code, err := totp.GenerateCode(setup.str("secret"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	en := post(t, "/auth/2fa/enable", map[string]string{"intermediate_session_token": ist, "code": code})
	codes, _ := en.body["recovery_codes"].([]any)
	if en.status != 200 || len(codes) != 10 || en.str("organization.slug") != strict.slug || en.str("access_token") == "" {
		t.Fatalf("enable: %d %s", en.status, en.raw)
	}
	if me := call(t, "GET", "/auth/me", nil, "Authorization", "Bearer "+en.str("access_token")); me.status != 200 || me.str("role") != "admin" {
		t.Fatalf("me: %d %s", me.status, me.raw)
	}
	assertLogsHide(t, setup.str("secret"), code)
}
