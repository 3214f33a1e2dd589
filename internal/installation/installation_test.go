package installation

import (
	"bytes"
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

func TestEnsureKey(t *testing.T) {
	ctx := context.Background()
	c := fake.NewClientBuilder().Build()
	k1, err := EnsureKey(ctx, c, c, "ns")
	if err != nil || len(k1) != 32 {
		t.Fatalf("first start: key of %d bytes, %v", len(k1), err)
	}
	k2, err := EnsureKey(ctx, c, c, "ns")
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("second start: another key (%v)", err)
	}

	short := fake.NewClientBuilder().WithObjects(&corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: SecretName},
		Data:       map[string][]byte{keyField: []byte("short")},
	}).Build()
	if _, err := EnsureKey(ctx, short, short, "ns"); err == nil {
		t.Fatal("a key shorter than 32 bytes was accepted")
	}
}
