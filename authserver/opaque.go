package authserver

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
	prefixRefresh      = "rt"
	prefixIntermediate = "ist"
	prefixMagicLink    = "ml"
	prefixVerifyEmail  = "ve"
	prefixReset        = "pr"
)

var idEncoding = b32.Lower

// newID returns a random lower-case base32 ID with 100 bits of entropy.
func newID() string {
	b := make([]byte, 13)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return idEncoding.EncodeToString(b)[:20]
}

// newSecret returns 256 random bits, base64url-encoded.
func newSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// newOpaque makes a token and returns it with its record ID and secret hash.
func newOpaque(prefix string) (token, id, hash string) {
	id, secret := newID(), newSecret()
	return prefix + "_" + id + "." + secret, id, hashSecret(secret)
}

// idLen and secretLen are the lengths newID and newSecret make.
const (
	idLen     = 20
	secretLen = 43
)

// parseOpaque splits a token of the given prefix. ok is false for anything
// the server could not have made (wrong prefix, length or alphabet), so a
// store never sees a name it did not make; callers answer that like an
// unknown token, before any store call.
func parseOpaque(prefix, token string) (id, secret string, ok bool) {
	rest, found := strings.CutPrefix(token, prefix+"_")
	if !found {
		return "", "", false
	}
	id, secret, found = strings.Cut(rest, ".")
	if !found || !isID(id) || !isSecret(secret) {
		return "", "", false
	}
	return id, secret, true
}

// validRecordID reports whether id is prefix followed by an ID newID made,
// as session IDs in the sid claim are.
func validRecordID(prefix, id string) bool {
	rest, ok := strings.CutPrefix(id, prefix)
	return ok && isID(rest)
}

// isID reports whether s has newID's length and alphabet (lower-case
// base32).
func isID(s string) bool {
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

// isSecret reports whether s has newSecret's length and alphabet
// (unpadded base64url).
func isSecret(s string) bool {
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

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// secretMatches compares a presented secret with a stored hash in constant
// time.
func secretMatches(secret, storedHash string) bool {
	return subtle.ConstantTimeCompare([]byte(hashSecret(secret)), []byte(storedHash)) == 1
}
