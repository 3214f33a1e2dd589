// Package kube connects the auth server to Kubernetes: Source fills the
// server's Directory from informers, and Store keeps runtime state in
// Secrets of the server's namespace.
package kube

import (
	"context"
	"fmt"

	"github.com/tenantauth/tenantauth/authserver/directory"

	"slices"
	"sync"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantauth/tenantauth/api/consts"
	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/internal/identity"
	"github.com/tenantauth/tenantauth/internal/signingkeys"
	"github.com/tenantauth/tenantauth/internal/trust"
)

// Source keeps a Directory in step with the cluster through the manager's
// informers. Event handlers convert each object once, so requests never
// touch Kubernetes types or parse keys.
//
// What it serves is a join: an Organization is served only with its record
// (ID and keys) and its slug claim from the system namespace, both naming
// the Organization's UID; an APIKey only with its verification record.
// Nothing a tenant can write (labels, status, Secrets in its namespaces)
// enters the join, so a planted copy is ignored and deleting it changes
// nothing.
type Source struct {
	Dir   *directory.Directory
	Cache cache.Cache
	Log   logr.Logger
	// SystemNamespace is where the operator writes the records; tenant
	// objects in it are never served.
	SystemNamespace string

	mu         sync.Mutex
	orgs       map[string]*tav1.Organization // by ref
	orgRecords map[types.UID]orgRecord       // by owner UID
	slugClaims map[string]trust.Owner        // by slug
	apiKeys    map[string]*tav1.APIKey       // by ref
	keyRecords map[types.UID]*trust.APIKeyRecord
	servedKeys map[string]string // APIKey ref -> key ID in the directory
	sso        ssoState
}

// orgRecord is a parsed Organization record with its keys prepared once.
type orgRecord struct {
	name string
	rec  *trust.OrgRecord
	keys *directory.KeySet
}

// Start registers the handlers, waits for the first full load and marks
// the directory synced. It implements manager.Runnable.
func (s *Source) Start(ctx context.Context) error {
	s.init()
	var regs []toolscache.ResourceEventHandlerRegistration
	add := func(obj client.Object, put func(any), del func(any)) error {
		inf, err := s.Cache.GetInformer(ctx, obj)
		if err != nil {
			return fmt.Errorf("informer for %T: %w", obj, err)
		}
		reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    put,
			UpdateFunc: func(_, o any) { put(o) },
			DeleteFunc: func(o any) {
				if t, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
					o = t.Obj
				}
				del(o)
			},
		})
		if err != nil {
			return fmt.Errorf("handler for %T: %w", obj, err)
		}
		regs = append(regs, reg)
		return nil
	}
	putOrg, deleteOrg := joined(s, s.orgs, s.syncOrg)
	putAPIKey, deleteAPIKey := joined(s, s.apiKeys, s.syncAPIKey)
	if err := add(&tav1.Organization{}, putOrg, deleteOrg); err != nil {
		return err
	}
	if err := add(&tav1.Membership{}, s.putMember, s.deleteMember); err != nil {
		return err
	}
	if err := add(&tav1.APIKey{}, putAPIKey, deleteAPIKey); err != nil {
		return err
	}
	putSSO, deleteSSO := joined(s, s.sso.conns, s.syncSSO)
	if err := add(&tav1.SSOConnection{}, putSSO, deleteSSO); err != nil {
		return err
	}
	if err := add(&corev1.Secret{}, s.putSecret, s.deleteSecret); err != nil {
		return err
	}
	synced := make([]toolscache.InformerSynced, 0, len(regs))
	for _, r := range regs {
		synced = append(synced, r.HasSynced)
	}
	if !toolscache.WaitForCacheSync(ctx.Done(), synced...) {
		return ctx.Err()
	}
	s.Dir.SetSynced()
	s.Log.Info("directory synced")
	<-ctx.Done()
	return nil
}

func ref(o client.Object) string { return o.GetNamespace() + "/" + o.GetName() }

func (s *Source) init() {
	s.orgs = map[string]*tav1.Organization{}
	s.orgRecords = map[types.UID]orgRecord{}
	s.slugClaims = map[string]trust.Owner{}
	s.apiKeys = map[string]*tav1.APIKey{}
	s.keyRecords = map[types.UID]*trust.APIKeyRecord{}
	s.servedKeys = map[string]string{}
	s.sso.init()
}

