// Package installation bootstraps the per-installation secret key that
// keys user IDs (see package identity, which derives them and knows no
// Kubernetes types).
package installation

import (
	"context"
	"crypto/rand"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
)

// SecretName names the Secret, in the operator's namespace, that holds the
// installation key.
const SecretName = "tenantauth-installation"

const keyField = "user-id-key"

// EnsureKey returns the installation key, creating its Secret when missing.
// Create-then-read makes concurrent first starts agree on one key. r should
// read live, not from a cache, so a fresh key is seen at once.
func EnsureKey(ctx context.Context, c client.Client, r client.Reader, namespace string) ([]byte, error) {
	key := client.ObjectKey{Namespace: namespace, Name: SecretName}
	var s corev1.Secret
	err := r.Get(ctx, key, &s)
	if err == nil {
		return keyOf(&s)
	}
	if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("read installation secret %s: %w", key, err)
	}
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("make installation key: %w", err)
	}
	s = corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: SecretName,
			Labels: map[string]string{tav1.LabelManagedBy: tav1.ManagedByValue, tav1.LabelComponent: tav1.ComponentInstallation}},
		Data: map[string][]byte{keyField: fresh},
	}
	if err := c.Create(ctx, &s); err != nil {
		if !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("create installation secret %s: %w", key, err)
		}
		if err := r.Get(ctx, key, &s); err != nil {
			return nil, fmt.Errorf("read installation secret %s: %w", key, err)
		}
	}
	return keyOf(&s)
}

func keyOf(s *corev1.Secret) ([]byte, error) {
	k := s.Data[keyField]
	if len(k) < 32 {
		return nil, fmt.Errorf("installation secret %s/%s has no usable %q", s.Namespace, s.Name, keyField)
	}
	return k, nil
}
