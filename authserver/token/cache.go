package token

import (
	"sync"

	"github.com/tenantauth/tenantauth/authserver/directory"
)

// Cache remembers JWTs whose signature and claims were verified, so a
// token presented again skips the signature check. The live checks
// (membership, session revocation, key still published) run on every hit.
// Keys are whole tokens, never hashes, so a collision cannot admit a forged
// token.
type Cache struct {
	mu      sync.RWMutex
	max     int
	entries map[string]*Verified
}

type Verified struct {
	Claims Claims
	Keys   *directory.KeySet // the key set it verified against; a new set re-verifies
}

func NewCache(max int) *Cache {
	return &Cache{max: max, entries: make(map[string]*Verified)}
}

func (c *Cache) Get(token string) (*Verified, bool) {
	c.mu.RLock()
	v, ok := c.entries[token]
	c.mu.RUnlock()
	return v, ok
}

func (c *Cache) Put(token string, v *Verified) {
	c.mu.Lock()
	defer c.mu.Unlock()
	EvictTenth(c.entries, c.max) // an evicted token is only verified again
	c.entries[token] = v
}

// EvictTenth makes room in a bounded cache: at max entries it drops a
// random tenth (map iteration order is random).
func EvictTenth[K comparable, V any](m map[K]V, max int) {
	if len(m) < max {
		return
	}
	n := max / 10
	for k := range m {
		delete(m, k)
		if n--; n <= 0 {
			break
		}
	}
}
