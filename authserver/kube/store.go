package kube

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/authserver/store"
)

// Labels and annotations of store Secrets.
const (
	labelKind        = "tenantauth.io/store-kind"
	labelUser        = "tenantauth.io/user"
	labelRevoked     = "tenantauth.io/revoked"
	annotationID     = "tenantauth.io/record-id"
	annotationUser   = "tenantauth.io/user-id"
	annotationExpiry = "tenantauth.io/expires-at"
	dataKey          = "record"
)

// Store keeps auth server records as Secrets in one namespace, shared by
// every replica. Reads come from an index the informer keeps, so the hot
// path makes no API call; a miss (a record another replica just wrote)
// falls back to one live read. Writes carry the resourceVersion they read,
// so the API server's optimistic concurrency is the compare-and-swap that
// makes tokens single use.
type Store struct {
	client    client.Client
	reader    client.Reader
	namespace string

	mu  sync.RWMutex
	idx map[string]*store.Record

	// live limits the reads that miss the index and go to the API server,
	// so garbage tokens cannot turn into a flood of API calls.
	live *rate.Limiter
}

var (
	_ store.Store        = (*Store)(nil)
	_ store.HeaderReader = (*Store)(nil)
	_ store.Indexed      = (*Store)(nil)
)

// NewStore returns a store writing through c and reading misses through
// reader (uncached), in namespace.
func NewStore(c client.Client, reader client.Reader, namespace string) *Store {
	return &Store{client: c, reader: reader, namespace: namespace, idx: map[string]*store.Record{},
		live: rate.NewLimiter(100, 50)}
}

// Len is the number of records in the index (measurements).
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.idx)
}

// Watch feeds the index from the cache's Secret informer and waits for its
// first full load.
func (s *Store) Watch(ctx context.Context, c cache.Cache) error {
	inf, err := c.GetInformer(ctx, &corev1.Secret{})
	if err != nil {
		return fmt.Errorf("secret informer: %w", err)
	}
	reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    s.observe,
		UpdateFunc: func(_, o any) { s.observe(o) },
		DeleteFunc: func(o any) {
			if t, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
				o = t.Obj
			}
			if sec, ok := o.(*corev1.Secret); ok && s.ours(sec) {
				s.mu.Lock()
				delete(s.idx, sec.Name)
				s.mu.Unlock()
			}
		},
	})
	if err != nil {
		return fmt.Errorf("secret handler: %w", err)
	}
	if !toolscache.WaitForCacheSync(ctx.Done(), reg.HasSynced) {
		return ctx.Err()
	}
	return nil
}

func (s *Store) ours(sec *corev1.Secret) bool {
	return sec.Namespace == s.namespace && sec.Labels[tav1.LabelComponent] == tav1.ComponentStore
}

// observe indexes a Secret unless the index already holds a newer version
// (one this replica just wrote, before its event arrived).
func (s *Store) observe(obj any) {
	sec, ok := obj.(*corev1.Secret)
	if !ok || !s.ours(sec) {
		return
	}
	s.put(sec)
}

func (s *Store) put(sec *corev1.Secret) {
	r := fromSecret(sec)
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.idx[sec.Name]; ok && newer(cur.Version, r.Version) {
		return
	}
	s.idx[sec.Name] = r
}

// newer reports whether resourceVersion a is after b. Kubernetes asks
// clients to treat versions as opaque, so this is only used to avoid going
// backwards in a local index; a wrong guess costs one CAS conflict.
func newer(a, b string) bool {
	x, err1 := strconv.ParseUint(a, 10, 64)
	y, err2 := strconv.ParseUint(b, 10, 64)
	return err1 == nil && err2 == nil && x > y
}

// secretName maps a record to a Secret name: IDs are lower-case base32 with
// an underscore after their prefix, which Secret names may not contain.
func secretName(kind, id string) string {
	return "ta-" + kind + "-" + strings.ReplaceAll(strings.ToLower(id), "_", "-")
}

