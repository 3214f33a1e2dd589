package authserver

import (
	"strings"
	"unicode/utf8"

	"github.com/tenantauth/tenantauth/authserver/problem"

	"github.com/tenantauth/tenantauth/authserver/directory"
)

// A forwarded path is matched only after it is normalised, so that no
// spelling of a tenant's path escapes the tenant check:
//
//   - percent-decoding once (RFC 3986 section 2.1), %2E included, so
//     %2E%2E is a dot segment;
//   - dot segments removed (RFC 3986 section 5.2.4);
//   - repeated slashes collapsed, before dot segments are removed, as
//     nginx's merge_slashes and Go's path.Clean do;
//   - the /api/org/ prefix matched without regard to (ASCII) case.
//
// A path is refused (400) when upstream servers are known to read it in
// more than one way: invalid percent-encoding, an encoded '/' or '\'
// (some servers split segments on them after decoding, some do not),
// double encoding (%25, which a server that decodes twice turns into a
// new escape), a control character or NUL, '\' (a separator on some
// servers), ';' (path parameters, which Tomcat and Spring strip, so
// /api;x/org/... is /api/org/... to them), a decoded '?' or '#', or
// invalid UTF-8 (overlong encodings of '/').
//
// Every tenant a path names must be the credential's: the one of the
// /api/org/{org} prefix, and any later run of segments api, org, {org}
// (a proxy that strips a prefix hands the upstream that inner path). They
// are read from the normalised path and also from the path with its dot
// segments kept, which is how an upstream that does not resolve them
// reads it; so /api/org/globex/x/../../.. names globex although it
// normalises to /api/.

// maxForwardedPath bounds the work one request can ask for.
const maxForwardedPath = 16 << 10

var (
	errPathNotAbsolute = pathError("it must start with /")
	errPathTooLong     = pathError("it is longer than 16 KiB")
	errPathPercent     = pathError("it has an invalid percent-encoding")
	errPathEncodedSep  = pathError("it has an encoded '/' or '\\'")
	errPathDouble      = pathError("it is percent-encoded twice (%25)")
	errPathChar        = pathError("it has a control character, '\\', ';', '?' or '#'")
	errPathUTF8        = pathError("it is not valid UTF-8")
)

func pathError(why string) *problem.Error {
	return problem.InvalidForwardedURI.Because("the original request's path cannot be normalised: " + why)
}

// forwardedPath is a forwarded request's path in two readings. Both are
// decoded once and have no repeated slashes; clean has no dot segments.
// For a path that needs no normalising both are the input itself, with no
// allocation.
type forwardedPath struct {
	clean   string
	literal string
}

// parseForwardedPath normalises p, the path of an original request
// without its query.
func parseForwardedPath(p string) (forwardedPath, error) {
	if p == "" || p[0] != '/' {
		return forwardedPath{}, errPathNotAbsolute
	}
	if len(p) > maxForwardedPath {
		return forwardedPath{}, errPathTooLong
	}
	slow, ascii := false, true
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '%':
			slow = true
		case c == '/':
			if i+1 < len(p) && p[i+1] == '/' || dotSegmentAt(p, i+1) {
				slow = true
			}
		case c >= utf8.RuneSelf:
			ascii = false
		case badPathByte(c):
			return forwardedPath{}, errPathChar
		}
	}
	if !slow {
		if !ascii && !utf8.ValidString(p) {
			return forwardedPath{}, errPathUTF8
		}
		return forwardedPath{clean: p, literal: p}, nil
	}
	// Small paths are decoded on the stack; the two readings share one
	// string, so normalising costs one allocation.
	var stack [256]byte
	buf := stack[:0]
	if len(p) > len(stack) {
		buf = make([]byte, 0, len(p))
	}
	decoded, err := appendDecoded(buf, p)
	if err != nil {
		return forwardedPath{}, err
	}
	return resolvePath(decoded), nil
}

// dotSegmentAt reports whether the segment starting at p[i] is "." or "..".
func dotSegmentAt(p string, i int) bool {
	if i >= len(p) || p[i] != '.' {
		return false
	}
	i++
	if i < len(p) && p[i] == '.' {
		i++
	}
	return i == len(p) || p[i] == '/'
}

// badPathByte reports the bytes refused in a path, raw or decoded
// (besides the escapes decodePath refuses).
func badPathByte(c byte) bool {
	return c < 0x20 || c == 0x7f || c == '\\' || c == ';' || c == '?' || c == '#'
}

// appendDecoded appends p percent-decoded once to buf, refusing what the
// package comment lists.
func appendDecoded(buf []byte, p string) ([]byte, error) {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '%' {
			if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
				return nil, errPathPercent
			}
			c = unhex(p[i+1])<<4 | unhex(p[i+2])
			i += 2
			switch c {
			case '/', '\\':
				return nil, errPathEncodedSep
			case '%':
				return nil, errPathDouble
			}
		}
		if badPathByte(c) {
			return nil, errPathChar
		}
		buf = append(buf, c)
	}
	if !utf8.Valid(buf) {
		return nil, errPathUTF8
	}
	return buf, nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// resolvePath collapses repeated slashes in a decoded path and removes its
