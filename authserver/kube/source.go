// Package kube connects the auth server to Kubernetes: Source fills the
// server's Directory from informers, and Store keeps runtime state in
// Secrets of the server's namespace.
package kube

import (
	"context"
	"fmt"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/authserver"
	"github.com/tenantauth/tenantauth/internal/identity"
	"github.com/tenantauth/tenantauth/internal/signingkeys"
)

// Source keeps a Directory in step with the cluster through the manager's
// informers. Event handlers convert each object once, so requests never
// touch Kubernetes types or parse keys.
type Source struct {
	Dir   *authserver.Directory
	Cache cache.Cache
	Log   logr.Logger
}

// Start registers the handlers, waits for the first full load and marks
// the directory synced. It implements manager.Runnable.
func (s *Source) Start(ctx context.Context) error {
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
	if err := add(&tav1.Organization{}, s.putOrg, s.deleteOrg); err != nil {
		return err
	}
	if err := add(&tav1.Membership{}, s.putMember, s.deleteMember); err != nil {
		return err
	}
	if err := add(&tav1.APIKey{}, s.putAPIKey, s.deleteAPIKey); err != nil {
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

func (s *Source) putOrg(obj any) {
	o, ok := obj.(*tav1.Organization)
	if !ok {
		return
	}
	s.Dir.PutOrg(convertOrg(o))
}

func (s *Source) deleteOrg(obj any) {
	if o, ok := obj.(*tav1.Organization); ok {
		s.Dir.DeleteOrg(ref(o))
	}
}

// convertOrg maps an Organization to the server's view, with built-in and
// custom roles merged.
func convertOrg(o *tav1.Organization) *authserver.Org {
	roles := map[string]authserver.RoleDef{}
	for _, r := range tav1.BuiltinRoles() {
		roles[r.Name] = authserver.RoleDef{Rank: int(r.Rank), Permissions: r.Permissions}
	}
	for _, r := range o.Spec.Roles {
		roles[r.Name] = authserver.RoleDef{Rank: int(r.Rank), Permissions: r.Permissions}
	}
	defaultRole := o.Spec.SelfSignup.DefaultRole
	if defaultRole == "" {
		defaultRole = tav1.RoleMember
	}
	return &authserver.Org{
		Ref: ref(o), ID: o.Status.ID, Slug: o.EffectiveSlug(), Name: o.EffectiveDisplayName(),
		AccessTTL: o.AccessTokenTTL(), IdleTTL: o.RefreshTokenIdleTTL(), AbsoluteTTL: o.RefreshTokenAbsoluteTTL(),
		Algorithm: string(o.Algorithm()), Audience: o.Spec.Audience,
		Password:     tav1.MethodEnabled(o.Spec.AuthMethods.Password),
		MagicLink:    tav1.MethodEnabled(o.Spec.AuthMethods.MagicLink),
		APIKeys:      tav1.MethodEnabled(o.Spec.AuthMethods.APIKeys),
		MFARequired:  o.Spec.MFA.Required,
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
	s.Dir.PutMember(&authserver.Member{
		Ref: ref(m), OrgRef: m.Namespace + "/" + m.Spec.Organization, Email: identity.NormalizeEmail(m.Spec.Email),
		Role: m.Spec.Role, Disabled: m.Spec.Disabled || !m.DeletionTimestamp.IsZero(),
	})
}

func (s *Source) deleteMember(obj any) {
	if m, ok := obj.(*tav1.Membership); ok {
		s.Dir.DeleteMember(ref(m))
	}
}

func (s *Source) putAPIKey(obj any) {
	k, ok := obj.(*tav1.APIKey)
	if !ok || k.Status.KeyID == "" {
		return
	}
	info := &authserver.APIKeyInfo{KeyID: k.Status.KeyID, OrgRef: k.Namespace + "/" + k.Spec.Organization,
		Revoked: k.Spec.Revoked || !k.DeletionTimestamp.IsZero()}
	for _, sc := range k.Spec.Scopes {
		info.Scopes = append(info.Scopes, string(sc))
	}
	if k.Spec.ExpiresAt != nil {
		info.ExpiresAt = k.Spec.ExpiresAt.Time
	}
	s.Dir.PutAPIKey(info)
}

func (s *Source) deleteAPIKey(obj any) {
	if k, ok := obj.(*tav1.APIKey); ok && k.Status.KeyID != "" {
		s.Dir.DeleteAPIKey(k.Status.KeyID)
	}
}

func (s *Source) putSecret(obj any) {
	sec, ok := obj.(*corev1.Secret)
	if !ok {
		return
	}
	switch sec.Labels[tav1.LabelComponent] {
	case tav1.ComponentSigningKeys:
		ks, err := keySet(sec)
		if err != nil {
			s.Log.Error(err, "unreadable signing keys; keeping the previous set", "secret", ref(sec))
			return
		}
		s.Dir.PutKeys(sec.Namespace+"/"+sec.Labels[tav1.LabelOrganization], ks)
	case tav1.ComponentAPIKeyHash:
		s.Dir.PutAPIKeyHash(sec.Labels[tav1.LabelKeyID], string(sec.Data[tav1.APIKeyHashDataKey]))
	}
}

func (s *Source) deleteSecret(obj any) {
	sec, ok := obj.(*corev1.Secret)
	if !ok {
		return
	}
	switch sec.Labels[tav1.LabelComponent] {
	case tav1.ComponentSigningKeys:
		s.Dir.PutKeys(sec.Namespace+"/"+sec.Labels[tav1.LabelOrganization], nil)
	case tav1.ComponentAPIKeyHash:
		s.Dir.PutAPIKeyHash(sec.Labels[tav1.LabelKeyID], "")
	}
}

// keySet prepares a signing-key Secret for use.
func keySet(sec *corev1.Secret) (*authserver.KeySet, error) {
	set, err := signingkeys.Parse(sec.Data[signingkeys.DataKey])
	if err != nil {
		return nil, err
	}
	return authserver.PrepareKeySet(set)
}
