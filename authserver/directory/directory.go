package directory

import (
	"crypto"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/tenantauth/tenantauth/internal/signingkeys"
)

// Org is what the server needs of an Organization.
type Org struct {
	// Ref is "<namespace>/<name>", how Memberships and APIKeys name it.
	Ref         string
	ID          string
	Slug        string
	Name        string
	AccessTTL   time.Duration
	IdleTTL     time.Duration
	AbsoluteTTL time.Duration
	Algorithm   string
	Audience    string
	Password    bool
	MagicLink   bool
	APIKeys     bool
	MFARequired bool
	// SSORequired refuses password and magic-link sign-in to members
	// other than owners (authMethods.ssoRequired).
	SSORequired bool
	// SignupDomain is selfSignup.allowedEmailDomains as the tenant wrote
	// it (any case, an optional leading "@"). It proves nothing: an entry
	// admits sign-up only while the domain is also verified for this
	// organization (DomainVerifiedFor); see account's SignupAllowed.
	SignupDomain []string
	DefaultRole  string
	Roles        map[string]RoleDef
}

// RoleDef is a role's rank and permissions.
type RoleDef struct {
	Rank        int
	Permissions []string
}

// Member is one Membership.
type Member struct {
	Ref      string // "<namespace>/<name>" of the Membership
	OrgRef   string
	Email    string
	Role     string
	Disabled bool
}

// APIKeyInfo is what the server checks an API key against.
type APIKeyInfo struct {
	KeyID     string
	OrgRef    string
	Scopes    []string
	ExpiresAt time.Time
	Revoked   bool
}

// SigningKey is one key of an organization, prepared for use: the private
// key for signing (as a JWK, and raw as Signer) and the raw public key
// for fast verification.
type SigningKey struct {
	KID        string
	Algorithm  string
	Private    jwk.Key
	Signer     crypto.Signer
	Public     crypto.PublicKey
	ActiveFrom time.Time
	RetiresAt  time.Time
}

// KeySet is an organization's keys and its pre-rendered JWKS.
type KeySet struct {
	Keys []*SigningKey // oldest first
	// JWKS is the organization's {"keys": [...]}; PublicJWKs are its
	// members, which the all-organizations JWKS joins without parsing.
	JWKS       []byte
	PublicJWKs []json.RawMessage
}

// Active is the key that signs at now.
func (ks *KeySet) Active(now time.Time) *SigningKey {
	for i := len(ks.Keys) - 1; i >= 0; i-- {
		if !ks.Keys[i].ActiveFrom.After(now) {
			return ks.Keys[i]
		}
	}
	return nil
}

// Key finds a key by kid.
func (ks *KeySet) Key(kid string) *SigningKey {
	for _, k := range ks.Keys {
		if k.KID == kid {
			return k
		}
	}
	return nil
}

// Directory is the in-memory view of tenant state the server answers from:
// organizations, members, API keys and signing keys. A source (the
// Kubernetes informers, or a test) keeps it current; readers never wait on
// the network.
type Directory struct {
	mu        sync.RWMutex
	orgs      map[string]*Org // by Ref
	orgByID   map[string]string
	orgBySlug map[string]string
	keys      map[string]*KeySet // by org Ref
	members   map[string]*Member // by Ref
	// byEmail lists each email's memberships: a slice, since an email
	// has a few, and MemberOf runs on every request.
	byEmail   map[string][]*Member
	apiKeys   map[string]*APIKeyInfo    // by key ID
	keyHashes map[string]string         // key ID -> hash
	ssoConns  map[string]*SSOConnection // by Ref
	domains   map[string]string         // verified domain -> org Ref
	synced    bool
	// removed are called after a membership is deleted or disabled.
	removed []func(Member)
}

// NewDirectory returns an empty directory.
func NewDirectory() *Directory {
	return &Directory{
		orgs: map[string]*Org{}, orgByID: map[string]string{}, orgBySlug: map[string]string{},
		keys: map[string]*KeySet{}, members: map[string]*Member{}, byEmail: map[string][]*Member{},
		apiKeys: map[string]*APIKeyInfo{}, keyHashes: map[string]string{},
	}
}

// SetSynced marks the directory complete; /readyz answers 200 from then on.
func (d *Directory) SetSynced() {
	d.mu.Lock()
	d.synced = true
	d.mu.Unlock()
}

