package authserver

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"strings"
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

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

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

// parseOpaque splits a token of the given prefix. ok is false for anything
// malformed; callers answer that like an unknown token.
func parseOpaque(prefix, token string) (id, secret string, ok bool) {
	rest, found := strings.CutPrefix(token, prefix+"_")
	if !found {
		return "", "", false
	}
	id, secret, found = strings.Cut(rest, ".")
	if !found || len(id) != 20 || len(secret) != 43 {
		return "", "", false
	}
	return id, secret, true
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
