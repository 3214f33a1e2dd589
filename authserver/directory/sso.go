package directory

import (
	"sort"
	"strings"
	"time"
)

// SSOConnection is what the server needs of an SSOConnection: its
// organization, how to reach the identity provider, and how its claims
// map to an email and a role.
type SSOConnection struct {
	// Ref is "<namespace>/<name>"; UID is the object's, so a sign-in that
	// began on a connection since deleted and re-made is refused.
	Ref    string
	UID    string
	OrgRef string
	// Protocol is "oidc" or "saml".
	Protocol string
	// Issuer, ClientID and ClientSecret configure OIDC. ClientSecret comes
	// from the operator's record in the system namespace, never from a
	// tenant's Secret; empty for a public client.
	Issuer       string
	ClientID     string
	ClientSecret string
	Scopes       []string
	// SAMLMetadataURL or SAMLMetadataXML configure SAML.
	SAMLMetadataURL string
	SAMLMetadataXML string
	// ClaimEmail and ClaimGroups name the claims (attributes) with the
	// email and the groups; empty ClaimGroups reads no groups.
	ClaimEmail  string
	ClaimGroups string
	// DefaultRole and RoleMappings give members made just in time their
	// role; neither is ever owner.
	DefaultRole  string
	RoleMappings []RoleMapping
	CreatedAt    time.Time
	// NotReady is the reason of the Ready=False the operator reported for
	// the connection's current generation (DiscoveryFailed,
	// MetadataInvalid, CertificateExpired, ...); empty when Ready is True,
	// missing, or about an older spec. It comes from status, which a
	// tenant may write, so it may only ever turn the connection's own
	// sign-ins away, never let one through: the ID token and assertion
	// checks are what make a sign-in safe.
	NotReady string
}

// RoleMapping gives members of an identity-provider group a role.
type RoleMapping struct {
	Group string
	Role  string
}

// Name is the connection's object name.
func (c *SSOConnection) Name() string {
	_, name, _ := strings.Cut(c.Ref, "/")
	return name
}

// String names the connection without its secret, so a connection that
// reaches a log by accident shows no client secret.
func (c *SSOConnection) String() string { return "SSOConnection " + c.Ref }

// PutSSOConnection adds or replaces a connection.
func (d *Directory) PutSSOConnection(c *SSOConnection) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ssoConns == nil {
		d.ssoConns = map[string]*SSOConnection{}
	}
	d.ssoConns[c.Ref] = c
}

// DeleteSSOConnection removes a connection.
func (d *Directory) DeleteSSOConnection(ref string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.ssoConns, ref)
}

// SSOConnection returns a connection by ref, only while its organization
// is served.
func (d *Directory) SSOConnection(ref string) (*SSOConnection, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	c, ok := d.ssoConns[ref]
	if !ok {
		return nil, false
	}
	o, ok := d.orgs[c.OrgRef]
	return c, ok && o.ID != ""
}

// SSOConnectionsOf lists an organization's connections, oldest first
// (then by name), so every replica picks the same one.
func (d *Directory) SSOConnectionsOf(orgRef string) []*SSOConnection {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var out []*SSOConnection
	for _, c := range d.ssoConns {
		if c.OrgRef == orgRef {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].Ref < out[j].Ref
	})
	return out
}

// PutVerifiedDomain records that domain is verified for the organization
// orgRef; empty orgRef removes it. Only the operator's domain claim, joined
// with the live Organization it names, may say so.
func (d *Directory) PutVerifiedDomain(domain, orgRef string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.domains == nil {
		d.domains = map[string]string{}
	}
	domain = strings.ToLower(domain)
	if orgRef == "" {
		delete(d.domains, domain)
		return
	}
	d.domains[domain] = orgRef
}

// DomainOrg returns the served organization a verified domain belongs to.
func (d *Directory) DomainOrg(domain string) (*Org, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	ref, ok := d.domains[strings.ToLower(domain)]
	if !ok {
		return nil, false
	}
	o, ok := d.orgs[ref]
	return o, ok && o.ID != ""
}

// DomainVerifiedFor reports whether domain is verified for orgRef.
func (d *Directory) DomainVerifiedFor(domain, orgRef string) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return orgRef != "" && d.domains[strings.ToLower(domain)] == orgRef
}

// EmailDomain is the part of email after its last "@", lower-cased; empty
// when there is none.
func EmailDomain(email string) string {
	at := strings.LastIndexByte(email, '@')
	if at < 0 || at == len(email)-1 {
		return ""
	}
	return strings.ToLower(email[at+1:])
}
