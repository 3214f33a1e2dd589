package identity

import (
	"regexp"
	"testing"
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
