// Package signingkeys holds an Organization's signing keys as they are kept
// in its "<organization>-signing-keys" Secret: a private JWK set whose keys
// carry when they become active and when they retire.
//
// The operator plans rotations with Rotate; the auth server loads the set
// with Parse and signs with Active. Both sides share this package so the
// Secret format lives in one place.
//
// Rotation publishes the next key before it signs anything: a new key's
// activation time is RotationLead in the future (except the very first key),
// so every replica and every JWKS consumer knows it before the first token
// signed with it appears. The key it replaces keeps verifying until
// accessTokenTTL plus RetireMargin after that, then is pruned.
package signingkeys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// DataKey is the Secret data key that holds the private JWK set.
const DataKey = "jwks.json"

// RetireMargin is added to the access-token lifetime before a replaced key
// is pruned, to cover clock skew and in-flight requests.
const RetireMargin = time.Minute

// Custom JWK members holding the key's schedule, in Unix seconds.
const (
	activeFromParam = "tenantauth_active_from"
	retiresAtParam  = "tenantauth_retires_at"
)

// Entry is one key with its schedule.
type Entry struct {
	Key        jwk.Key // the private key
	KID        string
	Algorithm  string
	ActiveFrom time.Time
	RetiresAt  time.Time // zero while the key is the newest
}

// Set is the keys of one Organization, oldest first.
type Set struct {
	Entries []Entry
}

// RotationLead is how far ahead of its use a rotated key is published.
func RotationLead(interval time.Duration) time.Duration {
	return min(time.Minute, interval/4)
}

// Parse reads the Secret's JWK set. An empty input is an empty set.
func Parse(data []byte) (*Set, error) {
	s := &Set{}
	if len(data) == 0 {
		return s, nil
	}
	raw, err := jwk.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("parse signing keys: %w", err)
	}
	for i := 0; i < raw.Len(); i++ {
		k, _ := raw.Key(i)
		e := Entry{Key: k, KID: k.KeyID(), Algorithm: k.Algorithm().String()}
		if v, ok := k.Get(activeFromParam); ok {
			e.ActiveFrom = unix(v)
		}
		if v, ok := k.Get(retiresAtParam); ok {
			e.RetiresAt = unix(v)
		}
		if e.KID == "" || e.ActiveFrom.IsZero() {
			return nil, fmt.Errorf("parse signing keys: key %d lacks kid or schedule", i)
		}
		s.Entries = append(s.Entries, e)
	}
	sort.SliceStable(s.Entries, func(i, j int) bool { return s.Entries[i].ActiveFrom.Before(s.Entries[j].ActiveFrom) })
	return s, nil
}

// Marshal writes the set in the Secret's format.
func (s *Set) Marshal() ([]byte, error) {
	out := jwk.NewSet()
	for _, e := range s.Entries {
		k, err := e.Key.Clone()
		if err != nil {
			return nil, fmt.Errorf("copy key %s: %w", e.KID, err)
		}
		_ = k.Set(activeFromParam, e.ActiveFrom.Unix())
		if !e.RetiresAt.IsZero() {
			_ = k.Set(retiresAtParam, e.RetiresAt.Unix())
		} else {
			_ = k.Remove(retiresAtParam)
		}
		_ = out.AddKey(k)
	}
	return json.Marshal(out)
}

// Active is the key that signs at time now: the newest already active one.
func (s *Set) Active(now time.Time) (Entry, bool) {
	for i := len(s.Entries) - 1; i >= 0; i-- {
		if !s.Entries[i].ActiveFrom.After(now) {
			return s.Entries[i], true
		}
	}
	return Entry{}, false
}

// Newest is the most recently made key, active or still scheduled.
func (s *Set) Newest() (Entry, bool) {
	if len(s.Entries) == 0 {
		return Entry{}, false
	}
	return s.Entries[len(s.Entries)-1], true
}

// Policy is what Rotate needs from the Organization spec.
type Policy struct {
	Algorithm        string
	RotationInterval time.Duration
	AccessTokenTTL   time.Duration
}

