// Package sso plays the enterprise-SSO attacks against the operator wired
// as `tenantauth operator` runs it: controllers and admission webhooks in
// one manager, with --dns-resolver pointed at a real DNS server on
// 127.0.0.1. The victim is acme (owner alice, member bob), with its
// verified domain; the attacker is eve, owner of evil, with the namespace
// RBAC a platform team holds there, status included.
//
// The rules themselves have their own tests in controllers/ and webhook/;
// this suite checks that they hold together through the real wiring
// (the operator's label-selected cache serving admission the claims the
// controller wrote).
package sso

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/internal/app"
	"github.com/tenantauth/tenantauth/internal/domains"
	"github.com/tenantauth/tenantauth/internal/testenv"
	"github.com/tenantauth/tenantauth/internal/trust"
)

const (
	systemNS = "tenantauth-system"
	domain   = "acme-corp.test"
	wait     = 30 * time.Second
)

var (
	cfg   *rest.Config
	admin client.Client
	dns   *testenv.DNSServer
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctrl.SetLogger(logr.Discard())
	env, err := testenv.New()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env.WebhookInstallOptions = envtest.WebhookInstallOptions{
		Paths: []string{filepath.Join(testenv.RepoRoot(), "config", "webhook")}, IgnoreSchemeConvertible: true,
	}
	if cfg, err = env.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "start envtest:", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	srv, stopDNS, err := testenv.NewDNS()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stopDNS()
	dns = srv
	if admin, err = client.New(cfg, client.Options{Scheme: app.Scheme()}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: systemNS}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	wh := env.WebhookInstallOptions
	operator, err := app.NewOperator(ctx, cfg, app.OperatorOptions{
		Namespace: systemNS, MetricsAddr: "0", ProbeAddr: "0", AdmissionMode: "enforce",
		AdmissionBypassGroups: "system:masters", WebhookHost: wh.LocalServingHost, WebhookPort: wh.LocalServingPort,
		WebhookCertDir: wh.LocalServingCertDir, ManageWebhookCerts: false, EnableWebhooks: true,
		DNSResolver: dns.Addr, DomainRecheckInterval: 2 * time.Second, DomainRetryInterval: time.Second,
		SSOPrivateNetworks: true, // the tests' identity providers run on 127.0.0.1
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "operator:", err)
		return 1
	}
	done := make(chan error, 1)
	go func() { done <- operator.Start(ctx) }()
	defer func() { cancel(); <-done }()
	return m.Run()
}

// platformTeam gives user everything on Secrets and the tenantauth kinds
// in ns, status included, and returns a client acting as them.
func platformTeam(t *testing.T, ns, user string) client.Client {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "platform-team-" + strings.Split(user, "@")[0]},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"*"}},
			{APIGroups: []string{tav1.GroupVersion.Group}, Verbs: []string{"*"}, Resources: []string{
				"organizations", "organizations/status", "memberships", "apikeys", "ssoconnections", "ssoconnections/status",
			}},
		},
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	g.Expect(admin.Create(ctx, role)).To(Succeed())
	g.Expect(admin.Create(ctx, binding)).To(Succeed())
	rc := rest.CopyConfig(cfg)
	rc.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: []string{"system:authenticated"}}
	c, err := client.New(rc, client.Options{Scheme: app.Scheme(), Mapper: admin.RESTMapper()})
	g.Expect(err).NotTo(HaveOccurred())
	return c
}

// tenant makes namespace ns with an Organization and its owner, as the
// owner's own platform team would, and returns the owner's client.
func tenant(t *testing.T, ns, owner string) (client.Client, *tav1.Organization) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	g.Expect(admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	c := platformTeam(t, ns, owner)
	org := &tav1.Organization{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: ns}}
	g.Expect(c.Create(ctx, org)).To(Succeed())
	g.Expect(c.Create(ctx, &tav1.Membership{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "owner"},
		Spec: tav1.MembershipSpec{Organization: ns, Email: owner, Role: tav1.RoleOwner}})).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(admin.Get(ctx, client.ObjectKeyFromObject(org), org)).To(Succeed())
		g.Expect(meta.IsStatusConditionTrue(org.Status.Conditions, tav1.ConditionReady)).To(BeTrue())
	}).WithTimeout(wait).Should(Succeed())
	return c, org
}

