package apikey

import (
	"errors"
	"strings"
	"testing"
)

func TestGenerateAndParse(t *testing.T) {
	for _, env := range []string{"live", "test"} {
		plain, k, err := Generate(env)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(plain, "osk_"+env+"_") || len(plain) != len("osk_live_")+bodyLen {
			t.Fatalf("format: %q", plain)
		}
		got, err := Parse(plain)
		if err != nil || got.ID != k.ID || got.Environment != env {
			t.Fatalf("parse: %+v %v", got, err)
		}
		if !got.Matches(k.Hash()) {
			t.Fatal("a key does not match its own hash")
		}
		if strings.Contains(k.DisplayPrefix(), plain[len("osk_live_")+keyIDLen:]) {
			t.Fatal("display prefix leaks the secret")
		}
	}
	a, _, _ := Generate("live")
	b, _, _ := Generate("live")
	if a == b {
		t.Fatal("two keys are equal")
	}
}

func TestParseRejects(t *testing.T) {
	plain, k, _ := Generate("live")
	flip := []byte(plain)
	if flip[20] == 'a' {
		flip[20] = 'b'
	} else {
		flip[20] = 'a'
	}
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"empty", "", ErrFormat},
		{"truncated", plain[:len(plain)-1], ErrFormat},
		{"too long", plain + "a", ErrFormat},
		{"wrong prefix", "osx" + plain[3:], ErrFormat},
		{"unknown environment", strings.Replace(plain, "_live_", "_prod_", 1), ErrFormat},
		{"upper case", strings.ToUpper(plain[:9]) + plain[9:], ErrFormat},
		{"bad character", plain[:15] + "!" + plain[16:], ErrFormat},
		{"one character mistyped", string(flip), ErrChecksum},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse(tt.in); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	other, _, _ := Generate("live")
	o, _ := Parse(other)
	if o.Matches(k.Hash()) || o.Matches("not-hex") || o.Matches("") {
		t.Fatal("a key matches a foreign or malformed hash")
	}
}

func FuzzParse(f *testing.F) {
	plain, _, _ := Generate("test")
	f.Add(plain)
	f.Add("osk_live_")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := Parse(s)
		if err != nil {
			return
		}
		if k.ID == "" || (k.Environment != "live" && k.Environment != "test") {
			t.Fatalf("accepted %q as %+v", s, k)
		}
		if _, err := Parse(s); err != nil {
			t.Fatal("not deterministic")
		}
	})
}
