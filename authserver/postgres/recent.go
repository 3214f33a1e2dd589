package postgres

import (
	"sync"

	"github.com/tenantauth/tenantauth/authserver/store"
)

// defaultRecentSessions bounds the session records a replica keeps (see
// recent): about 1 kB each, so a few MiB however many sessions the
// database holds.
const defaultRecentSessions = 4096

// recent holds the session records this replica last read or wrote, each
// with the version it had then, so that a refresh can make its
// compare-and-swap without reading the record first (store.Recents). The
// version column decides whether a copy is current: it comes from a
// sequence, so no later write, and no record deleted and made again, ever
// has a version an old copy holds. A copy another replica has overtaken
// costs one failed swap; a full set forgets an arbitrary entry.
type recent struct {
	mu   sync.Mutex
	max  int
	recs map[string]store.Record // by ID
}

func newRecent(max int) *recent {
	return &recent{max: max, recs: make(map[string]store.Record)}
}

// kept reports whether records of kind are kept: sessions, which every
// refresh reads and writes.
func (c *recent) kept(kind string) bool { return c.max > 0 && kind == store.KindSession }

func (c *recent) get(kind, id string) (*store.Record, bool) {
	if !c.kept(kind) {
		return nil, false
	}
	c.mu.Lock()
	r, ok := c.recs[id]
	c.mu.Unlock()
	if !ok {
		return nil, false
	}
	return &r, true
}

// put keeps a copy of r. Its Data is kept as it is: the store never
// changes a record's bytes in place, nor do the callers it returns them to.
func (c *recent) put(r *store.Record) {
	if !c.kept(r.Kind) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.recs[r.ID]; !ok && len(c.recs) >= c.max {
		for id := range c.recs {
			delete(c.recs, id)
			break
		}
	}
	c.recs[r.ID] = *r
}

func (c *recent) forget(kind, id string) {
	if !c.kept(kind) {
		return
	}
	c.mu.Lock()
	delete(c.recs, id)
	c.mu.Unlock()
}

// clear forgets every copy. A database that comes back after a lost
// connection may not be the one left (a restore, a failover, a
// blue/green switchover) and its version sequence may stand behind the
// versions the copies hold: a write there could draw one of them again
// for other data, and a copy must never match it.
func (c *recent) clear() {
	c.mu.Lock()
	clear(c.recs)
	c.mu.Unlock()
}

func (c *recent) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.recs)
}
