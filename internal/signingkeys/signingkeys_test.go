package signingkeys

import (
	"strings"
	"testing"
	"time"
)

func TestRotateScheduleAndRoundTrip(t *testing.T) {
	now := time.Unix(1_800_000_000, 0).UTC()
	p := Policy{Algorithm: "ES256", RotationInterval: time.Hour, AccessTokenTTL: 10 * time.Minute}
	s := &Set{}
	changed, next, err := s.Rotate(p, now)
	if err != nil || !changed || len(s.Entries) != 1 || !next.Equal(now.Add(time.Hour)) {
		t.Fatalf("first key: changed=%v next=%v entries=%d err=%v", changed, next, len(s.Entries), err)
	}
	if a, ok := s.Active(now); !ok || a.KID == "" || !a.ActiveFrom.Equal(now) {
		t.Fatal("the first key is active at once")
	}
	if changed, _, _ := s.Rotate(p, now.Add(time.Minute)); changed {
		t.Fatal("a second run before the interval changed the set")
	}

	at := now.Add(time.Hour)
	changed, next, _ = s.Rotate(p, at)
	lead := RotationLead(time.Hour)
	if !changed || len(s.Entries) != 2 || !next.Equal(at.Add(lead)) {
		t.Fatalf("rotation: changed=%v entries=%d next=%v", changed, len(s.Entries), next)
	}
	if a, _ := s.Active(at); a.KID != s.Entries[0].KID {
		t.Fatal("the new key signs before its activation")
	}
	if want := at.Add(lead + 10*time.Minute + RetireMargin); !s.Entries[0].RetiresAt.Equal(want) {
		t.Fatalf("retires at %v, want %v", s.Entries[0].RetiresAt, want)
	}

	data, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(data)
	if err != nil || len(back.Entries) != 2 || back.Entries[1].KID != s.Entries[1].KID ||
		!back.Entries[0].RetiresAt.Equal(s.Entries[0].RetiresAt) || !back.Entries[1].ActiveFrom.Equal(s.Entries[1].ActiveFrom) {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	pub, err := back.PublicSet()
	if err != nil {
		t.Fatal(err)
	}
	js, _ := pub.(interface{ Len() int })
	if js.Len() != 2 {
		t.Fatal("public set size")
	}

	if changed, _, _ := back.Rotate(p, s.Entries[0].RetiresAt); !changed || len(back.Entries) != 1 {
		t.Fatal("a retired key is pruned at its time")
	}
}

func TestGenerateAlgorithms(t *testing.T) {
	for _, alg := range []string{"ES256", "EdDSA", "RS256"} {
		k, err := Generate(alg)
		if err != nil {
			t.Fatal(err)
		}
		if k.Algorithm().String() != alg || k.KeyID() == "" {
			t.Fatalf("%s: alg %v kid %q", alg, k.Algorithm(), k.KeyID())
		}
		pub, err := PublicKey(k)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := pub.Get("d"); ok {
			t.Fatalf("%s public key has a private part", alg)
		}
	}
	if _, err := Generate("HS256"); err == nil || !strings.Contains(err.Error(), "unsupported") {
		t.Fatalf("HS256: %v", err)
	}
}

func TestParseRejectsGarbage(t *testing.T) {
	if _, err := Parse([]byte("{not json")); err == nil {
		t.Fatal("garbage parsed")
	}
	if s, err := Parse(nil); err != nil || len(s.Entries) != 0 {
		t.Fatal("empty data is an empty set")
	}
}
