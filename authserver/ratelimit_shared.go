package authserver

import (
	"context"
	"time"

	"github.com/tenantauth/tenantauth/authserver/store"
)

// sharedLimitTimeout bounds a shared count, so a slow database delays a
// rate-limited request by at most this much before the local buckets
// decide.
const sharedLimitTimeout = time.Second

// sharedLimiter is the store's shared limiter, nil when it has none.
func sharedLimiter(st store.Store) store.Limiter {
	l, _ := st.(store.Limiter)
	return l
}

// allowShared counts a request in the store's shared limiter, so the limit
// holds across every replica (a sliding window: at most limit requests in
// any window). counted is false when there is none or it cannot count:
// then the per-replica buckets decide, so an outage loosens the limit to
// one per replica, never to none, and never refuses every request.
func (l *rateLimiter) allowShared(key string) (wait time.Duration, ok, counted bool) {
	if l.shared == nil {
		return 0, false, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), sharedLimitTimeout)
	defer cancel()
	wait, ok, err := l.shared.Allow(ctx, key, int(l.limit), l.window)
	if err != nil {
		return 0, false, false
	}
	return wait, ok, true
}
