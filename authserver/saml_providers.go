package authserver

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/tenantauth/tenantauth/authserver/directory"
	"github.com/tenantauth/tenantauth/authserver/problem"
	"github.com/tenantauth/tenantauth/authserver/sso/saml"
)

// The SAML service provider of a connection is built from the IdP's
// metadata, which /sso/start and the ACS would otherwise fetch (from
// metadataURL) and parse on every request: two fetches per sign-in, and
// an unauthenticated /sso/start making the server fetch at will. So each
// connection's SP is kept, for as long as the connection is the same:
//
//   - An entry is for one source, everything of the connection the SP is
//     built from (UID, the organization's entity ID, metadataURL or
//     metadataXML, the claims). Any change builds a new SP before the
//     next request is answered; the old one is never served again.
//   - Metadata from a metadataURL is fetched again after
//     samlMetadataTTL. A fetch that fails then keeps the last good
//     metadata for up to samlMetadataMaxStale more, retrying at most every
//     samlMetadataRetry, so an IdP's metadata endpoint being down for a
//     while does not stop sign-in; after that the connection answers 503
//     until a fetch succeeds.
//   - A response whose signature does not verify makes the ACS fetch the
//     metadata again, at most once per samlMetadataRetry for a connection,
//     and check the response once more: an IdP that rotated its signing
//     certificate is picked up at the first sign-in after the rotation,
//     not ten minutes later. Inline metadataXML is never fetched; the
//     administrator changes the connection.
//   - Fail closed: with no SP built for a source, a fetch or parse that
//     fails answers what it answers without the cache (503
//     sso_unavailable), never a session. That answer is kept for
//     samlMetadataFailWait, so unauthenticated requests to a connection
//     whose IdP is down do not each make the server fetch again.
//   - At most samlProvidersMax entries are kept; adding one first drops
//     the entries of connections that are gone or changed, then the least
//     recently used.
//
// A connection's build is made once however many requests want it at
// once; the others wait for it, or use the SP they had while it is
// refreshed.
const (
	samlMetadataTTL      = 10 * time.Minute
	samlMetadataRetry    = time.Minute
	samlMetadataMaxStale = time.Hour
	samlProvidersMax     = 1000
	samlMetadataFailWait = 5 * time.Second
)

// samlSource is everything of a connection its service provider is built
// from. Connections with equal sources have equal SPs.
type samlSource struct {
	uid, entityID, metadataURL, metadataXML, claimEmail, claimGroups string
}

func samlSourceOf(conn *directory.SSOConnection, entityID string) samlSource {
	return samlSource{uid: conn.UID, entityID: entityID, metadataURL: conn.SAMLMetadataURL,
		metadataXML: conn.SAMLMetadataXML, claimEmail: conn.ClaimEmail, claimGroups: conn.ClaimGroups}
}

// samlProviders keeps the service providers of SAML connections, by
// connection ref. It is safe for concurrent use.
type samlProviders struct {
	now func() time.Time
	log logr.Logger
	// build makes conn's SP, fetching its metadata if it has a URL.
	build func(ctx context.Context, conn *directory.SSOConnection, entityID string) (*saml.SP, error)
	// current is the source of the connection now served at ref, ok
	// false when none is.
	current func(ref string) (src samlSource, ok bool)
	max     int

	mu      sync.Mutex
	entries map[string]*samlProvider
	// uses counts the gets, to order entries by their last use.
	uses uint64
}

// samlProvider is one connection's entry.
type samlProvider struct {
	source samlSource
	// sp was built at builtAt, nil until a build succeeds. nextFetch is
	// when metadata from a URL is fetched again; forcedAt is the last
	// fetch forced by a signature that did not verify.
	sp                 *saml.SP
	builtAt, nextFetch time.Time
	forcedAt           time.Time
	usedAt             uint64
	// loading is closed when the build under way ends; nil when none is.
	// err is the last build's error, for those who waited on it.
	loading chan struct{}
	err     error
	// failedAt is when a build failed with no SP to fall back on; until
	// samlMetadataFailWait after it, err is the answer without a fetch.
	failedAt time.Time
}

// fetched reports whether the entry's metadata comes from a URL.
func (e *samlProvider) fetched() bool { return e.source.metadataURL != "" }

// usable reports whether sp may still be served at now, maybe stale.
func (e *samlProvider) usable(now time.Time) bool {
	return e.sp != nil && (!e.fetched() || now.Before(e.builtAt.Add(samlMetadataTTL+samlMetadataMaxStale)))
}

