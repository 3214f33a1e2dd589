package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// CapUserRecords keeps a user's records of one class to limit: it lists
// the user's records of kind, keeps those issuedAt places in the class
// (ok), and deletes all but the newest limit of them, never fresh, the one
// just made, whatever the clocks say. A record whose issue time cannot be
// told (zero) counts as the oldest.
//
// Two concurrent callers may each see the other's record or not; each
// deletes what is beyond the limit in what it saw, so once the later one
// has listed, at most limit remain. Ties break by ID, so callers agree.
func CapUserRecords(ctx context.Context, st Store, kind, userID string, limit int, fresh string,
	issuedAt func(*Record) (at time.Time, ok bool)) error {
	if limit <= 0 || userID == "" {
		return nil
	}
	recs, err := st.ListByUser(ctx, kind, userID)
	if err != nil {
		return fmt.Errorf("list %s records to cap: %w", kind, err)
	}
	type issued struct {
		id string
		at time.Time
	}
	var mine []issued
	for _, rec := range recs {
		if at, ok := issuedAt(rec); ok {
			mine = append(mine, issued{rec.ID, at})
		}
	}
	if len(mine) <= limit {
		return nil
	}
	slices.SortFunc(mine, func(a, b issued) int {
		switch {
		case a.id == fresh:
			return -1
		case b.id == fresh:
			return 1
		}
		if c := b.at.Compare(a.at); c != 0 {
			return c
		}
		return strings.Compare(b.id, a.id)
	})
	for _, old := range mine[limit:] {
		if err := st.Delete(ctx, kind, old.id); err != nil {
			return fmt.Errorf("delete a %s record past the cap: %w", kind, err)
		}
	}
	return nil
}
