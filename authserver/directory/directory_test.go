package directory

import (
	"reflect"
	"testing"
)

// TestMembersByEmail follows one email's memberships through adds,
// replacements (a role change, a disable, a move to another email) and
// deletes, and checks every lookup by email after each step.
func TestMembersByEmail(t *testing.T) {
	d := NewDirectory()
	d.PutOrg(&Org{Ref: "ns/acme", ID: "org_acme", Slug: "acme"})
	d.PutOrg(&Org{Ref: "ns/beta", ID: "org_beta", Slug: "beta"})
	type want struct {
		acmeRole  string // MemberOf acme: "" when none
		anyAcme   bool   // MemberAnyState acme
		elsewhere bool   // MemberElsewhere than acme
		slugs     []string
	}
	steps := []struct {
		name string
		do   func()
		want want
	}{
		{"no members", func() {}, want{}},
		{"member of acme", func() { d.PutMember(&Member{Ref: "ns/a1", OrgRef: "ns/acme", Email: "a@x.io", Role: "viewer"}) },
			want{acmeRole: "viewer", anyAcme: true, slugs: []string{"acme"}}},
		{"and of beta", func() { d.PutMember(&Member{Ref: "ns/b1", OrgRef: "ns/beta", Email: "a@x.io", Role: "owner"}) },
			want{acmeRole: "viewer", anyAcme: true, elsewhere: true, slugs: []string{"acme", "beta"}}},
		{"acme role changed", func() { d.PutMember(&Member{Ref: "ns/a1", OrgRef: "ns/acme", Email: "a@x.io", Role: "admin"}) },
			want{acmeRole: "admin", anyAcme: true, elsewhere: true, slugs: []string{"acme", "beta"}}},
		{"acme disabled", func() {
			d.PutMember(&Member{Ref: "ns/a1", OrgRef: "ns/acme", Email: "a@x.io", Role: "admin", Disabled: true})
		}, want{anyAcme: true, elsewhere: true, slugs: []string{"beta"}}},
		{"acme moved to another email", func() { d.PutMember(&Member{Ref: "ns/a1", OrgRef: "ns/acme", Email: "b@x.io", Role: "admin"}) },
			want{elsewhere: true, slugs: []string{"beta"}}},
		{"beta deleted", func() { d.DeleteMember("ns/b1") }, want{}},
	}
	for _, st := range steps {
		st.do()
		m, ok := d.MemberOf("a@x.io", "ns/acme")
		role := ""
		if ok {
			role = m.Role
		}
		_, any := d.MemberAnyState("a@x.io", "ns/acme")
		var slugs []string
		for _, ms := range d.Memberships("a@x.io") {
			slugs = append(slugs, ms.Org.Slug)
		}
		got := want{acmeRole: role, anyAcme: any, elsewhere: d.MemberElsewhere("a@x.io", "ns/acme"), slugs: slugs}
		if !reflect.DeepEqual(got, st.want) {
			t.Fatalf("%s: got %+v, want %+v", st.name, got, st.want)
		}
	}
	if _, ok := d.MemberOf("b@x.io", "ns/acme"); !ok {
		t.Fatal("the moved membership is not found under its new email")
	}
	if n := len(d.byEmail); n != 1 {
		t.Fatalf("byEmail keeps %d emails, want only b@x.io's", n)
	}
}

func TestOrgKeysByID(t *testing.T) {
	d := NewDirectory()
	d.PutOrg(&Org{Ref: "ns/acme", ID: "org_acme", Slug: "acme"})
	if o, ks, ok := d.OrgKeysByID("org_acme"); !ok || o.Slug != "acme" || ks != nil {
		t.Fatalf("before keys: %v %v %v", o, ks, ok)
	}
	set := &KeySet{}
	d.PutKeys("ns/acme", set)
	if o, ks, ok := d.OrgKeysByID("org_acme"); !ok || o.Slug != "acme" || ks != set {
		t.Fatalf("with keys: %v %v %v", o, ks, ok)
	}
	if _, _, ok := d.OrgKeysByID("org_none"); ok {
		t.Fatal("an unknown ID was found")
	}
	if _, _, ok := d.OrgKeysByID(""); ok {
		t.Fatal("the empty ID was found")
	}
}