// Synced reports whether the source finished its first full load.
func (d *Directory) Synced() bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.synced
}

// PutOrg adds or replaces an organization.
func (d *Directory) PutOrg(o *Org) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if old, ok := d.orgs[o.Ref]; ok {
		delete(d.orgByID, old.ID)
		delete(d.orgBySlug, old.Slug)
	}
	d.orgs[o.Ref] = o
	if o.ID != "" {
		d.orgByID[o.ID] = o.Ref
	}
	d.orgBySlug[o.Slug] = o.Ref
}

// DeleteOrg removes an organization and its keys.
func (d *Directory) DeleteOrg(ref string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if old, ok := d.orgs[ref]; ok {
		delete(d.orgByID, old.ID)
		delete(d.orgBySlug, old.Slug)
	}
	delete(d.orgs, ref)
	delete(d.keys, ref)
}

// PutKeys sets an organization's signing keys; nil removes them.
func (d *Directory) PutKeys(orgRef string, ks *KeySet) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if ks == nil {
		delete(d.keys, orgRef)
		return
	}
	d.keys[orgRef] = ks
}

// OnMemberRemoved registers f to run, outside the directory's lock, after
// an active membership is deleted or disabled (or moved to another email or
// organization). f runs on the caller's goroutine, the informer's, so it
// must not block.
func (d *Directory) OnMemberRemoved(f func(Member)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.removed = append(d.removed, f)
}

// memberEnded calls the OnMemberRemoved hooks when the change from old to
// m (nil: deleted) ends an active membership.
func (d *Directory) memberEnded(old, m *Member) {
	if old == nil || old.Disabled {
		return
	}
	if m != nil && !m.Disabled && m.Email == old.Email && m.OrgRef == old.OrgRef {
		return
	}
	d.mu.RLock()
	hooks := d.removed
	d.mu.RUnlock()
	for _, f := range hooks {
		f(*old)
	}
}

// PutMember adds or replaces a membership.
func (d *Directory) PutMember(m *Member) {
	d.mu.Lock()
	old := d.members[m.Ref]
	defer func() { d.memberEnded(old, m) }()
	defer d.mu.Unlock()
	d.deleteMemberLocked(m.Ref)
	d.members[m.Ref] = m
	d.byEmail[m.Email] = append(d.byEmail[m.Email], m)
}

// DeleteMember removes a membership.
func (d *Directory) DeleteMember(ref string) {
	d.mu.Lock()
	old := d.members[ref]
	d.deleteMemberLocked(ref)
	d.mu.Unlock()
	d.memberEnded(old, nil)
}

func (d *Directory) deleteMemberLocked(ref string) {
	old, ok := d.members[ref]
	if !ok {
		return
	}
	delete(d.members, ref)
	rest := slices.DeleteFunc(d.byEmail[old.Email], func(m *Member) bool { return m.Ref == ref })
	if len(rest) == 0 {
		delete(d.byEmail, old.Email)
		return
	}
	d.byEmail[old.Email] = rest
}

// PutAPIKey adds or replaces an API key's metadata.
func (d *Directory) PutAPIKey(k *APIKeyInfo) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.apiKeys[k.KeyID] = k
}

// DeleteAPIKey removes an API key's metadata.
func (d *Directory) DeleteAPIKey(keyID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.apiKeys, keyID)
}

// PutAPIKeyHash sets the hash of an API key; an empty hash removes it.
func (d *Directory) PutAPIKeyHash(keyID, hash string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if hash == "" {
		delete(d.keyHashes, keyID)
		return
	}
	d.keyHashes[keyID] = hash
}

// OrgByRef finds an organization by its ID or slug, as URLs and bodies
// name it.
func (d *Directory) Org(idOrSlug string) (*Org, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	ref, ok := d.orgByID[idOrSlug]
	if !ok {
		ref, ok = d.orgBySlug[idOrSlug]
	}
	if !ok {
		return nil, false
	}
	o, ok := d.orgs[ref]
	return o, ok && o.ID != ""
}

// OrgByID finds an organization by ID only, as tokens name it.
func (d *Directory) OrgByID(id string) (*Org, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	o, ok := d.orgs[d.orgByID[id]]
	return o, ok
}

