// Package webhookcert makes the operator its own certificate authority for
// the admission webhooks: it keeps a self-signed CA and serving certificate
// in a Secret, renews them, injects the CA into the webhook configurations
// and copies the certificate into the webhook server's folder. It lives
// apart from webhook/ because it knows nothing of admission: it only keeps
// the server that serves it supplied with a certificate.
package webhookcert

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenantauthv1alpha1 "github.com/tenantauth/tenantauth/api/v1alpha1"
)

// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch
//
// The webhook configurations are updated by name only: the chart and
// config/rbac grant get, update and patch with resourceNames, where a
// marker would grant every configuration in the cluster.

// Component is the tenantauth.io/component label value of the webhook
// serving-certificate Secret.
const Component = "webhook-cert"

// Certificate lifetimes. The rotator checks every RotationCheckFrequency and
// renews a certificate LookaheadInterval before it expires, so a replica
// that was down for weeks still comes back to a valid one.
const (
	caCertDuration         = 10 * 365 * 24 * time.Hour
	serverCertDuration     = 365 * 24 * time.Hour
	rotationCheckFrequency = 12 * time.Hour
	lookaheadInterval      = 90 * 24 * time.Hour
)

// Options say where the webhook serving certificate lives and which
// webhook configurations trust it.
type Options struct {
	// Namespace holds the Secret and the webhook Service: the operator's
	// own namespace.
	Namespace string
	// ServiceName is the Service in front of the webhook server; the
	// certificate is issued for its cluster DNS names.
	ServiceName string
	// SecretName is the Secret that stores the CA and the serving
	// certificate (ca.crt, ca.key, tls.crt, tls.key). It is created empty
	// when missing.
	SecretName string
	// CertDir is a writable folder (an emptyDir) the webhook server reads
	// tls.crt and tls.key from; the operator copies every rotation there
	// itself rather than wait for the kubelet's Secret-volume sync.
	CertDir string
	// MutatingConfigName and ValidatingConfigName are the webhook
	// configurations whose caBundle is kept equal to the CA.
	MutatingConfigName   string
	ValidatingConfigName string
}

// SetupRotation makes the operator its own certificate authority: it
// adds to mgr a rotator (github.com/open-policy-agent/cert-controller) that
// keeps a self-signed CA and a serving certificate for the webhook Service
// in the Secret, renews them well before they expire, and injects the CA
// into both webhook configurations.
//
// The returned channel is closed once the certificate files are in CertDir
// and the CA is injected. Call webhook.SetupWithManager only after that (for
// example from a goroutine started before mgr.Start): the manager starts
// its webhook server when the first webhook is registered, and the server
// cannot start without the files. Every replica runs the rotator, since
// every replica serves webhooks.
func SetupRotation(mgr ctrl.Manager, opts Options) (ready chan struct{}, err error) {
	if opts.Namespace == "" || opts.ServiceName == "" || opts.SecretName == "" || opts.CertDir == "" ||
		opts.MutatingConfigName == "" || opts.ValidatingConfigName == "" {
		return nil, errors.New("webhook cert rotation: namespace, service, secret, cert dir and both webhook configuration names are required")
	}
	if err := ensureCertSecret(mgr, opts); err != nil {
		return nil, err
	}
	ready = make(chan struct{})
	svc := opts.ServiceName + "." + opts.Namespace + ".svc"
	err = rotator.AddRotator(mgr, &rotator.CertRotator{
		SecretKey:      types.NamespacedName{Namespace: opts.Namespace, Name: opts.SecretName},
		CertDir:        opts.CertDir,
		CAName:         "tenantauth-webhook-ca",
		CAOrganization: "tenantauth",
		DNSName:        svc,
		ExtraDNSNames:  []string{opts.ServiceName, opts.ServiceName + "." + opts.Namespace, svc + ".cluster.local"},
		IsReady:        ready,
		Webhooks: []rotator.WebhookInfo{
			{Name: opts.MutatingConfigName, Type: rotator.Mutating},
			{Name: opts.ValidatingConfigName, Type: rotator.Validating},
		},
		FieldOwner:             "tenantauth",
		RequireLeaderElection:  false,
		CaCertDuration:         caCertDuration,
		ServerCertDuration:     serverCertDuration,
		RotationCheckFrequency: rotationCheckFrequency,
		LookaheadInterval:      lookaheadInterval,
		// Controller names are unique per process; one rotator per Secret.
		ControllerName: "webhook-cert-rotator-" + opts.Namespace + "-" + opts.SecretName,
	})
	if err != nil {
		return nil, fmt.Errorf("add webhook cert rotator: %w", err)
	}
	if err := mgr.Add(&certFileWriter{reader: mgr.GetClient(), dir: opts.CertDir, every: time.Second,
		key: types.NamespacedName{Namespace: opts.Namespace, Name: opts.SecretName}}); err != nil {
		return nil, fmt.Errorf("add webhook cert file writer: %w", err)
	}
	return ready, nil
}

// ensureCertSecret creates the certificate Secret when it is missing: the
// rotator only updates an existing Secret, and a chart that leaves it out,
// or a cluster where someone deleted it, would otherwise never get a
// certificate. It runs before the manager starts, so it uses a direct
// client rather than the not-yet-started cache.
func ensureCertSecret(mgr ctrl.Manager, opts Options) error {
	c, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper()})
	if err != nil {
		return fmt.Errorf("webhook cert rotation: client: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	key := client.ObjectKey{Namespace: opts.Namespace, Name: opts.SecretName}
	err = c.Get(ctx, key, &corev1.Secret{})
	if !apierrors.IsNotFound(err) {
		if err != nil {
			return fmt.Errorf("webhook cert rotation: get Secret %s: %w", key, err)
		}
		return nil
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: opts.Namespace, Name: opts.SecretName, Labels: map[string]string{
			tenantauthv1alpha1.LabelManagedBy: tenantauthv1alpha1.ManagedByValue,
			tenantauthv1alpha1.LabelComponent: Component,
		}},
		Type: corev1.SecretTypeOpaque,
	}
	if err := c.Create(ctx, secret); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("webhook cert rotation: create Secret %s: %w", key, err)
	}
	return nil
}
