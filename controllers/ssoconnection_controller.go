package controllers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/internal/netguard"
)

// Defaults of the SSOConnection reconciler.
const (
	// DefaultSSORecheckInterval is how often a working connection's
	// discovery document or metadata is read again.
	DefaultSSORecheckInterval = time.Hour
	// DefaultSSORetryInterval is how often a failing one is retried.
	DefaultSSORetryInterval = time.Minute
	// CertificateExpiryWarning is how long before the IdP's signing
	// certificate expires the connection reports CertificateExpiring.
	CertificateExpiryWarning = 30 * 24 * time.Hour
)

// SSOConnectionReconciler reads each SSOConnection's identity provider,
// the OpenID Provider's discovery document or the SAML metadata, and
// reports on Ready whether it is usable and when its signing certificate
// expires. The auth server may read Secrets only in the system namespace,
// so the reconciler copies the OIDC client secret into a record there
// (trust.SSOClientSecretName, owned by the connection's UID) and removes
// it when the reference goes or the connection is deleted. The value is
// never logged or put in status or events.
type SSOConnectionReconciler struct {
	client.Client
	// SystemNamespace holds the client-secret records.
	SystemNamespace string
	// APIReader reads the client Secret live: the cache holds only
	// Secrets tenantauth labelled.
	APIReader client.Reader
	Recorder  events.EventRecorder
	// HTTPClient fetches discovery documents and metadata; nil is a
	// client with a 10 second timeout that follows redirects only to
	// https.
	HTTPClient *http.Client
	// Now is the clock; tests replace it.
	Now func() time.Time
	// RecheckInterval and RetryInterval space the fetches; zero takes the
	// defaults.
	RecheckInterval, RetryInterval time.Duration
}

// ssoScope is what one reconcile of an SSOConnection knows.
type ssoScope struct {
	conn *tav1.SSOConnection
	now  time.Time
	// provider is what the fetch found; nil until then.
	provider *providerInfo
	outcome
}

// providerInfo is what an identity provider published.
type providerInfo struct {
	// summary says what was read, for the Ready message.
	summary string
	// certs are its signing certificates' validity periods; none when it
	// published none (an OpenID Provider need not).
	certs []validity
}

// validity is a certificate's NotBefore and NotAfter.
type validity struct{ notBefore, notAfter time.Time }

// +kubebuilder:rbac:groups=tenantauth.io,resources=ssoconnections,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=tenantauth.io,resources=ssoconnections/status,verbs=get;update;patch

// Reconcile reads the connection's identity provider and sets Ready.
func (r *SSOConnectionReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	conn := &tav1.SSOConnection{}
	if err := r.Get(ctx, req.NamespacedName, conn); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !conn.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.reconcileDelete(ctx, conn)
	}
	if conn.Namespace == r.SystemNamespace {
		return ctrl.Result{}, nil // tenant objects there are never served
	}
	if err := ensureFinalizer(ctx, r.Client, conn); err != nil {
		return ctrl.Result{}, err
	}
	orig := conn.DeepCopy()
	s := &ssoScope{conn: conn, now: r.Now()}
	defer func() { retErr = errors.Join(retErr, r.writeStatus(ctx, orig, s, retErr == nil)) }()
	res, err := runPhases(ctx, s, r.checkOrganization, r.checkClientSecret, r.fetchProvider)
	if err != nil {
		return res, err
	}
	if s.stopped() {
		return ctrl.Result{RequeueAfter: r.retryInterval()}, nil
	}
	return ctrl.Result{RequeueAfter: r.recheckInterval()}, nil
}

// writeStatus turns what the phases found into Ready and
// idpCertificateExpiresAt. An expiring certificate leaves the connection
// Ready, with reason CertificateExpiring; an expired one does not.
func (r *SSOConnectionReconciler) writeStatus(ctx context.Context, orig *tav1.SSOConnection, s *ssoScope, complete bool) error {
	conn := s.conn
	if complete {
		conn.Status.ObservedGeneration = conn.Generation
	}
	var c *condition
	if p := s.provider; p != nil && s.blocked == nil {
		conn.Status.IDPCertificateExpiresAt = nil
		if t, ok := p.expiry(s.now); ok {
			conn.Status.IDPCertificateExpiresAt = &metav1.Time{Time: t}
		}
		c = certificateCondition(p, s.now)
	}
	if c == nil {
		c = s.readiness(complete, "")
	}
	if c != nil {
		setReady(&conn.Status.Conditions, conn.Generation, c)
		announce(r.Recorder, conn, orig.Status.Conditions, c)
	}
	return patchStatus(ctx, r.Client, orig, conn, orig.Status, conn.Status)
}

// certificateCondition is Ready for a provider that was read.
func certificateCondition(p *providerInfo, now time.Time) *condition {
	expiry, ok := p.expiry(now)
	switch {
	case len(p.certs) == 0:
		return &condition{ready: true, reason: tav1.ReasonReady, message: p.summary}
	case !ok:
		msg := fmt.Sprintf("none of the identity provider's %d signing certificate(s) is valid now; sign-in through it fails: ask the IdP for a current one", len(p.certs))
		return &condition{reason: tav1.ReasonCertificateExpired, message: msg,
			once: &announcement{corev1.EventTypeWarning, tav1.ReasonCertificateExpired, "CheckCertificate", msg}}
	case expiry.Sub(now) < CertificateExpiryWarning:
		msg := fmt.Sprintf("%s; its signing certificate expires at %s: rotate it at the identity provider and update the metadata",
			p.summary, expiry.UTC().Format(time.RFC3339))
		return &condition{ready: true, reason: tav1.ReasonCertificateExpiring, message: msg,
			once: &announcement{corev1.EventTypeWarning, tav1.ReasonCertificateExpiring, "CheckCertificate", msg}}
	}
	return &condition{ready: true, reason: tav1.ReasonReady,
		message: fmt.Sprintf("%s; signing certificate valid until %s", p.summary, expiry.UTC().Format(time.RFC3339))}
}

