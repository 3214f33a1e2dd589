package sso

import (
	"time"

	"github.com/tenantauth/tenantauth/authserver/directory"
	"github.com/tenantauth/tenantauth/authserver/problem"
)

// notReadyRetry is the Retry-After of a start refused because every
// connection is reported not ready: the operator re-reads a failing
// provider every minute.
const notReadyRetry = 30 * time.Second

// Resolve finds the connection a sign-in goes through: the organization's
// (by ID or slug) when organization is given, else the one of the
// organization that verified email's domain. An organization with several
// connections uses its oldest, so every replica picks the same, passing
// over those the operator reports not ready (a provider it could not read,
// invalid metadata, an expired certificate). Nothing found is
// sso_not_configured, whichever part did not match, so the answer tells
// nobody which organizations exist; connections all reported not ready
// are sso_unavailable, as a provider found down at start is, rather than
// a redirect to a provider that cannot sign anyone in.
//
// Ready comes from status, which the organization's own platform team may
// write: a forged Ready=False only turns away its own sign-ins, and a
// forged Ready=True (or none) only leads to the provider, whose answer is
// checked as ever.
func Resolve(dir *directory.Directory, organization, email string) (*directory.SSOConnection, *directory.Org, error) {
	var org *directory.Org
	var ok bool
	switch {
	case organization != "":
		org, ok = dir.Org(organization)
	case email != "":
		org, ok = dir.DomainOrg(directory.EmailDomain(email))
	}
	if !ok {
		return nil, nil, problem.SSONotConfigured.New()
	}
	conns := dir.SSOConnectionsOf(org.Ref)
	if len(conns) == 0 {
		return nil, nil, problem.SSONotConfigured.New()
	}
	for _, c := range conns {
		if c.NotReady == "" {
			return c, org, nil
		}
	}
	return nil, nil, problem.SSOUnavailable.Because(
		"the organization's identity provider is not working (its single sign-on connection is reported not ready); retry later, or ask the organization's administrators").
		After(notReadyRetry)
}
