// Package identity derives stable user IDs from emails.
//
// A user ID is "usr_" and 26 lower-case base32 characters of
// HMAC-SHA256(installation key, normalized email). Being a pure function of
// the email, it is the same in every organization, for concurrent creates
// and across deletion and re-creation, with no coordination. Keying the hash
// with a per-installation secret keeps IDs from revealing emails.
package identity

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// InstallationSecretName names the Secret, in the operator's namespace, that
// holds the installation key.
const InstallationSecretName = "tenantauth-installation"

const installationKeyField = "user-id-key"

var enc = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NormalizeEmail trims and lower-cases an email address.
func NormalizeEmail(email string) string {
	return strings.ToLower(strings.TrimSpace(email))
}

// UserID derives the user ID of email under key.
func UserID(key []byte, email string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(NormalizeEmail(email)))
	return "usr_" + enc.EncodeToString(m.Sum(nil))[:26]
}

// EnsureInstallationKey returns the installation key, creating its Secret
// when missing. Create-then-read makes concurrent first starts agree on one
// key. r should read live, not from a cache, so a fresh key is seen at once.
func EnsureInstallationKey(ctx context.Context, c client.Client, r client.Reader, namespace string) ([]byte, error) {
	key := client.ObjectKey{Namespace: namespace, Name: InstallationSecretName}
	var s corev1.Secret
	err := r.Get(ctx, key, &s)
	if err == nil {
		return installationKey(&s)
	}
	if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("read installation secret %s: %w", key, err)
	}
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("make installation key: %w", err)
	}
	s = corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: InstallationSecretName,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "tenantauth", "tenantauth.io/component": "installation"}},
		Data: map[string][]byte{installationKeyField: fresh},
	}
	if err := c.Create(ctx, &s); err != nil {
		if !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("create installation secret %s: %w", key, err)
		}
		if err := r.Get(ctx, key, &s); err != nil {
			return nil, fmt.Errorf("read installation secret %s: %w", key, err)
		}
	}
	return installationKey(&s)
}

func installationKey(s *corev1.Secret) ([]byte, error) {
	k := s.Data[installationKeyField]
	if len(k) < 32 {
		return nil, fmt.Errorf("installation secret %s/%s has no usable %q", s.Namespace, s.Name, installationKeyField)
	}
	return k, nil
}
