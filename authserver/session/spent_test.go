package session

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/tenantauth/tenantauth/authserver/token"
)

// TestSpentHistory: the compact history finds each spent token by its
// place (0 the newest), finds nothing for a token never spent, keeps the
// newest maxSpent, and reads a record written before it (full hashes with
// times) the same way.
func TestSpentHistory(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	secrets := make([]string, maxSpent+5)
	for i := range secrets {
		secrets[i] = token.NewSecret()
	}
	var s Session
	for i, sec := range secrets {
		s.RefreshHash = token.HashSecret(sec)
		s.spend(t0.Add(time.Duration(i) * time.Second))
	}
	if got := len(s.SpentDigests); got != maxSpent*spentDigestLen {
		t.Fatalf("history is %d bytes, want %d", got, maxSpent*spentDigestLen)
	}
	if !s.LastSpentAt.Equal(t0.Add(time.Duration(len(secrets)-1) * time.Second)) {
		t.Fatalf("LastSpentAt %v", s.LastSpentAt)
	}
	for back := range maxSpent {
		if got := s.spentIndex(secrets[len(secrets)-1-back]); got != back {
			t.Fatalf("token spent %d back found at %d", back, got)
		}
	}
	if got := s.spentIndex(secrets[len(secrets)-maxSpent-1]); got != -1 {
		t.Fatalf("a token older than the history found at %d", got)
	}
	if got := s.spentIndex(token.NewSecret()); got != -1 {
		t.Fatalf("a guess found at %d", got)
	}

	// A record from before: three full hashes with their times.
	legacy := map[string]any{"refresh_hash": token.HashSecret("current"), "spent": []map[string]any{
		{"hash": token.HashSecret(secrets[0]), "at": t0},
		{"hash": token.HashSecret(secrets[1]), "at": t0.Add(time.Second)},
		{"hash": token.HashSecret(secrets[2]), "at": t0.Add(2 * time.Second)},
	}}
	raw, _ := json.Marshal(legacy)
	var old Session
	if err := json.Unmarshal(raw, &old); err != nil {
		t.Fatal(err)
	}
	for back, sec := range []string{secrets[2], secrets[1], secrets[0]} {
		if got := (func() int { c := old; return c.spentIndex(sec) })(); got != back {
			t.Fatalf("legacy token %d back found at %d", back, got)
		}
	}
	c := old
	c.foldLegacySpent()
	if !c.LastSpentAt.Equal(t0.Add(2*time.Second)) || c.Spent != nil {
		t.Fatalf("legacy fold: last %v, spent %v", c.LastSpentAt, c.Spent)
	}
	old.spend(t0.Add(3 * time.Second))
	if old.Spent != nil || len(old.SpentDigests) != 4*spentDigestLen || old.spentIndex("current") != 0 || old.spentIndex(secrets[0]) != 3 {
		t.Fatalf("after a spend the legacy history is %q, %v", old.SpentDigests, old.Spent)
	}
	enc, _ := json.Marshal(&old)
	if len(enc) > 1000 {
		t.Fatalf("a session with 4 spent tokens encodes to %d bytes", len(enc))
	}
}
