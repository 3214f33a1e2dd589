package postgres

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"
)

// limitSQL counts one request against a sliding window in one statement:
// the row keeps the times of the requests allowed in the last window (at
// most limit of them); a request is allowed when fewer than limit are
// recent, and then its time is added. The upsert locks the row, so
// concurrent requests from every replica count one after another. Times
// are the database's clock, the one clock every replica shares.
const limitSQL = `INSERT INTO tenantauth_rate_limits AS r (key, hits, allowed, expires_at)
	VALUES ($1, ARRAY[now()], true, now() + $3 * interval '1 millisecond')
	ON CONFLICT (key) DO UPDATE SET
		allowed = (SELECT count(*) FROM unnest(r.hits) h WHERE h > now() - $3 * interval '1 millisecond') < $2,
		hits = ARRAY(SELECT h FROM unnest(r.hits) h WHERE h > now() - $3 * interval '1 millisecond' ORDER BY h) ||
			CASE WHEN (SELECT count(*) FROM unnest(r.hits) h WHERE h > now() - $3 * interval '1 millisecond') < $2
				THEN ARRAY[now()] ELSE '{}'::timestamptz[] END,
		expires_at = now() + $3 * interval '1 millisecond'
	RETURNING allowed, extract(epoch FROM hits[1] + $3 * interval '1 millisecond' - now())::float8`

// Allow counts a request of key (see store.Limiter). The key is hashed,
// so no client input decides a row's size.
func (s *Store) Allow(ctx context.Context, key string, limit int, window time.Duration) (time.Duration, bool, error) {
	if limit <= 0 {
		return 0, true, nil
	}
	sum := sha256.Sum256([]byte(key))
	var (
		ok   bool
		wait float64
	)
	if err := s.pool.QueryRow(ctx, limitSQL, sum[:16], limit, window.Milliseconds()).Scan(&ok, &wait); err != nil {
		return 0, false, fmt.Errorf("count a rate-limited request: %w", err)
	}
	if ok {
		return 0, true, nil
	}
	return max(time.Duration(wait*float64(time.Second)), time.Second), false, nil
}
