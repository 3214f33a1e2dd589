package controllers

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/internal/trust"
)

// certificate is a self-signed DER certificate valid from notBefore to
// notAfter.
func certificate(t *testing.T, notBefore, notAfter time.Time) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "idp"}, NotBefore: notBefore, NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// openIDProvider serves a discovery document and a JWKS whose key carries
// cert; issuerOverride, when set, is the issuer the document claims.
func openIDProvider(t *testing.T, cert []byte, issuerOverride string) *httptest.Server {
	t.Helper()
	var srv *httptest.Server
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		iss := srv.URL
		if issuerOverride != "" {
			iss = issuerOverride
		}
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": iss, "authorization_endpoint": srv.URL + "/auth", "token_endpoint": srv.URL + "/token",
			"jwks_uri": srv.URL + "/keys", "id_token_signing_alg_values_supported": []string{"ES256"},
		})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]any{{
			"kty": "EC", "use": "sig", "kid": "k1", "x5c": []string{base64.StdEncoding.EncodeToString(cert)},
		}}})
	})
	srv = httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func samlMetadata(cert []byte) string {
	return fmt.Sprintf(`<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp.example.com/saml">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing">
      <ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>
        %s
      </ds:X509Certificate></ds:X509Data></ds:KeyInfo>
    </md:KeyDescriptor>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example.com/sso"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>`, base64.StdEncoding.EncodeToString(cert))
}

func connection(ns, name, org string, mutate func(*tav1.SSOConnection)) *tav1.SSOConnection {
	c := &tav1.SSOConnection{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: tav1.SSOConnectionSpec{Organization: org, Protocol: tav1.ProtocolOIDC}}
	mutate(c)
	return c
}

func oidcSpec(issuer string) func(*tav1.SSOConnection) {
	return func(c *tav1.SSOConnection) {
		c.Spec.OIDC = &tav1.OIDCConnection{Issuer: issuer, ClientID: "tenantauth"}
	}
}

func samlSpec(xml string) func(*tav1.SSOConnection) {
	return func(c *tav1.SSOConnection) {
		c.Spec.Protocol, c.Spec.SAML = tav1.ProtocolSAML, &tav1.SAMLConnection{MetadataXML: xml}
	}
}

