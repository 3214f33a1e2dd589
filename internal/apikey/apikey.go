// Package apikey defines the API key format shared by the operator, which
// makes keys, and the auth server, which checks them.
//
// A key reads osk_<env>_<keyid><secret><checksum>, modelled on GitHub's
// token format:
//   - env is "live" or "test";
//   - keyid is 12 lower-case base32 characters (60 bits) that name the key,
//     so the server finds its hash without a scan;
//   - secret is 52 lower-case base32 characters: 260 random bits;
//   - checksum is the CRC-32 of everything before it, as 7 base32
//     characters, so a mistyped or truncated key is rejected before any
//     lookup.
package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/tenantauth/tenantauth/internal/b32"
)

// Prefix starts every key.
const Prefix = "osk_"

const (
	keyIDLen    = 12
	secretLen   = 52
	checksumLen = 7
	bodyLen     = keyIDLen + secretLen + checksumLen
)

var enc = b32.Lower

// Errors Parse returns. None of them contain the key.
var (
	ErrFormat   = errors.New("not an API key: wrong prefix, length or characters")
	ErrChecksum = errors.New("API key checksum does not match: the key is mistyped or truncated")
)

// Key is a parsed API key.
type Key struct {
	// Environment is "live" or "test".
	Environment string
	// ID names the key; safe to log.
	ID  string
	raw string
}

// Generate makes a new key for env ("live" or "test"). It returns the
// plaintext, which must be shown to its owner once and never stored.
func Generate(env string) (plaintext string, k Key, err error) {
	if env != "live" && env != "test" {
		return "", Key{}, fmt.Errorf("unknown API key environment %q", env)
	}
	buf := make([]byte, 40) // 320 bits: 60 for the ID, 260 for the secret
	if _, err := rand.Read(buf); err != nil {
		return "", Key{}, fmt.Errorf("read random bytes: %w", err)
	}
	body := enc.EncodeToString(buf)[:keyIDLen+secretLen]
	head := Prefix + env + "_" + body
	plaintext = head + checksum(head)
	k, err = Parse(plaintext)
	return plaintext, k, err
}

// Looks reports whether s could be an API key (prefix only). It lets
// callers route a bearer credential without parsing it.
func Looks(s string) bool {
	return len(s) > len(Prefix) && s[:len(Prefix)] == Prefix
}

// Parse checks a key's format and checksum without any lookup.
func Parse(s string) (Key, error) {
	var env string
	switch {
	case len(s) == len(Prefix)+5+bodyLen && s[:len(Prefix)+5] == Prefix+"live_":
		env = "live"
	case len(s) == len(Prefix)+5+bodyLen && s[:len(Prefix)+5] == Prefix+"test_":
		env = "test"
	default:
		return Key{}, ErrFormat
	}
	body := s[len(Prefix)+5:]
	for i := 0; i < len(body); i++ {
		c := body[i]
		if (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return Key{}, ErrFormat
		}
	}
	var sum [checksumLen]byte
	if head := s[:len(s)-checksumLen]; string(appendChecksum(sum[:0], head)) != s[len(s)-checksumLen:] {
		return Key{}, ErrChecksum
	}
	return Key{Environment: env, ID: body[:keyIDLen], raw: s}, nil
}

// Hash is the value stored for a key: hex SHA-256 of the whole key. The key
// holds 260 random bits, so a fast hash is enough; a slow one would only
// slow down every request.
func (k Key) Hash() string {
	sum := sha256.Sum256([]byte(k.raw))
	return hex.EncodeToString(sum[:])
}

// Matches compares the key against a stored Hash in constant time.
func (k Key) Matches(storedHash string) bool {
	// A copy on the stack: []byte(k.raw) would be one on the heap.
	var raw [len(Prefix) + 5 + bodyLen]byte
	sum := sha256.Sum256(raw[:copy(raw[:], k.raw)])
	var want [sha256.Size]byte
	if n, err := hex.Decode(want[:], []byte(storedHash)); err != nil || n != sha256.Size {
		return false
	}
	return subtle.ConstantTimeCompare(sum[:], want[:]) == 1
}

// DisplayPrefix is the start of the key that is safe to show: the
// environment and the key ID, which identify but cannot authenticate.
func (k Key) DisplayPrefix() string {
	return DisplayPrefix(k.Environment, k.ID)
}

// DisplayPrefix is the safe-to-show start of the key with env and id.
func DisplayPrefix(env, id string) string {
	return Prefix + env + "_" + id[:min(4, len(id))] + "…"
}

func checksum(head string) string {
	return string(appendChecksum(nil, head))
}

// appendChecksum appends head's checksum to dst. The CRC is computed over
// the string in place (crc32.ChecksumIEEE would need it copied to the
// heap), with the standard library's IEEE table.
func appendChecksum(dst []byte, head string) []byte {
	c := ^uint32(0)
	for i := 0; i < len(head); i++ {
		c = crc32.IEEETable[byte(c)^head[i]] ^ c>>8
	}
	c = ^c
	b := [4]byte{byte(c >> 24), byte(c >> 16), byte(c >> 8), byte(c)}
	return enc.AppendEncode(dst, b[:]) // 4 bytes = 7 base32 characters
}
