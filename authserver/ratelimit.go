package authserver

import (
	"sync"
	"time"
)

// rateLimiter is a token bucket per key: limit requests per window, refilled
// continuously. It is per replica; with N replicas a client may get up to N
// times the limit, which bounds abuse without a shared store on the path.
type rateLimiter struct {
	mu      sync.Mutex
	limit   float64
	window  time.Duration
	now     func() time.Time
	buckets map[string]*bucket
	sweep   time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newRateLimiter(limit int, window time.Duration, now func() time.Time) *rateLimiter {
	return &rateLimiter{limit: float64(limit), window: window, now: now, buckets: map[string]*bucket{}}
}

// allow takes a token for key; when none is left it returns how long until
// one is.
func (l *rateLimiter) allow(key string) (time.Duration, bool) {
	if l.limit <= 0 {
		return 0, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.sweepLocked(now)
	rate := l.limit / l.window.Seconds()
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{tokens: l.limit, last: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.limit, b.tokens+now.Sub(b.last).Seconds()*rate)
	b.last = now
	if b.tokens < 1 {
		return time.Duration((1 - b.tokens) / rate * float64(time.Second)), false
	}
	b.tokens--
	return 0, true
}

// sweepLocked drops full buckets once a window, so memory follows the
// number of recent clients, not of all clients ever.
func (l *rateLimiter) sweepLocked(now time.Time) {
	if now.Sub(l.sweep) < l.window {
		return
	}
	l.sweep = now
	for k, b := range l.buckets {
		if now.Sub(b.last) >= l.window {
			delete(l.buckets, k)
		}
	}
}
