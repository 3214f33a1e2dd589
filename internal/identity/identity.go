// Package identity derives stable user IDs from emails.
//
// A user ID is "usr_" and 26 lower-case base32 characters of
// HMAC-SHA256(installation key, normalized email) (see CanonicalEmail). Being a pure function of
// the email, it is the same in every organization, for concurrent creates
// and across deletion and re-creation, with no coordination. Keying the hash
// with a per-installation secret keeps IDs from revealing emails; package
// installation bootstraps that key. This package knows no Kubernetes types.
package identity

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"

	"github.com/tenantauth/tenantauth/internal/b32"
)

var enc = b32.Lower

// maxLocalPart is the longest local part, in octets (RFC 5321 4.5.3.1.1).
const maxLocalPart = 64

// CanonicalEmail is the one spelling of an email that becomes an identity,
// or an error saying why the address cannot be one. Look-alike spellings
// of one address are one identity or are refused:
//
//   - surrounding space is trimmed, and the address is NFKC-normalised and
//     lower-cased (then normalised again, as lower-casing can denormalise),
//     so fullwidth "ａlice" is "alice" and the NFC and NFD spellings of
//     "josé" are one;
//   - the domain is ASCII, or is converted to its IDNA (punycode) A-label,
//     or the address is refused;
//   - a local part over 64 octets, or holding control, format (zero-width)
//     or space characters, is refused.
//
// It is a pure function of its input, so the operator, the webhooks and
// every auth server replica agree. On plain ASCII it trims and lower-cases
// only, as NormalizeEmail always did, so no existing user ID changes.
func CanonicalEmail(email string) (string, error) {
	e := strings.TrimSpace(email)
	e = norm.NFKC.String(strings.ToLower(norm.NFKC.String(e)))
	at := strings.LastIndexByte(e, '@')
	if at <= 0 || at == len(e)-1 {
		return "", errors.New("must be an address such as alice@example.com")
	}
	local, domain := e[:at], e[at+1:]
	if len(local) > maxLocalPart {
		return "", fmt.Errorf("the part before @ must be at most %d octets", maxLocalPart)
	}
	for _, r := range local {
		if unicode.In(r, unicode.Cc, unicode.Cf, unicode.Z) || r == utf8.RuneError {
			return "", errors.New("the part before @ must hold no spaces, control or invisible characters")
		}
	}
	if !ascii(domain) {
		a, err := idna.Lookup.ToASCII(domain)
		if err != nil || !ascii(a) {
			return "", errors.New("the domain is not a valid internationalised domain name")
		}
		domain = a
	}
	return local + "@" + domain, nil
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// NormalizeEmail is CanonicalEmail's form of email. An address that
// CanonicalEmail refuses comes back trimmed and lower-cased only (its old
// form, so its user ID is what it always was); whoever accepts addresses
// must refuse it, which comparing it with CanonicalEmail does.
func NormalizeEmail(email string) string {
	if c, err := CanonicalEmail(email); err == nil {
		return c
	}
	return strings.ToLower(strings.TrimSpace(email))
}

// UserID derives the user ID of email under key.
func UserID(key []byte, email string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(NormalizeEmail(email)))
	return "usr_" + enc.EncodeToString(m.Sum(nil))[:26]
}
