package identity

import (
	"crypto/hmac"
	"crypto/sha256"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestUserID(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	id := UserID(key, "Alice@Example.com ")
	if !regexp.MustCompile(`^usr_[a-z2-7]{26}$`).MatchString(id) {
		t.Fatalf("format %q", id)
	}
	if UserID(key, "alice@example.com") != id {
		t.Fatal("normalization: the same email gives another ID")
	}
	if UserID(key, "bob@example.com") == id {
		t.Fatal("two emails share an ID")
	}
	if UserID([]byte("another-installation-key-0123456"), "alice@example.com") == id {
		t.Fatal("the installation key does not change IDs")
	}
}

// legacyUserID is UserID as it was before CanonicalEmail: HMAC of the
// trimmed, lower-cased address.
func legacyUserID(key []byte, email string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(strings.ToLower(strings.TrimSpace(email))))
	return "usr_" + enc.EncodeToString(m.Sum(nil))[:26]
}

// TestASCIIEmailsKeepTheirUserID checks that canonicalisation changes no
// existing plain-ASCII identity, including addresses it now refuses.
func TestASCIIEmailsKeepTheirUserID(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	// Fixed value: the ID this key gave alice before CanonicalEmail.
	if got := UserID(key, "alice@example.com"); got != legacyUserID(key, "alice@example.com") {
		t.Fatalf("alice's ID changed: %s", got)
	}
	for _, e := range []string{"alice@example.com", " Bob.Smith+tag@Sub.Example.CO.uk ", "x@y.z", "o'brien@acme.io",
		"first_last@my_host.example", "a@b", strings.Repeat("l", 70) + "@acme.com", "\"quoted\"@acme.com", "UPPER@ACME.COM"} {
		if got, want := UserID(key, e), legacyUserID(key, e); got != want {
			t.Errorf("%q: user ID %s, was %s", e, got, want)
		}
		if got, want := NormalizeEmail(e), strings.ToLower(strings.TrimSpace(e)); got != want {
			t.Errorf("%q: normalised to %q, was %q", e, got, want)
		}
	}
}

func TestCanonicalEmail(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	same := []struct{ name, a, b string }{
		{"fullwidth letter", "\uff41lice@acme.com", "alice@acme.com"},
		{"fullwidth domain", "alice@\uff41cme.com", "alice@acme.com"},
		{"NFC and NFD", "jos\u00e9@acme.com", "jose\u0301@acme.com"},
		{"case, non-ASCII", "JOS\u00c9@acme.com", "jos\u00e9@acme.com"},
		{"IDNA domain and its A-label", "alice@b\u00fccher.de", "alice@xn--bcher-kva.de"},
		{"IDNA domain, upper case", "alice@B\u00dcCHER.de", "alice@xn--bcher-kva.de"},
		{"ligature", "\ufb01nance@acme.com", "finance@acme.com"},
	}
	for _, tt := range same {
		t.Run(tt.name, func(t *testing.T) {
			ca, err1 := CanonicalEmail(tt.a)
			cb, err2 := CanonicalEmail(tt.b)
			if err1 != nil || err2 != nil || ca != cb {
				t.Fatalf("%q -> %q (%v), %q -> %q (%v)", tt.a, ca, err1, tt.b, cb, err2)
			}
			if UserID(key, tt.a) != UserID(key, tt.b) {
				t.Fatal("one address, two user IDs")
			}
			if again, err := CanonicalEmail(ca); err != nil || again != ca {
				t.Fatalf("not idempotent: %q -> %q (%v)", ca, again, err)
			}
		})
	}
	refused := []struct{ name, email string }{
		{"local part over 64 octets", strings.Repeat("a", 65) + "@acme.com"},
		{"local part over 64 octets in multi-byte letters", strings.Repeat("\u00e9", 33) + "@acme.com"},
		{"zero-width space", "al\u200bice@acme.com"},
		{"zero-width joiner", "al\u200dice@acme.com"},
		{"no-break space", "al\u00a0ice@acme.com"},
		{"control character", "al\x01ice@acme.com"},
		{"invalid UTF-8", "al\xffice@acme.com"},
		{"invalid IDNA domain", "alice@\u0300acme.com"},
		{"no at", "alice"},
		{"empty local part", "@acme.com"},
	}
	for _, tt := range refused {
		t.Run("refuses "+tt.name, func(t *testing.T) {
			if c, err := CanonicalEmail(tt.email); err == nil {
				t.Fatalf("%q accepted as %q", tt.email, c)
			}
		})
	}
	if c, err := CanonicalEmail(strings.Repeat("a", 64) + "@acme.com"); err != nil || len(c) != 73 {
		t.Fatalf("a 64-octet local part: %q %v", c, err)
	}
}

// FuzzCanonicalEmail checks that canonical forms are fixed points and are
// valid UTF-8, whatever the input.
func FuzzCanonicalEmail(f *testing.F) {
	for _, s := range []string{"alice@acme.com", "\uff41lice@acme.com", "jose\u0301@b\u00fccher.de", "a@\u0300", "\u0130@x.io", "@", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := CanonicalEmail(s)
		if err != nil {
			return
		}
		if again, err := CanonicalEmail(c); err != nil || again != c {
			t.Fatalf("%q -> %q -> %q (%v)", s, c, again, err)
		}
		if !utf8.ValidString(c) {
			t.Fatalf("%q -> invalid UTF-8 %q", s, c)
		}
	})
}
