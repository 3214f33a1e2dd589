package webhookcert

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	tenantauthv1alpha1 "github.com/tenantauth/tenantauth/api/v1alpha1"
)

// TestCertRotation starts a manager with only the rotator, over a Secret
// holding a CA that expires in 30 days: inside the renewal window, so the
// rotator must replace it, issue a serving certificate for the Service and
// inject the new CA into both webhook configurations. A goroutine stands in
// for the kubelet, projecting the Secret into the cert dir.
func TestCertRotation(t *testing.T) {
	ns := newNamespace(t)
	opts := Options{
		Namespace:            ns,
		ServiceName:          "tenantauth-webhook",
		SecretName:           "tenantauth-webhook-cert",
		CertDir:              t.TempDir(),
		MutatingConfigName:   ns + "-mutating",
		ValidatingConfigName: ns + "-validating",
	}
	oldCA, oldKey := selfSignedCA(t, "tenantauth-webhook-ca", 30*24*time.Hour)
	mustCreate(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: opts.SecretName},
		Data:       map[string][]byte{"ca.crt": oldCA, "ca.key": oldKey},
	})
	mutating, validating := webhookConfigs(opts)
	mustCreate(t, mutating)
	mustCreate(t, validating)
	t.Cleanup(func() {
		_ = admin.Delete(testCtx, mutating)
		_ = admin.Delete(testCtx, validating)
	})

	m, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		t.Fatal(err)
	}
	ready, err := SetupRotation(m, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(testCtx)
	done := make(chan error, 1)
	go func() { done <- m.Start(ctx) }()
	projected := make(chan struct{})
	go func() {
		defer close(projected)
		projectSecret(ctx, client.ObjectKey{Namespace: ns, Name: opts.SecretName}, opts.CertDir)
	}()
	// Both the manager's file writer and projectSecret write into the
	// TempDir: wait for both to stop before its cleanup (registered
	// first, so run last) removes it, or a late write races RemoveAll.
	t.Cleanup(func() {
		cancel()
		<-projected
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})

	select {
	case <-ready:
	case <-time.After(90 * time.Second):
		t.Fatal("certificates not ready after 90s")
	}

	secret := &corev1.Secret{}
	if err := admin.Get(testCtx, client.ObjectKey{Namespace: ns, Name: opts.SecretName}, secret); err != nil {
		t.Fatal(err)
	}
	caPEM := secret.Data["ca.crt"]
	if bytes.Equal(caPEM, oldCA) {
		t.Fatal("the CA expiring in 30 days was not rotated")
	}
	ca := parseCert(t, caPEM)
	if !ca.IsCA || time.Until(ca.NotAfter) < 9*365*24*time.Hour {
		t.Errorf("new CA: IsCA %v, expires %s: want a CA valid for about 10 years", ca.IsCA, ca.NotAfter)
	}
	serving := parseCert(t, secret.Data["tls.crt"])
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	for _, name := range []string{"tenantauth-webhook." + ns + ".svc", "tenantauth-webhook." + ns + ".svc.cluster.local"} {
		if _, err := serving.Verify(x509.VerifyOptions{DNSName: name, Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("serving certificate does not verify for %s: %v", name, err)
		}
	}
	if time.Until(serving.NotAfter) < 300*24*time.Hour {
		t.Errorf("serving certificate expires %s: want about a year", serving.NotAfter)
	}

	if err := admin.Get(testCtx, client.ObjectKeyFromObject(mutating), mutating); err != nil {
		t.Fatal(err)
	}
	if err := admin.Get(testCtx, client.ObjectKeyFromObject(validating), validating); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mutating.Webhooks[0].ClientConfig.CABundle, caPEM) || !bytes.Equal(validating.Webhooks[0].ClientConfig.CABundle, caPEM) {
		t.Error("the new CA was not injected into both webhook configurations")
	}
	// The cert dir follows the Secret as a kubelet projection does, a
	// moment after it: wait for it.
	var onDisk []byte
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if onDisk, err = os.ReadFile(filepath.Join(opts.CertDir, "tls.crt")); err == nil && bytes.Equal(onDisk, secret.Data["tls.crt"]) {
			break
		}
	}
	if err != nil || !bytes.Equal(onDisk, secret.Data["tls.crt"]) {
		t.Errorf("cert dir does not hold the serving certificate after 30s: %v", err)
	}
}

func TestSetupRotationCreatesSecret(t *testing.T) {
	ns := newNamespace(t)
	opts := Options{Namespace: ns, ServiceName: "svc", SecretName: "made-for-you", CertDir: t.TempDir(),
		MutatingConfigName: "m", ValidatingConfigName: "v"}
	m, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := SetupRotation(m, opts); err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{}
	if err := admin.Get(testCtx, client.ObjectKey{Namespace: ns, Name: opts.SecretName}, secret); err != nil {
		t.Fatalf("secret not created: %v", err)
	}
	if secret.Labels[tenantauthv1alpha1.LabelManagedBy] != tenantauthv1alpha1.ManagedByValue ||
		secret.Labels[tenantauthv1alpha1.LabelComponent] != Component {
		t.Errorf("labels %v", secret.Labels)
	}
	if _, err := SetupRotation(m, Options{}); err == nil {
		t.Error("empty options accepted")
	}
}

// projectSecret copies the certificate Secret into dir as the kubelet does
// for a Secret volume.
func projectSecret(ctx context.Context, key client.ObjectKey, dir string) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s := &corev1.Secret{}
		if admin.Get(ctx, key, s) != nil || len(s.Data["tls.crt"]) == 0 {
			continue
		}
		for name, data := range s.Data {
			_ = os.WriteFile(filepath.Join(dir, name), data, 0o600)
		}
	}
}

func webhookConfigs(opts Options) (*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhookConfiguration) {
	none := admissionregistrationv1.SideEffectClassNone
	ignore := admissionregistrationv1.Ignore
	cc := admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{
		Namespace: opts.Namespace, Name: opts.ServiceName, Path: new("/unused"),
	}}
	// The rules match a group nothing serves, so these configurations
	// never intercept a request of the other tests.
	rules := []admissionregistrationv1.RuleWithOperations{{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
		Rule: admissionregistrationv1.Rule{APIGroups: []string{"certtest.example.com"}, APIVersions: []string{"v1"},
			Resources: []string{"widgets"}},
	}}
	return &admissionregistrationv1.MutatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: opts.MutatingConfigName},
			Webhooks: []admissionregistrationv1.MutatingWebhook{{Name: "m.certtest.example.com", ClientConfig: cc, Rules: rules,
				SideEffects: &none, FailurePolicy: &ignore, AdmissionReviewVersions: []string{"v1"}}},
		}, &admissionregistrationv1.ValidatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: opts.ValidatingConfigName},
			Webhooks: []admissionregistrationv1.ValidatingWebhook{{Name: "v.certtest.example.com", ClientConfig: cc, Rules: rules,
				SideEffects: &none, FailurePolicy: &ignore, AdmissionReviewVersions: []string{"v1"}}},
		}
}

// selfSignedCA makes a CA certificate and PKCS#1 key, as the rotator
// stores them, valid for validFor from now.
func selfSignedCA(t *testing.T, cn string, validFor time.Duration) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"tenantauth"}},
		DNSNames:              []string{cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(validFor),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
}

func parseCert(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatal("no PEM certificate")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