// joined returns the add-or-update and delete handlers of a kind the
// source joins with records: they keep the latest object of each ref in m
// and re-join that ref.
func joined[T client.Object](s *Source, m map[string]T, sync func(ref string)) (put, del func(any)) {
	handle := func(obj any, keep bool) {
		o, ok := obj.(T)
		if !ok {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if keep {
			m[ref(o)] = o
		} else {
			delete(m, ref(o))
		}
		sync(ref(o))
	}
	return func(o any) { handle(o, true) }, func(o any) { handle(o, false) }
}

// syncOrg serves the Organization at ref when the join holds, else removes
// it from the directory. Callers hold s.mu.
func (s *Source) syncOrg(ref string) {
	defer s.syncOrgSSO(ref)
	o := s.orgs[ref]
	if o == nil || o.Namespace == s.SystemNamespace || !o.DeletionTimestamp.IsZero() {
		s.Dir.DeleteOrg(ref)
		return
	}
	rec, ok := s.orgRecords[o.UID]
	claim, claimed := s.slugClaims[o.EffectiveSlug()]
	if !ok || !rec.rec.Owner.Owns(o) || rec.keys == nil || !claimed || !claim.Owns(o) {
		s.Dir.DeleteOrg(ref)
		return
	}
	s.Dir.PutOrg(convertOrg(o, rec.rec.ID))
	s.Dir.PutKeys(ref, rec.keys)
}

// convertOrg maps an Organization to the server's view, with built-in and
// custom roles merged. id comes from the Organization's record, never from
// its status.
func convertOrg(o *tav1.Organization, id string) *directory.Org {
	roles := map[string]directory.RoleDef{}
	for _, r := range tav1.BuiltinRoles() {
		roles[r.Name] = directory.RoleDef{Rank: int(r.Rank), Permissions: r.Permissions}
	}
	for _, r := range o.Spec.Roles {
		// Admission refuses owner-only permissions on custom roles; one
		// admitted before that rule still never carries them.
		perms := slices.DeleteFunc(slices.Clone(r.Permissions), func(p string) bool {
			return p == tav1.PermOrgDelete || p == tav1.PermOwnershipMove
		})
		roles[r.Name] = directory.RoleDef{Rank: int(r.Rank), Permissions: perms}
	}
	defaultRole := o.Spec.SelfSignup.DefaultRole
	if defaultRole == "" {
		defaultRole = consts.DefaultRole
	}
	return &directory.Org{
		Ref: ref(o), ID: id, Slug: o.EffectiveSlug(), Name: o.EffectiveDisplayName(),
		AccessTTL: o.AccessTokenTTL(), IdleTTL: o.RefreshTokenIdleTTL(), AbsoluteTTL: o.RefreshTokenAbsoluteTTL(),
		Algorithm: string(o.Algorithm()), Audience: o.Spec.Audience,
		Password:     tav1.MethodEnabled(o.Spec.AuthMethods.Password),
		MagicLink:    tav1.MethodEnabled(o.Spec.AuthMethods.MagicLink),
		APIKeys:      tav1.MethodEnabled(o.Spec.AuthMethods.APIKeys),
		MFARequired:  o.Spec.MFA.Required,
		SSORequired:  o.Spec.AuthMethods.SSORequired,
		SignupDomain: o.Spec.SelfSignup.AllowedEmailDomains,
		DefaultRole:  defaultRole,
		Roles:        roles,
	}
}

func (s *Source) putMember(obj any) {
	m, ok := obj.(*tav1.Membership)
	if !ok {
		return
	}
	if m.Namespace == s.SystemNamespace {
		s.Dir.DeleteMember(ref(m))
		return
	}
	s.Dir.PutMember(&directory.Member{
		Ref: ref(m), OrgRef: m.Namespace + "/" + m.Spec.Organization, Email: identity.NormalizeEmail(m.Spec.Email),
		Role: m.Spec.Role, Disabled: m.Spec.Disabled || !m.DeletionTimestamp.IsZero(),
	})
}

func (s *Source) deleteMember(obj any) {
	if m, ok := obj.(*tav1.Membership); ok {
		s.Dir.DeleteMember(ref(m))
	}
}

// syncAPIKey serves the APIKey at ref under the key ID of its record, or
// removes it. Callers hold s.mu.
func (s *Source) syncAPIKey(ref string) {
	k := s.apiKeys[ref]
	var rec *trust.APIKeyRecord
	if k != nil && k.Namespace != s.SystemNamespace {
		rec = s.keyRecords[k.UID]
	}
	if old := s.servedKeys[ref]; old != "" && (rec == nil || !rec.Owner.Owns(k) || old != rec.KeyID) {
		s.Dir.DeleteAPIKey(old)
		s.Dir.PutAPIKeyHash(old, "")
		delete(s.servedKeys, ref)
	}
	if rec == nil || !rec.Owner.Owns(k) || rec.Organization != k.Spec.Organization {
		return
	}
	info := &directory.APIKeyInfo{KeyID: rec.KeyID, OrgRef: rec.OrgRef(),
		Revoked: k.Spec.Revoked || !k.DeletionTimestamp.IsZero()}
	for _, sc := range k.Spec.Scopes {
		info.Scopes = append(info.Scopes, string(sc))
	}
	if k.Spec.ExpiresAt != nil {
		info.ExpiresAt = k.Spec.ExpiresAt.Time
	}
	s.Dir.PutAPIKey(info)
	s.Dir.PutAPIKeyHash(rec.KeyID, rec.Hash)
	s.servedKeys[ref] = rec.KeyID
}

func (s *Source) putSecret(obj any) {
	sec, ok := obj.(*corev1.Secret)
	if !ok || sec.Namespace != s.SystemNamespace {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch sec.Labels[tav1.LabelComponent] {
	case trust.ComponentSigningKeys:
		rec, err := trust.ParseOrgRecord(sec, s.SystemNamespace)
		if err != nil {
			return
		}
		ks, err := keySet(rec.Keys)
		if err != nil {
			s.Log.Error(err, "unreadable signing keys; keeping the previous set", "secret", sec.Name)
			if _, ok := s.orgRecords[rec.Owner.UID]; ok {
				return
			}
		}
		s.orgRecords[rec.Owner.UID] = orgRecord{name: sec.Name, rec: rec, keys: ks}
		s.syncOrg(rec.Owner.Ref())
	case trust.ComponentSlugClaim:
		if c, err := trust.ParseSlugClaim(sec, s.SystemNamespace); err == nil {
			s.slugClaims[c.Slug] = c.Owner
			s.syncSlug(c.Slug)
		}
	case trust.ComponentAPIKeyRecord:
		if rec, err := trust.ParseAPIKeyRecord(sec, s.SystemNamespace); err == nil {
			s.keyRecords[rec.Owner.UID] = rec
			s.syncAPIKey(rec.Owner.Ref())
		}
	case trust.ComponentDomainClaim, trust.ComponentSSOClientSecret:
		s.putSSORecord(sec)
	}
}

func (s *Source) deleteSecret(obj any) {
	sec, ok := obj.(*corev1.Secret)
	if !ok || sec.Namespace != s.SystemNamespace {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch sec.Labels[tav1.LabelComponent] {
	case trust.ComponentSigningKeys:
		if rec, err := trust.ParseOrgRecord(sec, s.SystemNamespace); err == nil && s.orgRecords[rec.Owner.UID].name == sec.Name {
			delete(s.orgRecords, rec.Owner.UID)
			s.syncOrg(rec.Owner.Ref())
		}
	case trust.ComponentSlugClaim:
		if c, err := trust.ParseSlugClaim(sec, s.SystemNamespace); err == nil && s.slugClaims[c.Slug].UID == c.Owner.UID {
			delete(s.slugClaims, c.Slug)
			s.syncSlug(c.Slug)
		}
	case trust.ComponentAPIKeyRecord:
		if rec, err := trust.ParseAPIKeyRecord(sec, s.SystemNamespace); err == nil && s.keyRecords[rec.Owner.UID] != nil &&
			s.keyRecords[rec.Owner.UID].KeyID == rec.KeyID {
			delete(s.keyRecords, rec.Owner.UID)
			s.syncAPIKey(rec.Owner.Ref())
		}
	case trust.ComponentDomainClaim, trust.ComponentSSOClientSecret:
		s.deleteSSORecord(sec)
	}
}

// syncSlug re-joins every Organization that uses slug: the claim decides
// which one, if any, is served. Callers hold s.mu.
func (s *Source) syncSlug(slug string) {
	if c, ok := s.slugClaims[slug]; ok {
		// Whoever held the slug before loses it first, so the directory
		// never maps the slug to the loser.
		for r, o := range s.orgs {
			if o.EffectiveSlug() == slug && !c.Owns(o) {
				s.syncOrg(r)
			}
		}
		s.syncOrg(c.Ref())
		return
	}
	for r, o := range s.orgs {
		if o.EffectiveSlug() == slug {
			s.syncOrg(r)
		}
	}
}

// keySet prepares a signing-key set for use.
func keySet(data []byte) (*directory.KeySet, error) {
	set, err := signingkeys.Parse(data)
	if err != nil {
		return nil, err
	}
	return directory.PrepareKeySet(set)
}
