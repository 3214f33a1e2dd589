package storetest

import (
	"context"
	"errors"
	"testing"

	"github.com/tenantauth/tenantauth/authserver/store"
)

// checkHeaders checks that store.GetHeader (the backend's HeaderReader,
// when it has one) answers as Get does: missing, live, revoked, per kind,
// and gone after a delete.
func checkHeaders(t *testing.T, ctx context.Context, st store.Store, id func(string) string) {
	want := func(kind, rid string, hdr store.Header, wantErr error) {
		t.Helper()
		got, err := store.GetHeader(ctx, st, kind, rid)
		if !errors.Is(err, wantErr) || got != hdr {
			t.Fatalf("GetHeader(%s, %s) = %+v, %v; want %+v, %v", kind, rid, got, err, hdr, wantErr)
		}
		rec, err := st.Get(ctx, kind, rid)
		if !errors.Is(err, wantErr) || (err == nil && (rec.UserID != hdr.UserID || rec.Revoked != hdr.Revoked)) {
			t.Fatalf("Get(%s, %s) = %+v, %v; GetHeader said %+v", kind, rid, rec, err, hdr)
		}
	}
	want(store.KindSession, id("hdr_missing"), store.Header{}, store.ErrNotFound)
	ses := &store.Record{Kind: store.KindSession, ID: id("hdr_a"), UserID: "usr_erin", Data: []byte(`{"s":1}`)}
	fam := &store.Record{Kind: store.KindFamily, ID: id("hdr_a"), UserID: "usr_erin", Data: []byte(`{"f":1}`)}
	for _, r := range []*store.Record{ses, fam} {
		if err := st.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	want(store.KindSession, id("hdr_a"), store.Header{UserID: "usr_erin"}, nil)
	if _, err := st.Update(ctx, store.KindFamily, id("hdr_a"), func(r *store.Record) error {
		r.Revoked = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want(store.KindFamily, id("hdr_a"), store.Header{UserID: "usr_erin", Revoked: true}, nil)
	want(store.KindSession, id("hdr_a"), store.Header{UserID: "usr_erin"}, nil)
	if err := st.Delete(ctx, store.KindFamily, id("hdr_a")); err != nil {
		t.Fatal(err)
	}
	want(store.KindFamily, id("hdr_a"), store.Header{}, store.ErrNotFound)
}
