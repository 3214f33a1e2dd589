package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync/atomic"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/tenantauth/tenantauth/internal/webhookcert"
	"github.com/tenantauth/tenantauth/webhook"
)

// setupWebhooks registers the admission webhooks. With operator-managed
// certificates they are registered once the rotator has written the
// serving certificate, because the webhook server starts with the first
// registration and needs the files.
func setupWebhooks(mgr ctrl.Manager, o OperatorOptions) error {
	opts := webhook.Options{
		Mode: o.AdmissionMode, BypassGroups: splitList(o.AdmissionBypassGroups),
		SignupUsername: o.AuthServerUsername, OperatorUsername: operatorUsername(o),
		SystemNamespace: o.Namespace,
	}
	// Ready only once the webhook server serves: `helm install --wait`
	// then waits for admission too. The server must not be touched before
	// its certificate exists, so the check is armed after registration.
	var registered atomic.Bool
	if err := mgr.AddReadyzCheck("webhooks", func(req *http.Request) error {
		if !registered.Load() {
			return errors.New("webhook serving certificate not ready yet")
		}
		return mgr.GetWebhookServer().StartedChecker()(req)
	}); err != nil {
		return err
	}
	if !o.ManageWebhookCerts {
		registered.Store(true)
		return webhook.SetupWithManager(mgr, opts)
	}
	ready, err := webhookcert.SetupRotation(mgr, webhookcert.Options{
		Namespace: o.Namespace, ServiceName: o.WebhookServiceName, SecretName: o.WebhookSecretName, CertDir: o.WebhookCertDir,
		MutatingConfigName: o.MutatingConfigName, ValidatingConfigName: o.ValidatingConfigName,
	})
	if err != nil {
		return err
	}
	return mgr.Add(everyReplica(func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			return nil
		case <-ready:
		}
		if err := webhook.SetupWithManager(mgr, opts); err != nil {
			return fmt.Errorf("register webhooks: %w", err)
		}
		registered.Store(true)
		<-ctx.Done()
		return nil
	}))
}

// everyReplica is a runnable that runs on every replica, not only the
// leader: every replica serves webhooks.
type everyReplica func(ctx context.Context) error

func (f everyReplica) Start(ctx context.Context) error { return f(ctx) }

// NeedLeaderElection is false: see everyReplica.
func (everyReplica) NeedLeaderElection() bool { return false }

// operatorUsername is the flag, else the in-cluster service account's user
// name, built from the mounted namespace and the pod's service account.
func operatorUsername(o OperatorOptions) string {
	if o.OperatorUsername != "" {
		return o.OperatorUsername
	}
	sa := os.Getenv("SERVICE_ACCOUNT_NAME")
	if sa == "" {
		return ""
	}
	return "system:serviceaccount:" + o.Namespace + ":" + strings.TrimSpace(sa)
}
