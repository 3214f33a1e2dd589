package authserver

import (
	"sync"

	"github.com/tenantauth/tenantauth/authserver/directory"
)

// tokenCache remembers JWTs whose signature and claims were verified, so a
// token presented again skips the signature check. The live checks
// (membership, session revocation, key still published) run on every hit.
// Keys are whole tokens, never hashes, so a collision cannot admit a forged
// token.
type tokenCache struct {
	mu      sync.RWMutex
	max     int
	entries map[string]*verifiedToken
}

type verifiedToken struct {
	claims Claims
	keys   *directory.KeySet // the key set it verified against; a new set re-verifies
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, entries: make(map[string]*verifiedToken)}
}

func (c *tokenCache) get(token string) (*verifiedToken, bool) {
	c.mu.RLock()
	v, ok := c.entries[token]
	c.mu.RUnlock()
	return v, ok
}

func (c *tokenCache) put(token string, v *verifiedToken) {
	c.mu.Lock()
	defer c.mu.Unlock()
	evictTenth(c.entries, c.max) // an evicted token is only verified again
	c.entries[token] = v
}

// evictTenth makes room in a bounded cache: at max entries it drops a
// random tenth (map iteration order is random).
func evictTenth[K comparable, V any](m map[K]V, max int) {
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
