// Package b32 holds the one base32 alphabet of tenantauth's identifiers:
// user IDs, API keys, opaque token IDs and TOTP secrets all spell bytes in
// lower-case RFC 4648 base32 without padding, so they are safe in URLs,
// cookies and Kubernetes object names and read the same everywhere.
package b32

import "encoding/base32"

// Alphabet is the 32 characters of Lower, in value order.
const Alphabet = "abcdefghijklmnopqrstuvwxyz234567"

// Lower is lower-case RFC 4648 base32 ("a"-"z", "2"-"7") without padding.
var Lower = base32.NewEncoding(Alphabet).WithPadding(base32.NoPadding)
