package kube

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/authserver/directory"
	"github.com/tenantauth/tenantauth/internal/trust"
)

// ssoState is what the source joins for single sign-on: SSOConnections
// with their client-secret records, and the domain claims that make a
// domain verified for an Organization. As for keys, only the operator's
// records in the system namespace count, each checked against the UID of
// the live object it names; status (status.domains[].verified among it)
// is never trusted. The one status field read, a connection's Ready=False,
// can only keep its own organization's users from a broken provider.
type ssoState struct {
	conns   map[string]*tav1.SSOConnection // by ref
	secrets map[types.UID]*trust.SSOClientSecret
	domains map[string]trust.Owner // claim owner by domain
	// byOrg indexes domains and connections by organization ref, so an
	// Organization's change re-joins only its own.
	domainsByOrg map[string]map[string]struct{}
	connsByOrg   map[string]map[string]struct{}
}

func (st *ssoState) init() {
	st.conns = map[string]*tav1.SSOConnection{}
	st.secrets = map[types.UID]*trust.SSOClientSecret{}
	st.domains = map[string]trust.Owner{}
	st.domainsByOrg = map[string]map[string]struct{}{}
	st.connsByOrg = map[string]map[string]struct{}{}
}

func index(m map[string]map[string]struct{}, key, v string, keep bool) {
	set := m[key]
	if keep {
		if set == nil {
			set = map[string]struct{}{}
			m[key] = set
		}
		set[v] = struct{}{}
		return
	}
	delete(set, v)
	if len(set) == 0 {
		delete(m, key)
	}
}

// syncOrgSSO re-joins the domains and connections of the Organization at
// orgRef. Callers hold s.mu.
func (s *Source) syncOrgSSO(orgRef string) {
	for d := range s.sso.domainsByOrg[orgRef] {
		s.syncDomain(d)
	}
	for r := range s.sso.connsByOrg[orgRef] {
		s.syncSSO(r)
	}
}

// syncDomain serves domain as verified for the Organization its claim
// names, while that Organization is the live object of the claim's UID.
func (s *Source) syncDomain(domain string) {
	c, ok := s.sso.domains[domain]
	if !ok {
		s.Dir.PutVerifiedDomain(domain, "")
		return
	}
	o := s.orgs[c.Ref()]
	if o == nil || !c.Owns(o) || !o.DeletionTimestamp.IsZero() || o.Namespace == s.SystemNamespace {
		s.Dir.PutVerifiedDomain(domain, "")
		return
	}
	s.Dir.PutVerifiedDomain(domain, c.Ref())
}

// syncSSO serves the SSOConnection at ref, or removes it. A connection
// that names a client secret is served only with the operator's record
// of it: never with a tenant's Secret, and never half-configured. Callers
// hold s.mu.
func (s *Source) syncSSO(ref string) {
	c := s.sso.conns[ref]
	for org, set := range s.sso.connsByOrg {
		if _, ok := set[ref]; ok && (c == nil || org != c.Namespace+"/"+c.Spec.Organization) {
			index(s.sso.connsByOrg, org, ref, false)
		}
	}
	if c == nil || c.Namespace == s.SystemNamespace || !c.DeletionTimestamp.IsZero() {
		s.Dir.DeleteSSOConnection(ref)
		return
	}
	orgRef := c.Namespace + "/" + c.Spec.Organization
	index(s.sso.connsByOrg, orgRef, ref, true)
	d := &directory.SSOConnection{
		Ref: ref, UID: string(c.UID), OrgRef: orgRef, Protocol: string(c.Spec.Protocol),
		ClaimEmail: c.Spec.Claims.Email, ClaimGroups: c.Spec.Claims.Groups,
		DefaultRole: c.EffectiveDefaultRole(), CreatedAt: c.CreationTimestamp.Time,
		NotReady: notReady(c),
	}
	for _, m := range c.Spec.RoleMappings {
		d.RoleMappings = append(d.RoleMappings, directory.RoleMapping{Group: m.Group, Role: m.Role})
	}
	switch {
	case c.Spec.Protocol == tav1.ProtocolOIDC && c.Spec.OIDC != nil:
		o := c.Spec.OIDC
		d.Issuer, d.ClientID, d.Scopes = o.Issuer, o.ClientID, o.Scopes
		if o.ClientSecretRef != nil {
			rec := s.sso.secrets[c.UID]
			if rec == nil || !rec.Owner.Owns(c) {
				s.Dir.DeleteSSOConnection(ref)
				return
			}
			d.ClientSecret = rec.Secret
		}
	case c.Spec.Protocol == tav1.ProtocolSAML && c.Spec.SAML != nil:
		d.SAMLMetadataURL, d.SAMLMetadataXML = c.Spec.SAML.MetadataURL, c.Spec.SAML.MetadataXML
	default:
		s.Dir.DeleteSSOConnection(ref)
		return
	}
	s.Dir.PutSSOConnection(d)
}

// notReady is the reason of c's Ready=False when it is about c's current
// spec (its observedGeneration is c's generation), else empty: a
// connection just fixed is tried at once, not held to the verdict on its
// old spec. This is the one status field the source reads, and it may
// only ever turn a sign-in away (directory.SSOConnection.NotReady).
func notReady(c *tav1.SSOConnection) string {
	cond := meta.FindStatusCondition(c.Status.Conditions, tav1.ConditionReady)
	if cond == nil || cond.Status != metav1.ConditionFalse || cond.ObservedGeneration != c.Generation {
		return ""
	}
	if cond.Reason == "" {
		return "NotReady"
	}
	return cond.Reason
}

// putSSORecord takes in a domain claim or a client-secret record.
// Callers hold s.mu.
func (s *Source) putSSORecord(sec *corev1.Secret) {
	switch sec.Labels[tav1.LabelComponent] {
	case trust.ComponentDomainClaim:
		c, err := trust.ParseDomainClaim(sec, s.SystemNamespace)
		if err != nil {
			return
		}
		if old, ok := s.sso.domains[c.Domain]; ok {
			index(s.sso.domainsByOrg, old.Ref(), c.Domain, false)
		}
		s.sso.domains[c.Domain] = c.Owner
		index(s.sso.domainsByOrg, c.Owner.Ref(), c.Domain, true)
		s.syncDomain(c.Domain)
	case trust.ComponentSSOClientSecret:
		rec, err := trust.ParseSSOClientSecret(sec, s.SystemNamespace)
		if err != nil {
			return
		}
		s.sso.secrets[rec.Owner.UID] = rec
		s.syncSSO(rec.Owner.Ref())
	}
}

// deleteSSORecord drops a domain claim or a client-secret record.
// Callers hold s.mu.
func (s *Source) deleteSSORecord(sec *corev1.Secret) {
	switch sec.Labels[tav1.LabelComponent] {
	case trust.ComponentDomainClaim:
		c, err := trust.ParseDomainClaim(sec, s.SystemNamespace)
		if err != nil || s.sso.domains[c.Domain].UID != c.Owner.UID {
			return
		}
		delete(s.sso.domains, c.Domain)
		index(s.sso.domainsByOrg, c.Owner.Ref(), c.Domain, false)
		s.syncDomain(c.Domain)
	case trust.ComponentSSOClientSecret:
		rec, err := trust.ParseSSOClientSecret(sec, s.SystemNamespace)
		if err != nil {
			return
		}
		delete(s.sso.secrets, rec.Owner.UID)
		s.syncSSO(rec.Owner.Ref())
	}
}
