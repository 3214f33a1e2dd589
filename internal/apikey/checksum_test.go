package apikey

import (
	"hash/crc32"
	"testing"
)

// TestChecksumIsCRC32 checks the in-place CRC against the standard
// library's, so keys made before and after it read the same.
func TestChecksumIsCRC32(t *testing.T) {
	for _, head := range []string{"", "osk_live_", "osk_test_abcdefghijkl234567", string(make([]byte, 300)), "\xff\x00é"} {
		c := crc32.ChecksumIEEE([]byte(head))
		want := enc.EncodeToString([]byte{byte(c >> 24), byte(c >> 16), byte(c >> 8), byte(c)})
		if got := checksum(head); got != want {
			t.Errorf("checksum(%q) = %q, want %q", head, got, want)
		}
	}
}

func TestParseAndMatchAllocateNothing(t *testing.T) {
	plain, k, err := Generate("live")
	if err != nil {
		t.Fatal(err)
	}
	hash := k.Hash()
	if n := testing.AllocsPerRun(100, func() {
		k, err := Parse(plain)
		if err != nil || !k.Matches(hash) {
			t.Fatal("the key does not parse or match")
		}
	}); n != 0 {
		t.Errorf("Parse and Matches allocate %v times", n)
	}
}