// TestSSOConnectionReadiness runs the reconciler against real HTTP
// servers: a connection is Ready once its provider's discovery document
// or metadata is read, says when the signing certificate expires, and
// names what is wrong otherwise.
func TestSSOConnectionReadiness(t *testing.T) {
	startManager(t)
	ctx := context.Background()
	ns := newNamespace(t)
	g := NewWithT(t)
	g.Expect(k8s.Create(ctx, newOrg(ns, "sso-org"))).To(Succeed())
	now := time.Now()
	yearCert := certificate(t, now.Add(-time.Hour), now.Add(365*24*time.Hour))
	soonCert := certificate(t, now.Add(-time.Hour), now.Add(10*24*time.Hour))
	oldCert := certificate(t, now.Add(-48*time.Hour), now.Add(-time.Hour))
	good := openIDProvider(t, yearCert, "")
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()

	tests := []struct {
		name       string
		conn       *tav1.SSOConnection
		ready      metav1.ConditionStatus
		reason     string
		message    string
		certExpiry bool
	}{
		{"oidc provider read", connection(ns, "oidc-good", "sso-org", oidcSpec(good.URL)), metav1.ConditionTrue, tav1.ReasonReady, "signing certificate valid until", true},
		{"oidc certificate expiring", connection(ns, "oidc-soon", "sso-org", oidcSpec(openIDProvider(t, soonCert, "").URL)),
			metav1.ConditionTrue, tav1.ReasonCertificateExpiring, "expires at", true},
		{"oidc provider down", connection(ns, "oidc-down", "sso-org", oidcSpec(down.URL)), metav1.ConditionFalse, tav1.ReasonDiscoveryFailed, "connection refused", false},
		{"oidc document for another issuer", connection(ns, "oidc-other", "sso-org", oidcSpec(openIDProvider(t, yearCert, "https://evil.example.com").URL)),
			metav1.ConditionFalse, tav1.ReasonDiscoveryFailed, `names issuer "https://evil.example.com"`, false},
		{"saml metadata read", connection(ns, "saml-good", "sso-org", samlSpec(samlMetadata(yearCert))), metav1.ConditionTrue, tav1.ReasonReady, "1 sign-on endpoint", true},
		{"saml certificate expired", connection(ns, "saml-old", "sso-org", samlSpec(samlMetadata(oldCert))), metav1.ConditionFalse, tav1.ReasonCertificateExpired, "valid now", false},
		{"saml metadata not XML", connection(ns, "saml-junk", "sso-org", samlSpec("not xml")), metav1.ConditionFalse, tav1.ReasonMetadataInvalid, "not a SAML EntityDescriptor", false},
		{"saml metadata with a DTD", connection(ns, "saml-dtd", "sso-org", samlSpec(`<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>`+samlMetadata(yearCert))),
			metav1.ConditionFalse, tav1.ReasonMetadataInvalid, "DTD", false},
		{"saml metadata without a certificate", connection(ns, "saml-nocert", "sso-org", samlSpec(strings.Replace(samlMetadata(yearCert), `use="signing"`, `use="encryption"`, 1))),
			metav1.ConditionFalse, tav1.ReasonMetadataInvalid, "no signing certificate", false},
		{"no organization", connection(ns, "orphan", "missing-org", oidcSpec(good.URL)), metav1.ConditionFalse, tav1.ReasonOrganizationNotFound, "", false},
	}
	for _, tt := range tests {
		g.Expect(k8s.Create(ctx, tt.conn)).To(Succeed(), tt.name)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Eventually(func(g Gomega) {
				c := readyOf(g, tt.conn, &tt.conn.Status.Conditions)
				g.Expect(c.Status).To(Equal(tt.ready))
				g.Expect(c.Reason).To(Equal(tt.reason))
				g.Expect(c.Message).To(ContainSubstring(tt.message))
				g.Expect(tt.conn.Status.IDPCertificateExpiresAt != nil).To(Equal(tt.certExpiry))
			}).WithTimeout(15 * time.Second).Should(Succeed())
		})
	}
}

// TestSSOConnectionClientSecretStaysSecret: the operator checks that the
// client Secret exists, and its value reaches no status and no event.
func TestSSOConnectionClientSecretStaysSecret(t *testing.T) {
	startManager(t)
	ctx := context.Background()
	ns := newNamespace(t)
	g := NewWithT(t)
	g.Expect(k8s.Create(ctx, newOrg(ns, "sso-secret-org"))).To(Succeed())
	idp := openIDProvider(t, certificate(t, time.Now().Add(-time.Hour), time.Now().Add(90*24*time.Hour)), "")
	const value = "client-secret-value-that-must-not-leak"
	conn := connection(ns, "oidc", "sso-secret-org", func(c *tav1.SSOConnection) {
		oidcSpec(idp.URL)(c)
		c.Spec.OIDC.ClientSecretRef = &tav1.SecretKeyRef{Name: "idp-client", Key: "secret"}
	})
	g.Expect(k8s.Create(ctx, conn)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(readyOf(g, conn, &conn.Status.Conditions).Reason).To(Equal(tav1.ReasonClientSecretMissing))
	}).WithTimeout(15 * time.Second).Should(Succeed())

	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "idp-client"}, StringData: map[string]string{"secret": value}}
	g.Expect(k8s.Create(ctx, sec)).To(Succeed())
	// The Secret is not watched (the cache holds only tenantauth's); a
	// spec change, as a user fixing the reference would make, wakes it.
	// The controller writes the object too (finalizer, status): re-read
	// and retry on a conflict, as a user's kubectl edit would.
	g.Eventually(func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(conn), conn); err != nil {
			return err
		}
		conn.Spec.Claims.Email = "email"
		return k8s.Update(ctx, conn)
	}).WithTimeout(15 * time.Second).Should(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(readyOf(g, conn, &conn.Status.Conditions).Status).To(Equal(metav1.ConditionTrue))
	}).WithTimeout(15 * time.Second).Should(Succeed())

	raw, err := json.Marshal(conn.Status)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(raw)).NotTo(ContainSubstring(value))
	evs := &eventsv1.EventList{}
	g.Expect(k8s.List(ctx, evs, client.InNamespace(ns))).To(Succeed())
	g.Expect(evs.Items).NotTo(BeEmpty(), "the missing Secret was announced")
	for _, e := range evs.Items {
		g.Expect(e.Note).NotTo(ContainSubstring(value))
	}
}