// checkOrganization blocks a connection whose Organization is missing.
func (r *SSOConnectionReconciler) checkOrganization(ctx context.Context, s *ssoScope) (ctrl.Result, error) {
	org := &tav1.Organization{}
	err := r.Get(ctx, client.ObjectKey{Namespace: s.conn.Namespace, Name: s.conn.Spec.Organization}, org)
	if apierrors.IsNotFound(err) {
		s.blockOnce(tav1.ReasonOrganizationNotFound,
			fmt.Sprintf("no Organization %q in this namespace", s.conn.Spec.Organization),
			announcement{corev1.EventTypeWarning, tav1.ReasonOrganizationNotFound, "CheckReference",
				fmt.Sprintf("Organization %q not found", s.conn.Spec.Organization)})
		return ctrl.Result{}, nil
	}
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("get organization of %s: %w", s.conn.Name, err)
	}
	return ctrl.Result{}, nil
}

// checkClientSecret checks that the Secret and data key of
// spec.oidc.clientSecretRef exist and copies the value into the
// connection's record in the system namespace. The value goes nowhere
// else: not into the scope, an error, an event or status.
func (r *SSOConnectionReconciler) checkClientSecret(ctx context.Context, s *ssoScope) (ctrl.Result, error) {
	if s.conn.Spec.OIDC == nil || s.conn.Spec.OIDC.ClientSecretRef == nil {
		return ctrl.Result{}, r.removeClientSecretRecords(ctx, s.conn)
	}
	ref := s.conn.Spec.OIDC.ClientSecretRef
	sec := &corev1.Secret{}
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: s.conn.Namespace, Name: ref.Name}, sec)
	missing := ""
	switch {
	case apierrors.IsNotFound(err):
		missing = fmt.Sprintf("Secret %q named by spec.oidc.clientSecretRef does not exist", ref.Name)
	case err != nil:
		return ctrl.Result{}, fmt.Errorf("get client Secret %s of %s: %w", ref.Name, s.conn.Name, err)
	case len(sec.Data[ref.Key]) == 0:
		missing = fmt.Sprintf("Secret %q has no data key %q (spec.oidc.clientSecretRef)", ref.Name, ref.Key)
	}
	if missing != "" {
		s.blockOnce(tav1.ReasonClientSecretMissing, missing,
			announcement{corev1.EventTypeWarning, tav1.ReasonClientSecretMissing, "CheckReference", missing})
		return ctrl.Result{}, r.removeClientSecretRecords(ctx, s.conn)
	}
	return ctrl.Result{}, r.writeClientSecretRecord(ctx, s.conn, sec.Data[ref.Key])
}

// fetchProvider reads the discovery document or the metadata.
func (r *SSOConnectionReconciler) fetchProvider(ctx context.Context, s *ssoScope) (ctrl.Result, error) {
	var err error
	reason := tav1.ReasonDiscoveryFailed
	switch s.conn.Spec.Protocol {
	case tav1.ProtocolOIDC:
		s.provider, err = discoverOIDC(ctx, r.httpClient(), s.conn.Spec.OIDC)
	case tav1.ProtocolSAML:
		reason = tav1.ReasonMetadataInvalid
		s.provider, err = readSAMLMetadata(ctx, r.httpClient(), s.conn.Spec.SAML)
	default:
		err = fmt.Errorf("unknown protocol %q", s.conn.Spec.Protocol)
	}
	if err != nil {
		s.provider = nil
		s.blockOnce(reason, err.Error(), announcement{corev1.EventTypeWarning, reason, "FetchProvider", err.Error()})
	}
	return ctrl.Result{}, nil
}

func (r *SSOConnectionReconciler) httpClient() *http.Client {
	if r.HTTPClient != nil {
		return r.HTTPClient
	}
	return providerClient(false)
}

// providerClient bounds every fetch and refuses redirects that leave
// https, so a provider cannot send the operator to plain http. Unless
// private is set, it connects to public addresses only: the URL is a
// tenant admin's choice, and the operator sits in the cluster network.
func providerClient(private bool) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if !private {
		t.DialContext = netguard.Dialer(10 * time.Second).DialContext
		t.Proxy = nil // a proxy would dial for us, unchecked
	}
	return &http.Client{
		Timeout:   10 * time.Second,
		Transport: t,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			if req.URL.Scheme != "https" {
				return fmt.Errorf("refusing a redirect to %s: https only", req.URL.Scheme)
			}
			return nil
		},
	}
}

func (r *SSOConnectionReconciler) recheckInterval() time.Duration {
	if r.RecheckInterval > 0 {
		return r.RecheckInterval
	}
	return DefaultSSORecheckInterval
}

func (r *SSOConnectionReconciler) retryInterval() time.Duration {
	if r.RetryInterval > 0 {
		return r.RetryInterval
	}
	return DefaultSSORetryInterval
}

// SetupWithManager registers the reconciler; a change of an Organization
// wakes its connections.
func (r *SSOConnectionReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Now == nil {
		r.Now = time.Now
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&tav1.SSOConnection{}).
		Watches(&tav1.Organization{}, handler.EnqueueRequestsFromMapFunc(referrers(mgr.GetClient(), &tav1.SSOConnectionList{}))).
		Named("ssoconnection").
		Complete(r)
}
