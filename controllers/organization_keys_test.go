package controllers

import (
	"context"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/internal/signingkeys"
)

// TestPlanRotation walks the key planner through a key set's life without
// a cluster: the first key, a quiet interval, a rotation published ahead,
// the instants before and after the new key activates, the old key's
// pruning, an algorithm change, a key that cannot be made, and a corrupt
// set, which is never planned over.
func TestPlanRotation(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0).UTC()
	es := signingkeys.Policy{Algorithm: "ES256", RotationInterval: time.Hour, AccessTokenTTL: 10 * time.Minute}
	lead := signingkeys.RotationLead(time.Hour) // one minute
	window := 10*time.Minute + signingkeys.RetireMargin

	// The stored sets the rows start from, through the record's format.
	fresh := mustPlan(t, &signingkeys.Set{}, es, t0).set
	rotated := mustPlan(t, fresh, es, t0.Add(time.Hour)).set
	freshData, rotatedData := mustMarshal(t, fresh), mustMarshal(t, rotated)
	oldKID, newKID := fresh.Entries[0].KID, rotated.Entries[1].KID
	newFrom := t0.Add(time.Hour + lead)
	oldRetires := newFrom.Add(window)

	tests := []struct {
		name   string
		stored []byte
		policy signingkeys.Policy
		now    time.Time

		corrupt bool // the set does not load
		fails   bool // planning fails

		changed bool
		kids    []string // the planned set, oldest first; "new" is a key this plan made
		made    string   // algorithm of the key this plan made, "" for none
		madeAt  time.Time
		active  string // the key signing at now
		wake    time.Duration
	}{
		{name: "no keys: the first is made, active at once", stored: nil, policy: es, now: t0,
			changed: true, kids: []string{"new"}, made: "ES256", madeAt: t0, active: "new", wake: time.Hour},
		{name: "within the interval: nothing to do", stored: freshData, policy: es, now: t0.Add(30 * time.Minute),
			kids: []string{oldKID}, active: oldKID, wake: 30 * time.Minute},
		{name: "interval passed: the next key is published ahead", stored: freshData, policy: es, now: t0.Add(time.Hour),
			changed: true, kids: []string{oldKID, "new"}, made: "ES256", madeAt: newFrom, active: oldKID, wake: lead},
		{name: "just before activation: the old key still signs", stored: rotatedData, policy: es, now: newFrom.Add(-time.Second),
			kids: []string{oldKID, newKID}, active: oldKID, wake: time.Second},
		{name: "at activation: the published key signs", stored: rotatedData, policy: es, now: newFrom,
			kids: []string{oldKID, newKID}, active: newKID, wake: window},
		{name: "after the window: the retired key is pruned", stored: rotatedData, policy: es, now: oldRetires,
			changed: true, kids: []string{newKID}, active: newKID, wake: newFrom.Add(time.Hour).Sub(oldRetires)},
		{name: "algorithm change: a key of the new algorithm is published ahead", stored: freshData,
			policy: signingkeys.Policy{Algorithm: "EdDSA", RotationInterval: time.Hour, AccessTokenTTL: 10 * time.Minute},
			now:    t0.Add(30 * time.Minute), changed: true, kids: []string{oldKID, "new"}, made: "EdDSA",
			madeAt: t0.Add(30*time.Minute + lead), active: oldKID, wake: lead},
		{name: "unsupported algorithm: no plan", stored: freshData,
			policy: signingkeys.Policy{Algorithm: "HS256", RotationInterval: time.Hour}, now: t0.Add(30 * time.Minute), fails: true},
		{name: "corrupt set: not planned over", stored: []byte(`{"keys":[{"kty":"EC"`), policy: es, now: t0, corrupt: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			r := &OrganizationReconciler{}
			s := &orgScope{org: newOrg("ns", "acme"), now: tt.now,
				record: &corev1.Secret{Data: map[string][]byte{signingkeys.DataKey: tt.stored}}}
			if _, err := r.loadKeys(ctx, s); err != nil {
				t.Fatal(err)
			}
			if tt.corrupt {
				if s.blocked == nil || s.blocked.reason != tav1.ReasonKeyGenerationFailed || !s.stopped() {
					t.Fatalf("a corrupt set must block the reconcile with %s, got %+v", tav1.ReasonKeyGenerationFailed, s.blocked)
				}
				return
			}
			if s.stopped() {
				t.Fatalf("load blocked: %+v", s.blocked)
			}
			input := schedule(s.keys)

			plan, err := planRotation(s.keys, tt.policy, tt.now)
			if tt.fails {
				if err == nil {
					t.Fatal("planned, want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := schedule(s.keys); !slices.Equal(got, input) {
				t.Fatalf("the input set was changed: %v, was %v", got, input)
			}
			if plan.changed != tt.changed {
				t.Errorf("changed = %v, want %v", plan.changed, tt.changed)
			}
			if plan.wake != tt.wake {
				t.Errorf("wake = %v, want %v", plan.wake, tt.wake)
			}
			kids := make([]string, len(plan.set.Entries))
			for i, e := range plan.set.Entries {
				kids[i] = e.KID
				if plan.made != nil && e.KID == plan.made.KID {
					kids[i] = "new"
				}
			}
			if !slices.Equal(kids, tt.kids) {
				t.Errorf("keys = %v, want %v", kids, tt.kids)
			}
			switch {
			case tt.made == "" && plan.made != nil:
				t.Errorf("made key %s, want none", plan.made.KID)
			case tt.made != "" && plan.made == nil:
				t.Errorf("made no key, want a %s key", tt.made)
			case tt.made != "":
				if plan.made.Algorithm != tt.made || !plan.made.ActiveFrom.Equal(tt.madeAt) {
					t.Errorf("made %s active from %v, want %s from %v", plan.made.Algorithm, plan.made.ActiveFrom, tt.made, tt.madeAt)
				}
				for _, e := range plan.set.Entries[:len(plan.set.Entries)-1] {
					if want := tt.madeAt.Add(window); !e.RetiresAt.Equal(want) {
						t.Errorf("key %s retires at %v, want %v", e.KID, e.RetiresAt, want)
					}
				}
			}
			active, ok := plan.set.Active(tt.now)
			if gotActive := active.KID; !ok || (tt.active == "new" && (plan.made == nil || gotActive != plan.made.KID)) ||
				(tt.active != "new" && gotActive != tt.active) {
				t.Errorf("active key = %q, want %q", gotActive, tt.active)
			}
		})
	}
}

func mustPlan(t *testing.T, set *signingkeys.Set, p signingkeys.Policy, now time.Time) keyPlan {
	t.Helper()
	plan, err := planRotation(set, p, now)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

func mustMarshal(t *testing.T, set *signingkeys.Set) []byte {
	t.Helper()
	data, err := set.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// schedule is a set's kids and times, to see whether planning touched it.
func schedule(set *signingkeys.Set) []string {
	out := make([]string, 0, len(set.Entries))
	for _, e := range set.Entries {
		out = append(out, e.KID+"@"+e.ActiveFrom.String()+"-"+e.RetiresAt.String())
	}
	return out
}
