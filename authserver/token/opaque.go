package token

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"strings"

	"github.com/tenantauth/tenantauth/internal/b32"
)

// Opaque tokens (refresh tokens, intermediate session tokens, one-time
// links) read <prefix>_<id>.<secret>: the id names the store record, so the
// server finds it without a scan, and the 256-bit secret is kept only as a
// SHA-256 hash in that record.
const (
	PrefixRefresh      = "rt"
	PrefixIntermediate = "ist"
	PrefixMagicLink    = "ml"
	PrefixVerifyEmail  = "ve"
	PrefixReset        = "pr"
)

var idEncoding = b32.Lower

// NewID returns a random lower-case base32 ID with 100 bits of entropy.
func NewID() string {
	b := make([]byte, 13)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return idEncoding.EncodeToString(b)[:20]
}

// NewSecret returns 256 random bits, base64url-encoded.
func NewSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// NewOpaque makes a token and returns it with its record ID and secret hash.
func NewOpaque(prefix string) (token, id, hash string) {
	id, secret := NewID(), NewSecret()
	return prefix + "_" + id + "." + secret, id, HashSecret(secret)
}

// idLen and secretLen are the lengths NewID and NewSecret make.
const (
	idLen     = 20
	secretLen = 43
)

// ParseOpaque splits a token of the given prefix. ok is false for anything
// the server could not have made (wrong prefix, length or alphabet), so a
// store never sees a name it did not make; callers answer that like an
// unknown token, before any store call.
func ParseOpaque(prefix, token string) (id, secret string, ok bool) {
	rest, found := strings.CutPrefix(token, prefix+"_")
	if !found {
		return "", "", false
	}
	id, secret, found = strings.Cut(rest, ".")
	if !found || !IsID(id) || !IsSecret(secret) {
		return "", "", false
	}
	return id, secret, true
}

// ValidRecordID reports whether id is prefix followed by an ID NewID made,
// as session IDs in the sid claim are.
func ValidRecordID(prefix, id string) bool {
	rest, ok := strings.CutPrefix(id, prefix)
	return ok && IsID(rest)
}

// IsID reports whether s has NewID's length and alphabet (lower-case
// base32).
func IsID(s string) bool {
	if len(s) != idLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

// IsSecret reports whether s has NewSecret's length and alphabet
// (unpadded base64url).
func IsSecret(s string) bool {
	if len(s) != secretLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// SecretMatches compares a presented secret with a stored hash in constant
// time.
func SecretMatches(secret, storedHash string) bool {
	return subtle.ConstantTimeCompare([]byte(HashSecret(secret)), []byte(storedHash)) == 1
}
