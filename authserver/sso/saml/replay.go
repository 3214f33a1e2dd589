package saml

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/tenantauth/tenantauth/authserver/store"
)

// ErrReplayed is returned by a ReplayCache for an assertion it has
// already recorded.
var ErrReplayed = errors.New("the assertion was already used")

// ReplayCache records the assertions an SP accepted, so that each is
// accepted once. It must be shared by every replica: a captured response
// posted to another replica is refused there too.
type ReplayCache interface {
	// Consume records the assertion id of the identity provider issuer as
	// used until expiresAt, after which the SP refuses the assertion as
	// expired anyway and the record may go. It returns ErrReplayed when
	// the assertion is already recorded; any other error means the cache
	// could not be reached, and the assertion is refused.
	Consume(ctx context.Context, issuer, id string, expiresAt time.Time) error
}

// replayPrefix starts the ID of a replay record in the store.
const replayPrefix = "samlassertion"

// StoreReplayCache is a ReplayCache in the auth server's store: one token
// record per assertion, created only if absent. The store's Create is the
// atomic step every backend offers (a unique key in PostgreSQL, a Secret
// name in Kubernetes), so of two replicas given the same assertion at
// once exactly one creates the record.
type StoreReplayCache struct {
	Store store.Store
}

// replayRecord is a replay record's data. It holds no assertion content:
// the record's ID is a hash, and its existence is the whole fact.
type replayRecord struct {
	Purpose   string    `json:"purpose"`
	ExpiresAt time.Time `json:"expires_at"`
}

// ReplayRecordID is the store ID of the record for assertion id of
// issuer. The ID is hashed with the issuer: assertion IDs are chosen by
// each identity provider, so two of them may pick the same one, and a raw
// ID need not be a valid record name.
func ReplayRecordID(issuer, id string) string {
	h := sha256.Sum256([]byte(issuer + "\x00" + id))
	return replayPrefix + "_" + hex.EncodeToString(h[:])
}

// Consume creates the assertion's record, failing with ErrReplayed when
// it exists.
func (c StoreReplayCache) Consume(ctx context.Context, issuer, id string, expiresAt time.Time) error {
	rec := &store.Record{Kind: store.KindToken, ID: ReplayRecordID(issuer, id), ExpiresAt: expiresAt.UTC()}
	err := store.Put(ctx, c.Store, rec, replayRecord{Purpose: "saml_assertion", ExpiresAt: expiresAt.UTC()})
	switch {
	case errors.Is(err, store.ErrExists):
		return ErrReplayed
	case err != nil:
		return fmt.Errorf("record SAML assertion: %w", err)
	}
	return nil
}

// boundReplayCache adapts a ReplayCache to crewjam/saml's, whose Consume
// takes no context and no issuer, for one ParseResponse call. It keeps a
// store failure apart from a replay, since the first is ours (503) and
// the second the client's (401).
type boundReplayCache struct {
	ctx      context.Context
	cache    ReplayCache
	issuer   string
	storeErr error
}

func (b *boundReplayCache) Consume(id string, expiresAt time.Time) error {
	err := b.cache.Consume(b.ctx, b.issuer, id, expiresAt)
	if err != nil && !errors.Is(err, ErrReplayed) {
		b.storeErr = err
	}
	return err
}