// appendIndexKey appends the index key of a record, secretName(kind, id),
// to b without allocating. It lowers ASCII only: the index holds Secret
// names, which are ASCII, and a non-ASCII byte kept as it is makes a key
// that is in the index no more than strings.ToLower's would be.
func appendIndexKey(b []byte, kind, id string) []byte {
	b = append(b, "ta-"...)
	b = append(b, kind...)
	b = append(b, '-')
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c == '_':
			c = '-'
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}

// indexed returns the index's record of kind and id, which nobody may
// modify.
func (s *Store) indexed(kind, id string) (*store.Record, bool) {
	var buf [96]byte
	key := appendIndexKey(buf[:0], kind, id)
	s.mu.RLock()
	r, ok := s.idx[string(key)]
	s.mu.RUnlock()
	return r, ok
}

func labelValue(s string) string { return strings.ReplaceAll(s, "_", "-") }

func clone(r *store.Record) *store.Record {
	c := *r
	return &c
}

// Get returns a record from the index. A miss on a session or token, whose
// unguessable ID the client presented, may be one another replica wrote a
// moment ago, so it is read live (within a rate limit). A miss on
// credentials or a lockout count is final: they are keyed by an ID derived
// from an email, and a live read there would make unknown emails slower
// than known ones. (A count another replica just made is learnt on the
// compare-and-swap: Create answers ErrExists and reads it.)
func (s *Store) Get(ctx context.Context, kind, id string) (*store.Record, error) {
	if r, ok := s.indexed(kind, id); ok {
		return clone(r), nil
	}
	r, err := s.GetLive(ctx, kind, id)
	if errors.Is(err, store.ErrBusy) {
		// Over the limit a miss stays a miss, as garbage is.
		return nil, store.ErrNotFound
	}
	return r, err
}

// GetLive reads a record from the API server past the index, within the
// rate limit of live reads (see store.Indexed). What it reads is indexed.
func (s *Store) GetLive(ctx context.Context, kind, id string) (*store.Record, error) {
	if kind == store.KindCredentials || kind == store.KindLockout {
		return nil, store.ErrNotFound
	}
	if !s.live.Allow() {
		return nil, store.ErrBusy
	}
	var sec corev1.Secret
	if err := s.reader.Get(ctx, client.ObjectKey{Namespace: s.namespace, Name: secretName(kind, id)}, &sec); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, store.ErrNotFound
		}
		return nil, fmt.Errorf("read %s record: %w", kind, err)
	}
	s.put(&sec)
	return fromSecret(&sec), nil
}

// GetHeader is Get's answer without the copy of the record: from the
// index, or on a miss through Get and its live read.
func (s *Store) GetHeader(ctx context.Context, kind, id string) (store.Header, error) {
	r, ok := s.indexed(kind, id)
	if !ok {
		var err error
		if r, err = s.Get(ctx, kind, id); err != nil {
			return store.Header{}, err
		}
	}
	return store.Header{UserID: r.UserID, Revoked: r.Revoked}, nil
}

// Create writes a new record.
func (s *Store) Create(ctx context.Context, r *store.Record) error {
	sec := s.toSecret(r)
	if err := s.client.Create(ctx, sec); err != nil {
		if apierrors.IsAlreadyExists(err) {
			// Our index lags: learn the record so the caller's re-read
			// finds it.
			var cur corev1.Secret
			if s.reader.Get(ctx, client.ObjectKeyFromObject(sec), &cur) == nil {
				s.put(&cur)
			}
			return store.ErrExists
		}
		return fmt.Errorf("create %s record: %w", r.Kind, err)
	}
	r.Version = sec.ResourceVersion
	s.put(sec)
	return nil
}

// Update applies change by compare-and-swap on the Secret's
// resourceVersion, re-reading and retrying on conflict.
func (s *Store) Update(ctx context.Context, kind, id string, change func(*store.Record) error) (*store.Record, error) {
	return store.RetryUpdate(ctx, s.Get, s.Swap, kind, id, change)
}

