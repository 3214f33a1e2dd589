package webhook

import (
	"context"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenantauthv1alpha1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/internal/identity"
)

// SSO just-in-time Memberships: the second and last rule the auth server
// passes. At a first SSO sign-in it may create an enabled Membership
// annotated with the SSOConnection it came through, when:
//
//   - the connection exists in the Membership's namespace, is not being
//     deleted, and belongs to the Membership's organization;
//   - the role is the connection's defaultRole or the role of one of its
//     roleMappings, and never owner;
//   - the email is on a domain verified for that organization: the
//     operator's claim in the system namespace names it by UID (status is
//     never read).
//
// The connection's roles were themselves admitted by an owner or admin of
// the organization (ssoconnection.go), so the auth server hands out
// nothing that person could not.

// ssoJIT decides the auth server's create of an SSO Membership; the
// lookups it needs are made here, the decision in ssoJITDenial.
func (v *MembershipValidator) ssoJIT(ctx context.Context, org *tenantauthv1alpha1.Organization, old, cur *tenantauthv1alpha1.Membership, name string) (string, error) {
	if old != nil {
		return "the auth server may only create Memberships", nil
	}
	conn := &tenantauthv1alpha1.SSOConnection{}
	key := client.ObjectKey{Namespace: cur.Namespace, Name: name}
	err := v.lookup.cache.Get(ctx, key, conn)
	if apierrors.IsNotFound(err) {
		err = v.lookup.live.Get(ctx, key, conn)
	}
	switch {
	case apierrors.IsNotFound(err):
		conn = nil
	case err != nil:
		return "", fmt.Errorf("read SSOConnection %s: %w", key, err)
	}
	email := identity.NormalizeEmail(cur.Spec.Email)
	domain := ""
	if at := strings.LastIndexByte(email, '@'); at > 0 {
		domain = email[at+1:]
	}
	verified := false
	if domain != "" {
		if verified, err = v.lookup.domainVerifiedFor(ctx, org, domain); err != nil {
			return "", err
		}
	}
	return ssoJITDenial(org, conn, cur, verified), nil
}

// ssoJITDenial is the rule above as a pure function; conn is nil when the
// annotated connection does not exist.
func ssoJITDenial(org *tenantauthv1alpha1.Organization, conn *tenantauthv1alpha1.SSOConnection, cur *tenantauthv1alpha1.Membership, domainVerified bool) string {
	if conn == nil || conn.DeletionTimestamp != nil || conn.Spec.Organization != org.Name || conn.Namespace != org.Namespace {
		return fmt.Sprintf("the auth server may create SSO Memberships only for an SSOConnection of organization %q", org.Name)
	}
	role := roleOf(cur)
	allowed := role == conn.EffectiveDefaultRole()
	for _, m := range conn.Spec.RoleMappings {
		allowed = allowed || m.Role == role
	}
	if role == tenantauthv1alpha1.RoleOwner || !allowed || cur.Spec.Disabled {
		return fmt.Sprintf("the auth server may only create enabled SSO Memberships with a role of SSOConnection %q (its defaultRole or a roleMappings role, never owner), not %q", conn.Name, role)
	}
	if !domainVerified {
		return fmt.Sprintf("SSO Memberships are made just in time only for emails on a domain verified for organization %q", org.Name)
	}
	return ""
}
