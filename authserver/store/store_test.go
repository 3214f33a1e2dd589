package store

import (
	"context"
	"errors"
	"testing"
)

// TestRetryUpdate checks the loop every compare-and-swap backend shares:
// a lost swap re-reads and re-applies the change, and a record that keeps
// changing fails with ErrConflict rather than spinning.
func TestRetryUpdate(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		conflicts int
		wantErr   error
		wantCalls int
	}{
		{"first try", 0, nil, 1},
		{"two lost races", 2, nil, 3},
		{"always losing", MaxAttempts, ErrConflict, MaxAttempts},
	} {
		t.Run(tc.name, func(t *testing.T) {
			version, swaps, calls := 0, 0, 0
			get := func(context.Context, string, string) (*Record, error) {
				return &Record{Kind: KindToken, ID: "t", Version: string(rune('0' + version))}, nil
			}
			swap := func(_ context.Context, r *Record) error {
				swaps++
				if swaps <= tc.conflicts {
					version++ // somebody else wrote first
					return ErrConflict
				}
				if r.Kind != KindToken || r.ID != "t" {
					t.Errorf("swap of %s/%s: a change may not move a record", r.Kind, r.ID)
				}
				return nil
			}
			_, err := RetryUpdate(ctx, get, swap, KindToken, "t", func(r *Record) error {
				calls++
				r.Kind, r.ID = "other", "moved"
				return nil
			})
			if !errors.Is(err, tc.wantErr) || calls != tc.wantCalls {
				t.Fatalf("err %v after %d calls; want %v after %d", err, calls, tc.wantErr, tc.wantCalls)
			}
		})
	}
}

// TestUpsertCreatesThenModifies checks that a missing record starts from
// the zero value and that a later call sees what the first stored.
func TestUpsertCreatesThenModifies(t *testing.T) {
	ctx := context.Background()
	st := NewMemoryStore()
	type counter struct{ N int }
	fresh := Record{Kind: KindLockout, ID: "usr_a", UserID: "usr_a"}
	for want := 1; want <= 3; want++ {
		_, c, err := Upsert(ctx, st, fresh, func(_ *Record, c *counter) error { c.N++; return nil })
		if err != nil || c.N != want {
			t.Fatalf("upsert %d: %+v, %v", want, c, err)
		}
	}
	if _, _, err := Upsert(ctx, st, Record{Kind: KindLockout, ID: "usr_b"}, func(*Record, *counter) error { return ErrUnchanged }); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, KindLockout, "usr_b"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("an unchanged upsert created a record: %v", err)
	}
}
