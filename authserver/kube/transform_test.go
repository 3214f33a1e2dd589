package kube

import (
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/authserver/store"
)

// TestTransformSecretKeepsWhatReadsNeed: a store Secret, cut down, still
// reads as the same record; an operator record keeps its owner and UID.
func TestTransformSecretKeepsWhatReadsNeed(t *testing.T) {
	s := &Store{namespace: "sys"}
	rec := &store.Record{Kind: store.KindSession, ID: "ses_abc", UserID: "usr_x", Revoked: true,
		ExpiresAt: time.Now().Add(time.Hour).UTC().Truncate(time.Second), Data: []byte(`{"user_id":"usr_x"}`)}
	sec := s.toSecret(rec)
	sec.ResourceVersion, sec.UID = "42", "u-1"
	sec.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "authserver", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:data":{}}`)}}}
	want := fromSecret(sec)
	out, err := TransformSecret(sec)
	if err != nil {
		t.Fatal(err)
	}
	small := out.(*corev1.Secret)
	if got := fromSecret(small); !reflect.DeepEqual(got, want) || !s.ours(small) {
		t.Fatalf("transformed store Secret reads %+v, want %+v (ours %v)", got, want, s.ours(small))
	}
	if small.ManagedFields != nil || small.UID != "" || len(small.Labels) != 3 || len(small.Annotations) != 3 {
		t.Fatalf("store Secret kept more than its reads need: %+v", small.ObjectMeta)
	}

	owner := []metav1.OwnerReference{{APIVersion: "tenantauth.io/v1alpha1", Kind: "Organization", Name: "acme", UID: "org-uid"}}
	trusted := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "k", Namespace: "sys", UID: "u-2", OwnerReferences: owner,
		Labels:        map[string]string{tav1.LabelComponent: "signing-keys"},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "operator"}}}}
	out, _ = TransformSecret(trusted)
	if got := out.(*corev1.Secret); got.ManagedFields != nil || got.UID != "u-2" || !reflect.DeepEqual(got.OwnerReferences, owner) {
		t.Fatalf("operator record after the transform: %+v", got.ObjectMeta)
	}
}
