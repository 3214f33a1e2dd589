package kube

import (
	"context"
	"fmt"
	"strings"

	"github.com/tenantauth/tenantauth/authserver/account"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/internal/identity"
)

// LabelSignup marks the Memberships that self-signup created.
const LabelSignup = "tenantauth.io/signup"

// AnnotationSSOConnection names the SSOConnection whose first sign-in made
// a Membership just in time; admission reads it (tav1).
const AnnotationSSOConnection = tav1.AnnotationSSOConnection

// LabelSSO marks the Memberships that an SSO sign-in made.
const LabelSSO = "tenantauth.io/sso"

// MembershipWriter creates the Membership of a verified signup as a real
// object in the organization's namespace, so `kubectl get mbr` shows it
// and the operator and webhooks treat it like any other.
type MembershipWriter struct {
	Client client.Client
}

var _ account.MembershipWriter = (*MembershipWriter)(nil)

// CreateMembership creates the Membership named by
// account.SignupMembershipName. One that already exists (a retried
// signup) is success. A refusal by admission (Forbidden, Invalid) wraps
// account.ErrMembershipRefused.
func (w *MembershipWriter) CreateMembership(ctx context.Context, orgRef, email, role string) error {
	return w.create(ctx, orgRef, "", email, role)
}

// CreateSSOMembership creates the Membership of a first SSO sign-in
// through connection (an SSOConnection in the organization's namespace),
// annotated with it: admission lets the auth server create it only with
// one of that connection's roles, never owner, for an email on a domain
// verified for the organization.
func (w *MembershipWriter) CreateSSOMembership(ctx context.Context, orgRef, connection, email, role string) error {
	if connection == "" {
		return fmt.Errorf("SSO membership in %s: no connection", orgRef)
	}
	return w.create(ctx, orgRef, connection, email, role)
}

func (w *MembershipWriter) create(ctx context.Context, orgRef, connection, email, role string) error {
	ns, org, ok := strings.Cut(orgRef, "/")
	if !ok || ns == "" || org == "" {
		return fmt.Errorf("organization reference %q is not <namespace>/<name>", orgRef)
	}
	m := &tav1.Membership{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: account.SignupMembershipName(org, email),
			Labels: map[string]string{tav1.LabelManagedBy: tav1.ManagedByValue, LabelSignup: "true"},
		},
		Spec: tav1.MembershipSpec{Organization: org, Email: identity.NormalizeEmail(email), Role: role},
	}
	if connection != "" {
		delete(m.Labels, LabelSignup)
		m.Labels[LabelSSO] = "true"
		m.Annotations = map[string]string{AnnotationSSOConnection: connection}
	}
	err := w.Client.Create(ctx, m)
	switch {
	case err == nil, apierrors.IsAlreadyExists(err):
		return nil
	case apierrors.IsForbidden(err), apierrors.IsInvalid(err):
		return fmt.Errorf("create membership %s/%s: %w: %w", ns, m.Name, account.ErrMembershipRefused, err)
	}
	return fmt.Errorf("create membership %s/%s: %w", ns, m.Name, err)
}