// Swap replaces a record if its Version is still current (see
// store.Swapper).
func (s *Store) Swap(ctx context.Context, r *store.Record) error {
	sec := s.toSecret(r)
	sec.ResourceVersion = r.Version
	if err := s.client.Update(ctx, sec); err != nil {
		switch {
		case apierrors.IsConflict(err):
			// The index was stale: forget the entry so the caller's re-read
			// goes to the API server.
			s.mu.Lock()
			delete(s.idx, sec.Name)
			s.mu.Unlock()
			return store.ErrConflict
		case apierrors.IsNotFound(err):
			return store.ErrNotFound
		}
		return fmt.Errorf("update %s record: %w", r.Kind, err)
	}
	r.Version = sec.ResourceVersion
	s.put(sec)
	return nil
}

// Delete removes a record; a missing one is not an error.
func (s *Store) Delete(ctx context.Context, kind, id string) error {
	name := secretName(kind, id)
	err := s.client.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: s.namespace, Name: name}})
	if client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("delete %s record: %w", kind, err)
	}
	s.mu.Lock()
	delete(s.idx, name)
	s.mu.Unlock()
	return nil
}

// ListByUser lists a user's records of a kind with one live List, so a
// password reset also finds sessions made a moment ago on other replicas.
func (s *Store) ListByUser(ctx context.Context, kind, userID string) ([]*store.Record, error) {
	var list corev1.SecretList
	if err := s.reader.List(ctx, &list, client.InNamespace(s.namespace), client.MatchingLabels{
		tav1.LabelComponent: tav1.ComponentStore, labelKind: kind, labelUser: labelValue(userID),
	}); err != nil {
		return nil, fmt.Errorf("list %s records: %w", kind, err)
	}
	out := make([]*store.Record, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, fromSecret(&list.Items[i]))
	}
	return out, nil
}

// GCBatch bounds the records one DeleteExpired call deletes, so a
// collection after a flood or an outage spreads its API calls over
// several runs instead of sending thousands at once. Map order is random,
// so replicas collecting at the same time mostly pick different records.
const GCBatch = 500

// DeleteExpired deletes up to GCBatch indexed records that expired before
// now.
func (s *Store) DeleteExpired(ctx context.Context, now time.Time) (int, error) {
	s.mu.RLock()
	var expired []*store.Record
	for _, r := range s.idx {
		if !r.ExpiresAt.IsZero() && r.ExpiresAt.Before(now) {
			expired = append(expired, r)
			if len(expired) == GCBatch {
				break
			}
		}
	}
	s.mu.RUnlock()
	for i, r := range expired {
		if err := s.Delete(ctx, r.Kind, r.ID); err != nil {
			return i, err
		}
	}
	return len(expired), nil
}

func (s *Store) toSecret(r *store.Record) *corev1.Secret {
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: s.namespace, Name: secretName(r.Kind, r.ID),
			Labels: map[string]string{
				tav1.LabelManagedBy: tav1.ManagedByValue, tav1.LabelComponent: tav1.ComponentStore,
				labelKind: r.Kind, labelUser: labelValue(r.UserID), labelRevoked: strconv.FormatBool(r.Revoked),
			},
			Annotations: map[string]string{annotationID: r.ID, annotationUser: r.UserID},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{dataKey: r.Data},
	}
	if !r.ExpiresAt.IsZero() {
		sec.Annotations[annotationExpiry] = r.ExpiresAt.UTC().Format(time.RFC3339)
	}
	return sec
}

func fromSecret(sec *corev1.Secret) *store.Record {
	r := &store.Record{
		Kind: sec.Labels[labelKind], ID: sec.Annotations[annotationID], Version: sec.ResourceVersion,
		UserID:  sec.Annotations[annotationUser],
		Revoked: sec.Labels[labelRevoked] == "true", Data: sec.Data[dataKey],
	}
	if t, err := time.Parse(time.RFC3339, sec.Annotations[annotationExpiry]); err == nil {
		r.ExpiresAt = t
	}
	return r
}
