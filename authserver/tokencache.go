package authserver

import "sync"

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
	keys   *KeySet // the key set it verified against; a new set re-verifies
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
	if len(c.entries) >= c.max {
		// Evict a random tenth: map iteration order is random, and an
		// evicted token is only verified again.
		n := c.max / 10
		for k := range c.entries {
			delete(c.entries, k)
			if n--; n <= 0 {
				break
			}
		}
	}
	c.entries[token] = v
}
