package postgres

import (
	"fmt"
	"testing"

	"github.com/tenantauth/tenantauth/authserver/store"
)

func TestRecentIsBounded(t *testing.T) {
	c := newRecent(8)
	for i := range 100 {
		c.put(&store.Record{Kind: store.KindSession, ID: fmt.Sprint("ses_", i), Version: "1"})
		if n := c.len(); n > 8 {
			t.Fatalf("after %d puts the set holds %d, more than its bound 8", i+1, n)
		}
	}
	last := &store.Record{Kind: store.KindSession, ID: "ses_last", Version: "7"}
	c.put(last)
	if got, ok := c.get(store.KindSession, "ses_last"); !ok || got.Version != "7" {
		t.Fatalf("the newest record is not kept: %v %v", got, ok)
	}
	c.forget(store.KindSession, "ses_last")
	if _, ok := c.get(store.KindSession, "ses_last"); ok {
		t.Fatal("a forgotten record is still returned")
	}
	// Other kinds are never kept: their reads decide refusals.
	c.put(&store.Record{Kind: store.KindCredentials, ID: "u1"})
	if _, ok := c.get(store.KindCredentials, "u1"); ok {
		t.Fatal("a credentials record is kept")
	}
	// A copy handed out is the caller's: changing it leaves the set's.
	c.put(&store.Record{Kind: store.KindSession, ID: "ses_x", Version: "3"})
	got, _ := c.get(store.KindSession, "ses_x")
	got.Version = "99"
	if again, _ := c.get(store.KindSession, "ses_x"); again.Version != "3" {
		t.Fatalf("changing a returned copy changed the kept one: %s", again.Version)
	}
	c.clear()
	if n := c.len(); n != 0 {
		t.Fatalf("after clear the set holds %d", n)
	}
	if off := newRecent(-1); off.kept(store.KindSession) {
		t.Fatal("a negative bound keeps records")
	}
}
