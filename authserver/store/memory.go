package store

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"
)

// MemoryStore keeps records in process memory: for tests and one-replica
// trials. Everything is lost on restart.
type MemoryStore struct {
	mu      sync.RWMutex
	records map[string]*Record
	version int64
}

var (
	_ Store        = (*MemoryStore)(nil)
	_ HeaderReader = (*MemoryStore)(nil)
	_ Swapper      = (*MemoryStore)(nil)
)

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{records: map[string]*Record{}}
}

func memKey(kind, id string) string { return kind + "/" + id }

func cloneRecord(r *Record) *Record {
	c := *r
	c.Data = append([]byte(nil), r.Data...)
	return &c
}

// Get returns a copy of the record.
func (m *MemoryStore) Get(_ context.Context, kind, id string) (*Record, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r, ok := m.records[memKey(kind, id)]
	if !ok {
		return nil, ErrNotFound
	}
	return cloneRecord(r), nil
}

// GetHeader returns the record's Header, copying nothing.
func (m *MemoryStore) GetHeader(_ context.Context, kind, id string) (Header, error) {
	// The key is built on the stack; the lookup does not keep it.
	var buf [96]byte
	k := append(append(append(buf[:0], kind...), '/'), id...)
	m.mu.RLock()
	defer m.mu.RUnlock()
	r, ok := m.records[string(k)]
	if !ok {
		return Header{}, ErrNotFound
	}
	return Header{UserID: r.UserID, Revoked: r.Revoked}, nil
}

// Create adds a record that must not exist yet.
func (m *MemoryStore) Create(_ context.Context, r *Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := memKey(r.Kind, r.ID)
	if _, ok := m.records[k]; ok {
		return ErrExists
	}
	m.version++
	r.Version = strconv.FormatInt(m.version, 10)
	m.records[k] = cloneRecord(r)
	return nil
}

// Update applies change to a copy of the record under the store's lock,
// so concurrent updates run one after another and never conflict.
func (m *MemoryStore) Update(_ context.Context, kind, id string, change func(*Record) error) (*Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := memKey(kind, id)
	cur, ok := m.records[k]
	if !ok {
		return nil, ErrNotFound
	}
	r := cloneRecord(cur)
	if err := change(r); err != nil {
		if errors.Is(err, ErrUnchanged) {
			return cloneRecord(cur), nil
		}
		return nil, err
	}
	r.Kind, r.ID = kind, id
	m.version++
	r.Version = strconv.FormatInt(m.version, 10)
	m.records[k] = cloneRecord(r)
	return r, nil
}

// Swap writes r if its Version is still the stored one (see Swapper).
func (m *MemoryStore) Swap(_ context.Context, r *Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := memKey(r.Kind, r.ID)
	cur, ok := m.records[k]
	switch {
	case !ok:
		return ErrNotFound
	case cur.Version != r.Version:
		return ErrConflict
	}
	m.version++
	r.Version = strconv.FormatInt(m.version, 10)
	m.records[k] = cloneRecord(r)
	return nil
}

// Delete removes a record; a missing one is not an error.
func (m *MemoryStore) Delete(_ context.Context, kind, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.records, memKey(kind, id))
	return nil
}

// ListByUser returns copies of the user's records of a kind.
func (m *MemoryStore) ListByUser(_ context.Context, kind, userID string) ([]*Record, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []*Record
	for _, r := range m.records {
		if r.Kind == kind && r.UserID == userID {
			out = append(out, cloneRecord(r))
		}
	}
	return out, nil
}

// DeleteExpired removes records that expired before now.
func (m *MemoryStore) DeleteExpired(_ context.Context, now time.Time) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for k, r := range m.records {
		if !r.ExpiresAt.IsZero() && r.ExpiresAt.Before(now) {
			delete(m.records, k)
			n++
		}
	}
	return n, nil
}