// edit re-reads org and updates it through c after mutate, again when
// the operator wrote it in between.
func edit(c client.Client, org *tav1.Organization, mutate func(*tav1.Organization)) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := admin.Get(context.Background(), client.ObjectKeyFromObject(org), org); err != nil {
			return err
		}
		mutate(org)
		return c.Update(context.Background(), org)
	})
}

func domainOf(g Gomega, org *tav1.Organization) tav1.DomainStatus {
	g.Expect(admin.Get(context.Background(), client.ObjectKeyFromObject(org), org)).To(Succeed())
	for _, d := range org.Status.Domains {
		if d.Name == domain {
			return d
		}
	}
	g.Expect(org.Status.Domains).NotTo(BeEmpty())
	return tav1.DomainStatus{}
}

func claimOwner(g Gomega) string {
	sec := &corev1.Secret{}
	err := admin.Get(context.Background(), client.ObjectKey{Namespace: systemNS, Name: trust.DomainClaimName(domain)}, sec)
	if apierrors.IsNotFound(err) {
		return ""
	}
	g.Expect(err).NotTo(HaveOccurred())
	c, err := trust.ParseDomainClaim(sec, systemNS)
	g.Expect(err).NotTo(HaveOccurred())
	return c.Owner.Ref()
}

func samlMetadata(t *testing.T) string {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "idp"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(200 * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp.acme-corp.test">
<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
<md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>%s</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://idp.acme-corp.test/sso"/>
</md:IDPSSODescriptor></md:EntityDescriptor>`, base64.StdEncoding.EncodeToString(der))
}

// TestAnotherTenantCannotTakeAVerifiedDomain walks the victim through
// verifying its domain and connecting its IdP, and the attacker through
// every way to borrow that domain.
func TestAnotherTenantCannotTakeAVerifiedDomain(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	alice, acme := tenant(t, "acme", "alice@acme-corp.test")
	eve, evil := tenant(t, "evil", "eve@evil.test")
	challenge := domains.ChallengeName(domain)
	inDomains := func(names ...string) func(*tav1.Organization) {
		return func(o *tav1.Organization) {
			o.Spec.Domains = nil
			for _, n := range names {
				o.Spec.Domains = append(o.Spec.Domains, tav1.Domain{Name: n})
			}
		}
	}
	allowSignup := func(o *tav1.Organization) { o.Spec.SelfSignup.AllowedEmailDomains = []string{domain} }

	// The victim verifies its domain through the TXT record.
	g.Expect(edit(alice, acme, inDomains(domain))).To(Succeed())
	g.Expect(edit(alice, acme, allowSignup)).To(MatchError(ContainSubstring("not verified for this Organization")),
		"not before it is verified")
	var acmeToken string
	g.Eventually(func(g Gomega) { acmeToken = domainOf(g, acme).VerificationToken; g.Expect(acmeToken).NotTo(BeEmpty()) }).
		WithTimeout(wait).Should(Succeed())
	dns.SetTXT(challenge, acmeToken)
	g.Eventually(func(g Gomega) { g.Expect(domainOf(g, acme).Verified).To(BeTrue()) }).WithTimeout(wait).Should(Succeed())
	g.Expect(claimOwner(g)).To(Equal("acme/acme"))
	g.Eventually(func() error { return edit(alice, acme, allowSignup) }).WithTimeout(wait).Should(Succeed())

	// The attacker lists it, and even gets its token into the record.
	g.Expect(edit(eve, evil, inDomains(domain))).To(Succeed())
	var evilToken string
	g.Eventually(func(g Gomega) { evilToken = domainOf(g, evil).VerificationToken; g.Expect(evilToken).NotTo(BeEmpty()) }).
		WithTimeout(wait).Should(Succeed())
	dns.SetTXT(challenge, acmeToken, evilToken)
	g.Eventually(func(g Gomega) {
		g.Expect(admin.Get(ctx, client.ObjectKeyFromObject(evil), evil)).To(Succeed())
		c := meta.FindStatusCondition(evil.Status.Conditions, tav1.ConditionDomainsVerified)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(tav1.ReasonDomainClaimed))
	}).WithTimeout(wait).Should(Succeed())

	// It forges its status, then asks for self-signup from the domain.
	now := metav1.Now()
	g.Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := admin.Get(ctx, client.ObjectKeyFromObject(evil), evil); err != nil {
			return err
		}
		evil.Status.Domains = []tav1.DomainStatus{{Name: domain, VerificationToken: acmeToken, Verified: true, VerifiedAt: &now}}
		return eve.Status().Update(ctx, evil)
	})).To(Succeed(), "a platform team may write its status")
	g.Expect(edit(eve, evil, allowSignup)).To(MatchError(ContainSubstring("not verified for this Organization")))
	g.Expect(edit(eve, evil, inDomains(domain, "gmail.com"))).To(MatchError(ContainSubstring("public mail domain")))
	g.Eventually(func(g Gomega) {
		g.Expect(domainOf(g, evil).Verified).To(BeFalse(), "the forged status is put right")
	}).WithTimeout(wait).Should(Succeed())
	g.Consistently(func(g Gomega) {
		g.Expect(claimOwner(g)).To(Equal("acme/acme"), "no claim for the attacker")
		g.Expect(domainOf(g, acme).Verified).To(BeTrue())
	}).WithTimeout(3 * time.Second).Should(Succeed())

	// The victim's member may not connect an IdP; its owner may.
	bob := platformTeam(t, "acme", "bob@acme-corp.test")
	g.Expect(alice.Create(ctx, &tav1.Membership{ObjectMeta: metav1.ObjectMeta{Namespace: "acme", Name: "bob"},
		Spec: tav1.MembershipSpec{Organization: "acme", Email: "bob@acme-corp.test", Role: tav1.RoleMember}})).To(Succeed())
	conn := &tav1.SSOConnection{ObjectMeta: metav1.ObjectMeta{Namespace: "acme", Name: "acme-idp"},
		Spec: tav1.SSOConnectionSpec{Organization: "acme", Protocol: tav1.ProtocolSAML,
			SAML: &tav1.SAMLConnection{MetadataXML: samlMetadata(t)}}}
	g.Eventually(func() error { return bob.Create(ctx, conn.DeepCopy()) }).WithTimeout(wait).
		Should(MatchError(ContainSubstring(`needs role "admin"`)))
	g.Expect(alice.Create(ctx, conn)).To(Succeed())
	g.Expect(conn.Spec.DefaultRole).To(Equal(tav1.RoleMember))
	g.Eventually(func(g Gomega) {
		g.Expect(admin.Get(ctx, client.ObjectKeyFromObject(conn), conn)).To(Succeed())
		g.Expect(meta.IsStatusConditionTrue(conn.Status.Conditions, tav1.ConditionReady)).To(BeTrue())
		g.Expect(conn.Status.IDPCertificateExpiresAt).NotTo(BeNil())
	}).WithTimeout(wait).Should(Succeed())

	// The record removed: the re-check unverifies and releases.
	dns.SetTXT(challenge)
	g.Eventually(func(g Gomega) {
		g.Expect(domainOf(g, acme).Verified).To(BeFalse())
		g.Expect(claimOwner(g)).To(BeEmpty())
	}).WithTimeout(wait).Should(Succeed())
}