// Rotate brings the set in line with the policy at time now: it prunes
// retired keys, and makes a new key when there is none, when the newest key
// is older than the rotation interval, or when the algorithm changed. It
// reports whether the set changed and when it next needs attention. Rotate
// only touches memory; the caller persists the result in one write, so a
// crash before that write loses nothing but the unused new key.
func (s *Set) Rotate(p Policy, now time.Time) (changed bool, next time.Time, err error) {
	kept := s.Entries[:0]
	for _, e := range s.Entries {
		if !e.RetiresAt.IsZero() && !e.RetiresAt.After(now) {
			changed = true
			continue
		}
		kept = append(kept, e)
	}
	s.Entries = kept

	newest, ok := s.Newest()
	if !ok || newest.Algorithm != p.Algorithm || !now.Before(newest.ActiveFrom.Add(p.RotationInterval)) {
		from := now
		if ok {
			from = now.Add(RotationLead(p.RotationInterval))
		}
		k, err := Generate(p.Algorithm)
		if err != nil {
			return changed, time.Time{}, err
		}
		retire := from.Add(p.AccessTokenTTL + RetireMargin)
		for i := range s.Entries {
			if s.Entries[i].RetiresAt.IsZero() || s.Entries[i].RetiresAt.After(retire) {
				s.Entries[i].RetiresAt = retire
			}
		}
		s.Entries = append(s.Entries, Entry{Key: k, KID: k.KeyID(), Algorithm: p.Algorithm, ActiveFrom: from})
		changed = true
	}

	newest, _ = s.Newest()
	next = newest.ActiveFrom.Add(p.RotationInterval)
	for _, e := range s.Entries {
		for _, t := range []time.Time{e.ActiveFrom, e.RetiresAt} {
			if t.After(now) && t.Before(next) {
				next = t
			}
		}
	}
	return changed, next, nil
}

// PublicSet is the JWKS of the set: public keys only, with kid, alg and use.
func (s *Set) PublicSet() (jwk.Set, error) {
	out := jwk.NewSet()
	for _, e := range s.Entries {
		pub, err := PublicKey(e.Key)
		if err != nil {
			return nil, err
		}
		if err := out.AddKey(pub); err != nil {
			return nil, fmt.Errorf("add key %s: %w", e.KID, err)
		}
	}
	return out, nil
}

// PublicKey is the public half of a private key, with only kid, alg and use.
func PublicKey(k jwk.Key) (jwk.Key, error) {
	pub, err := jwk.PublicKeyOf(k)
	if err != nil {
		return nil, fmt.Errorf("public key of %s: %w", k.KeyID(), err)
	}
	_ = pub.Remove(activeFromParam)
	_ = pub.Remove(retiresAtParam)
	return pub, nil
}

// Generate makes a private key for alg, with its RFC 7638 thumbprint as kid.
func Generate(alg string) (jwk.Key, error) {
	var raw crypto.PrivateKey
	var err error
	switch alg {
	case "ES256":
		raw, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EdDSA":
		_, raw, err = ed25519.GenerateKey(rand.Reader)
	case "RS256":
		raw, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		return nil, fmt.Errorf("unsupported signing algorithm %q", alg)
	}
	if err != nil {
		return nil, fmt.Errorf("generate %s key: %w", alg, err)
	}
	k, err := jwk.FromRaw(raw)
	if err != nil {
		return nil, fmt.Errorf("wrap %s key: %w", alg, err)
	}
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("thumbprint %s key: %w", alg, err)
	}
	_ = k.Set(jwk.KeyIDKey, base64.RawURLEncoding.EncodeToString(tp))
	_ = k.Set(jwk.AlgorithmKey, jwa.SignatureAlgorithm(alg))
	_ = k.Set(jwk.KeyUsageKey, jwk.ForSignature)
	return k, nil
}

func unix(v any) time.Time {
	switch n := v.(type) {
	case float64:
		return time.Unix(int64(n), 0).UTC()
	case int64:
		return time.Unix(n, 0).UTC()
	case json.Number:
		i, _ := n.Int64()
		return time.Unix(i, 0).UTC()
	}
	return time.Time{}
}