// dot segments (RFC 3986 section 5.2.4), keeping a trailing slash: the
// clean reading. The literal reading collapses slashes only.
func resolvePath(d []byte) forwardedPath {
	var stack [512]byte
	out := stack[:0]
	if 2*len(d)+2 > len(stack) {
		out = make([]byte, 0, 2*len(d)+2)
	}
	trailing := false
	for seg, rest := nextSegmentBytes(d); ; seg, rest = nextSegmentBytes(rest) {
		switch {
		case len(seg) == 0:
			// A repeated slash, or the last one: only a last one is kept.
			trailing = len(rest) == 0
		case string(seg) == ".":
			trailing = true
		case string(seg) == "..":
			if k := lastSlash(out); k >= 0 {
				out = out[:k]
			}
			trailing = true
		default:
			out = append(append(out, '/'), seg...)
			trailing = false
		}
		if len(rest) == 0 {
			break
		}
	}
	if len(out) == 0 || trailing {
		out = append(out, '/')
	}
	n := len(out)
	for seg, rest := nextSegmentBytes(d); ; seg, rest = nextSegmentBytes(rest) {
		if len(seg) > 0 {
			out = append(append(out, '/'), seg...)
		}
		if len(rest) == 0 {
			break
		}
	}
	if len(out) == n || d[len(d)-1] == '/' {
		out = append(out, '/')
	}
	both := string(out)
	return forwardedPath{clean: both[:n], literal: both[n:]}
}

// nextSegmentBytes is nextSegment for a []byte path starting with '/'.
func nextSegmentBytes(path []byte) (seg, rest []byte) {
	path = path[1:]
	for i, c := range path {
		if c == '/' {
			return path[:i], path[i:]
		}
	}
	return path, nil
}

func lastSlash(b []byte) int {
	for k := len(b) - 1; k >= 0; k-- {
		if b[k] == '/' {
			return k
		}
	}
	return -1
}

// tenant is the organization the path's /api/org/{org} prefix names, or
// "" when the path has no such prefix.
func (p forwardedPath) tenant() string {
	path := p.clean
	for i, word := range [...]string{"api", "org", ""} {
		var seg string
		seg, path = nextSegment(path)
		if i == 2 {
			return seg
		}
		if !segmentIs(seg, word) {
			return ""
		}
	}
	return ""
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// nextSegment splits the first segment off path (which starts with '/').
func nextSegment(path string) (seg, rest string) {
	if path == "" {
		return "", ""
	}
	path = path[1:]
	if i := strings.IndexByte(path, '/'); i >= 0 {
		return path[:i], path[i:]
	}
	return path, ""
}

// segmentIs reports whether seg is word (lower-case ASCII) without regard
// to case. A non-ASCII spelling that Unicode case mapping turns into word
// counts too (strings.ToLower maps U+0130 to 'i', ToUpper maps the dotless
// U+0131 to 'I'), so an upstream that routes case-insensitively with
// Unicode rules cannot see /api/org/ where this sees none.
func segmentIs(seg, word string) bool {
	if asciiEqualFold(seg, word) {
		return true
	}
	// A look-alike has as many runes as word, so more bytes.
	if len(seg) <= len(word) || len(seg) > utf8.UTFMax*len(word) || isASCII(seg) {
		return false
	}
	return strings.EqualFold(seg, word) || strings.ToLower(seg) == word || strings.EqualFold(strings.ToUpper(seg), word)
}

// allTenantsAre reports whether every tenant the path names, in either
// reading, is o (by slug or ID, without regard to ASCII case).
func (p forwardedPath) allTenantsAre(o *directory.Org) bool {
	if !tenantsAre(p.clean, o) {
		return false
	}
	return p.literal == p.clean || tenantsAre(p.literal, o)
}

// tenantsAre walks the segments of path: each segment after a pair api,
// org (segmentIs) names a tenant, which must be o. Dot segments are never
// api, org or a tenant.
func tenantsAre(path string, o *directory.Org) bool {
	// afterAPI: the previous segment was api; afterAPIOrg: the previous
	// two were api, org.
	var afterAPI, afterAPIOrg bool
	for path != "" {
		var seg string
		seg, path = nextSegment(path)
		if seg == "" {
			continue
		}
		if afterAPIOrg && seg != "." && seg != ".." && !orgNamed(o, seg) {
			return false
		}
		afterAPI, afterAPIOrg = segmentIs(seg, "api"), afterAPI && segmentIs(seg, "org")
	}
	return true
}

// orgNamed reports whether name is o's slug or ID. Slugs are lower-case
// DNS labels, so /api/org/ACME/ can only mean acme; the fold is ASCII only,
// so no look-alike rune (the Kelvin sign folds to k in Unicode) matches.
func orgNamed(o *directory.Org, name string) bool {
	return asciiEqualFold(name, o.Slug) || asciiEqualFold(name, o.ID)
}

// asciiEqualFold is strings.EqualFold for ASCII letters only.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x != y && lowerASCII(x) != lowerASCII(y) {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
