package session

import (
	"slices"

	"github.com/tenantauth/tenantauth/api/consts"
	"github.com/tenantauth/tenantauth/authserver/directory"
	"github.com/tenantauth/tenantauth/authserver/problem"
)

// SSOGate refuses a session that did not come through the organization's
// identity provider when the organization requires single sign-on
// (authMethods.ssoRequired). Owners pass: the break-glass way in when the
// IdP is down or misconfigured. Every way into a session ends here
// (password, magic link, signup and their second factors, through
// account.CompleteLogin), and so does every refresh: a session made
// before the organization turned the requirement on stops at its next
// refresh, within one access-token lifetime, and works again if the
// requirement is turned off.
func SSOGate(m directory.Membership, amr []string) error {
	if !m.Org.SSORequired || slices.Contains(amr, "sso") || m.Member.Role == consts.RoleOwner {
		return nil
	}
	return problem.SSORequired.New()
}
