package account

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tenantauth/tenantauth/authserver/problem"

	"golang.org/x/text/unicode/norm"
)

// Passwords are Unicode (NIST SP 800-63B 5.1.1.2): they must be valid
// UTF-8, they are NFKC-normalised before they are hashed and before they
// are compared, so the same password typed on two keyboards is one
// password, and a new one must hold something visible. NFKC leaves ASCII
// unchanged, so every existing ASCII password still verifies; a hash made
// from a non-ASCII password before normalisation is still accepted for the
// exact bytes it was made from.

// normalizePassword is the form a password is hashed and compared in.
func normalizePassword(p string) string { return norm.NFKC.String(p) }

// verifyNormalized checks a password against a hash in its normalised
// form and, for a password normalisation changes, also in the form it
// was typed in, which hashes made before normalisation used. The second
// check runs for known and unknown accounts alike.
func verifyNormalized(password, encoded string) bool {
	n := normalizePassword(password)
	if VerifyPassword(n, encoded) {
		return true
	}
	return n != password && VerifyPassword(password, encoded)
}

// checkPasswordEncoding refuses a password that is not valid UTF-8: bytes
// that are no characters would otherwise all decode alike.
func checkPasswordEncoding(p string) error {
	// U+FFFD is what a JSON decoder makes of bytes, or escaped lone
	// surrogates, that are no characters: refusing it keeps two different
	// inputs from becoming one password.
	if !utf8.ValidString(p) || strings.ContainsRune(p, utf8.RuneError) {
		return problem.InvalidPassword.Because("the password must be valid UTF-8 text")
	}
	return nil
}

// blankPassword reports whether p holds nothing visible: only whitespace,
// control, format (zero-width) and filler characters.
func blankPassword(p string) bool {
	return strings.IndexFunc(p, func(r rune) bool { return !invisible(r) }) < 0
}

func invisible(r rune) bool {
	switch r {
	case '\u115f', '\u1160', '\u3164', '\uffa0', '\u2800', '\u180e', '\u034f':
		// Hangul fillers, the braille blank, the Mongolian vowel separator
		// and the combining grapheme joiner render as nothing.
		return true
	}
	return unicode.IsSpace(r) || unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zs, unicode.Zl, unicode.Zp, unicode.Co) ||
		unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r) || unicode.Is(unicode.Variation_Selector, r)
}