// OrgKeysByID is OrgByID and that organization's key set (nil when it
// has none), read under one lock.
func (d *Directory) OrgKeysByID(id string) (*Org, *KeySet, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	o, ok := d.orgs[d.orgByID[id]]
	if !ok {
		return nil, nil, false
	}
	return o, d.keys[o.Ref], true
}

// Keys returns an organization's key set.
func (d *Directory) Keys(orgRef string) (*KeySet, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	ks, ok := d.keys[orgRef]
	return ks, ok
}

// Orgs lists the organizations with IDs, by slug.
func (d *Directory) Orgs() []*Org {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := make([]*Org, 0, len(d.orgs))
	for _, o := range d.orgs {
		if o.ID != "" {
			out = append(out, o)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Slug < out[j].Slug })
	return out
}

// Membership is a member joined with its organization.
type Membership struct {
	Member *Member
	Org    *Org
}

// Memberships lists the active (not disabled) memberships of an email in
// organizations that exist, by organization slug.
func (d *Directory) Memberships(email string) []Membership {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var out []Membership
	for _, m := range d.byEmail[email] {
		o, ok := d.orgs[m.OrgRef]
		if ok && o.ID != "" && !m.Disabled {
			out = append(out, Membership{Member: m, Org: o})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Org.Slug < out[j].Org.Slug })
	return out
}

// MemberOf finds the active membership of email in an organization.
func (d *Directory) MemberOf(email, orgRef string) (*Member, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	for _, m := range d.byEmail[email] {
		if m.OrgRef == orgRef && !m.Disabled {
			return m, true
		}
	}
	return nil, false
}

// APIKey returns a key's metadata and hash.
func (d *Directory) APIKey(keyID string) (*APIKeyInfo, string, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	k, ok := d.apiKeys[keyID]
	h := d.keyHashes[keyID]
	return k, h, ok && h != ""
}

// OrgByRef returns an organization by its namespace/name.
func (d *Directory) OrgByRef(ref string) (*Org, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	o, ok := d.orgs[ref]
	return o, ok && o.ID != ""
}

// Role resolves a role name in an organization: its custom roles, then the
// built-ins.
func (o *Org) Role(name string) (RoleDef, bool) {
	r, ok := o.Roles[name]
	return r, ok
}

// PrepareKeySet turns a parsed signing-key set into a KeySet: private keys
// for signing, raw public keys for verification, and the JWKS rendered
// once rather than per request.
func PrepareKeySet(set *signingkeys.Set) (*KeySet, error) {
	pub, err := set.PublicSet()
	if err != nil {
		return nil, err
	}
	ks := &KeySet{}
	for i := 0; i < pub.Len(); i++ {
		k, _ := pub.Key(i)
		b, err := json.Marshal(k)
		if err != nil {
			return nil, fmt.Errorf("render jwk: %w", err)
		}
		ks.PublicJWKs = append(ks.PublicJWKs, b)
	}
	jwks, err := json.Marshal(map[string][]json.RawMessage{"keys": ks.PublicJWKs})
	if err != nil {
		return nil, fmt.Errorf("render jwks: %w", err)
	}
	ks.JWKS = jwks
	for _, e := range set.Entries {
		var raw any
		if err := e.Key.Raw(&raw); err != nil {
			return nil, fmt.Errorf("key %s: %w", e.KID, err)
		}
		signer, ok := raw.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("key %s cannot sign", e.KID)
		}
		ks.Keys = append(ks.Keys, &SigningKey{KID: e.KID, Algorithm: e.Algorithm, Private: e.Key,
			Signer: signer, Public: signer.Public(), ActiveFrom: e.ActiveFrom, RetiresAt: e.RetiresAt})
	}
	return ks, nil
}

// MemberAnyState finds the membership of email in orgRef, disabled or not.
func (d *Directory) MemberAnyState(email, orgRef string) (*Member, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	for _, m := range d.byEmail[email] {
		if m.OrgRef == orgRef {
			return m, true
		}
	}
	return nil, false
}

// MemberElsewhere reports whether email has a membership, disabled or
// not, of an organization other than orgRef.
func (d *Directory) MemberElsewhere(email, orgRef string) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	for _, m := range d.byEmail[email] {
		if m.OrgRef != orgRef {
			return true
		}
	}
	return false
}
