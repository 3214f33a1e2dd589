package sso

import (
	"github.com/tenantauth/tenantauth/authserver/directory"
	"github.com/tenantauth/tenantauth/authserver/problem"
)

// Resolve finds the connection a sign-in goes through: the organization's
// (by ID or slug) when organization is given, else the one of the
// organization that verified email's domain. An organization with several
// connections uses its oldest, so every replica picks the same. Nothing
// found is sso_not_configured, whichever part did not match, so the answer
// tells nobody which organizations exist.
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
	return conns[0], org, nil
}