// TestSSOConnectionClientSecretRecord: the value is copied into the
// connection's record in the system namespace, owned by its UID, kept in
// step with the reference, and removed with the reference and with the
// connection.
func TestSSOConnectionClientSecretRecord(t *testing.T) {
	startManager(t)
	ctx := context.Background()
	ns := newNamespace(t)
	g := NewWithT(t)
	g.Expect(k8s.Create(ctx, newOrg(ns, "sso-record-org"))).To(Succeed())
	idp := openIDProvider(t, certificate(t, time.Now().Add(-time.Hour), time.Now().Add(90*24*time.Hour)), "")
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "idp-client"},
		StringData: map[string]string{"secret": "first-value", "next": "second-value"}})).To(Succeed())
	conn := connection(ns, "oidc", "sso-record-org", func(c *tav1.SSOConnection) {
		oidcSpec(idp.URL)(c)
		c.Spec.OIDC.ClientSecretRef = &tav1.SecretKeyRef{Name: "idp-client", Key: "secret"}
	})
	g.Expect(k8s.Create(ctx, conn)).To(Succeed())
	key := client.ObjectKey{Namespace: systemNS, Name: trust.SSOClientSecretName(conn.UID)}
	record := func(g Gomega) *trust.SSOClientSecret {
		sec := &corev1.Secret{}
		g.Expect(k8s.Get(ctx, key, sec)).To(Succeed())
		rec, err := trust.ParseSSOClientSecret(sec, systemNS)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(rec.Owner.Owns(conn)).To(BeTrue())
		return rec
	}
	g.Eventually(func(g Gomega) { g.Expect(record(g).Secret).To(Equal("first-value")) }).WithTimeout(15 * time.Second).Should(Succeed())

	update := func(f func(*tav1.SSOConnection)) {
		g.Eventually(func() error {
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(conn), conn); err != nil {
				return err
			}
			f(conn)
			return k8s.Update(ctx, conn)
		}).Should(Succeed())
	}
	update(func(c *tav1.SSOConnection) { c.Spec.OIDC.ClientSecretRef.Key = "next" })
	g.Eventually(func(g Gomega) { g.Expect(record(g).Secret).To(Equal("second-value")) }).WithTimeout(15 * time.Second).Should(Succeed())

	update(func(c *tav1.SSOConnection) { c.Spec.OIDC.ClientSecretRef = nil })
	g.Eventually(func() bool { return apierrors.IsNotFound(k8s.Get(ctx, key, &corev1.Secret{})) }).WithTimeout(15 * time.Second).Should(BeTrue())

	update(func(c *tav1.SSOConnection) {
		c.Spec.OIDC.ClientSecretRef = &tav1.SecretKeyRef{Name: "idp-client", Key: "secret"}
	})
	g.Eventually(func(g Gomega) { g.Expect(record(g).Secret).To(Equal("first-value")) }).WithTimeout(15 * time.Second).Should(Succeed())
	g.Expect(k8s.Delete(ctx, conn)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, key, &corev1.Secret{})) && apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(conn), conn))
	}).WithTimeout(15 * time.Second).Should(BeTrue())
}