// fresh reports whether sp may be served at now without a fetch.
func (e *samlProvider) fresh(now time.Time) bool {
	return e.usable(now) && (!e.fetched() || now.Before(e.nextFetch))
}

// get returns the SP of conn, whose organization's entity ID is
// entityID: the one kept for this source, or a new build.
func (c *samlProviders) get(ctx context.Context, conn *directory.SSOConnection, entityID string) (*saml.SP, error) {
	src := samlSourceOf(conn, entityID)
	c.mu.Lock()
	e := c.entries[conn.Ref]
	if e == nil || e.source != src {
		e = &samlProvider{source: src}
		c.add(conn.Ref, e)
	}
	c.uses++
	e.usedAt = c.uses
	for {
		now := c.now()
		switch {
		case e.fresh(now), e.loading != nil && e.usable(now):
			sp := e.sp
			c.mu.Unlock()
			return sp, nil
		case e.sp == nil && e.loading == nil && e.err != nil && now.Before(e.failedAt.Add(samlMetadataFailWait)):
			err := e.err
			c.mu.Unlock()
			return nil, err
		case e.loading == nil:
			return c.load(ctx, conn, e) // unlocks
		}
		wait := e.loading
		c.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", problem.SSOUnavailable.New(), ctx.Err())
		}
		c.mu.Lock()
		if e.sp == nil && e.err != nil {
			err := e.err
			c.mu.Unlock()
			return nil, err
		}
	}
}

// refresh is for the ACS when a response's signature did not verify with
// failed, conn's SP: it fetches conn's metadata again, unless it has no
// URL or it was fetched so for conn less than samlMetadataRetry ago, and
// returns the SP to check the response with once more. It returns nil
// when there is none but failed.
func (c *samlProviders) refresh(ctx context.Context, conn *directory.SSOConnection, entityID string, failed *saml.SP) *saml.SP {
	c.mu.Lock()
	e := c.entries[conn.Ref]
	now := c.now()
	switch {
	case e == nil || e.source != samlSourceOf(conn, entityID) || !e.fetched():
		c.mu.Unlock()
		return nil
	case e.sp != nil && e.sp != failed && e.usable(now):
		sp := e.sp // another request fetched it since
		c.mu.Unlock()
		return sp
	case e.loading != nil || (!e.forcedAt.IsZero() && now.Before(e.forcedAt.Add(samlMetadataRetry))):
		c.mu.Unlock()
		return nil
	}
	e.forcedAt = now
	sp, err := c.load(ctx, conn, e) // unlocks
	if err != nil || sp == failed {
		return nil
	}
	return sp
}

// load builds e's SP for conn. The caller holds c.mu; load releases it.
func (c *samlProviders) load(ctx context.Context, conn *directory.SSOConnection, e *samlProvider) (*saml.SP, error) {
	done := make(chan struct{})
	e.loading = done
	c.mu.Unlock()
	// Others wait on this build: one client going away must not fail it
	// for them. The SSO client bounds the fetch.
	sp, err := c.build(context.WithoutCancel(ctx), conn, e.source.entityID)
	c.mu.Lock()
	defer c.mu.Unlock()
	e.loading = nil
	close(done)
	now := c.now()
	e.err = err
	switch {
	case err == nil:
		e.sp, e.builtAt, e.nextFetch = sp, now, now.Add(samlMetadataTTL)
		return sp, nil
	case e.usable(now):
		e.nextFetch = now.Add(samlMetadataRetry)
		c.log.Info("SAML metadata refresh failed; using the metadata fetched before", "connection", conn.Ref,
			"fetchedAt", e.builtAt.UTC().Format(time.RFC3339), "retryAt", e.nextFetch.UTC().Format(time.RFC3339))
		return e.sp, nil
	}
	e.sp, e.failedAt = nil, now
	return nil, err
}

// add puts e at ref, first dropping the entries of connections gone or
// changed and, at the bound, the least recently used. Callers hold c.mu.
func (c *samlProviders) add(ref string, e *samlProvider) {
	if c.entries == nil {
		c.entries = map[string]*samlProvider{}
	}
	delete(c.entries, ref)
	for r, old := range c.entries {
		if src, ok := c.current(r); !ok || src != old.source {
			delete(c.entries, r)
		}
	}
	for len(c.entries) >= c.max {
		var lru string
		for r, old := range c.entries {
			if lru == "" || old.usedAt < c.entries[lru].usedAt {
				lru = r
			}
		}
		delete(c.entries, lru)
	}
	c.entries[ref] = e
}

// len is the number of entries, for tests.
func (c *samlProviders) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
