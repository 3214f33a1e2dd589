package authserver

import (
	"crypto/sha256"
	"sync"
	"time"

	"github.com/tenantauth/tenantauth/authserver/store"
)

// defaultMaxBuckets bounds a limiter's memory: about 60 bytes a bucket, so
// a few MiB however many clients or emails there are.
const defaultMaxBuckets = 100_000

// evictSample is how many buckets eviction looks at to pick a victim.
const evictSample = 8

// rateLimiter is a token bucket per key: limit requests per window, refilled
// continuously. It is per replica; with N replicas a client may get up to N
// times the limit, which bounds abuse without a shared store on the path.
//
// Keys are hashed before they are stored, so no client input decides how
// much memory a bucket takes, and the number of buckets is capped: when
// the map is full, full (idle) buckets are swept, and failing that the
// fullest of a few sampled buckets is evicted. Evicting a bucket forgets a
// client's use, never blocks one, so a flood of keys cannot lock anyone
// out, and the clients it favours are the ones that used little.
type rateLimiter struct {
	mu         sync.Mutex
	limit      float64
	window     time.Duration
	now        func() time.Time
	buckets    map[bucketKey]*bucket
	maxBuckets int
	sweep      time.Time
	// shared, when the store provides one, counts for every replica
	// (ratelimit_shared.go); the buckets above serve while it cannot.
	shared store.Limiter
}

type bucketKey [16]byte

type bucket struct {
	tokens float64
	last   time.Time
}

func newRateLimiter(limit int, window time.Duration, now func() time.Time) *rateLimiter {
	return &rateLimiter{limit: float64(limit), window: window, now: now, buckets: map[bucketKey]*bucket{},
		maxBuckets: defaultMaxBuckets}
}

func hashKey(key string) bucketKey {
	sum := sha256.Sum256([]byte(key))
	var k bucketKey
	copy(k[:], sum[:])
	return k
}

// allow takes a token for key; when none is left it returns how long until
// one is.
func (l *rateLimiter) allow(key string) (time.Duration, bool) {
	if l.limit <= 0 {
		return 0, true
	}
	if wait, ok, counted := l.allowShared(key); counted {
		return wait, ok
	}
	k := hashKey(key)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.sweepLocked(now, false)
	rate := l.limit / l.window.Seconds()
	b, ok := l.buckets[k]
	if !ok {
		if len(l.buckets) >= l.maxBuckets {
			l.sweepLocked(now, true)
			l.evictLocked(now, rate)
		}
		b = &bucket{tokens: l.limit, last: now}
		l.buckets[k] = b
	}
	b.tokens = min(l.limit, b.tokens+now.Sub(b.last).Seconds()*rate)
	b.last = now
	if b.tokens < 1 {
		return time.Duration((1 - b.tokens) / rate * float64(time.Second)), false
	}
	b.tokens--
	return 0, true
}

// size is the number of buckets held (tests).
func (l *rateLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// sweepLocked drops full buckets once a window (or now, when forced), so
// memory follows the number of recent clients, not of all clients ever.
func (l *rateLimiter) sweepLocked(now time.Time, force bool) {
	if !force && now.Sub(l.sweep) < l.window {
		return
	}
	l.sweep = now
	for k, b := range l.buckets {
		if now.Sub(b.last) >= l.window {
			delete(l.buckets, k)
		}
	}
}

// evictLocked makes room while the map is full: of a few buckets sampled
// at random (map order), the one with the most tokens goes.
func (l *rateLimiter) evictLocked(now time.Time, rate float64) {
	for len(l.buckets) >= l.maxBuckets {
		var victim bucketKey
		best := -1.0
		n := 0
		for k, b := range l.buckets {
			if t := b.tokens + now.Sub(b.last).Seconds()*rate; t > best {
				best, victim = t, k
			}
			if n++; n == evictSample {
				break
			}
		}
		delete(l.buckets, victim)
	}
}
