package webhookcert

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// certFileWriter copies the serving certificate from its Secret into the
// webhook server's certificate folder. The rotator only waits for the
// files to appear; left to the kubelet's Secret-volume sync that takes up
// to two minutes on a first install. Writing them here (into an emptyDir)
// takes a second. It runs on every replica, since every replica serves.
type certFileWriter struct {
	reader client.Reader
	key    client.ObjectKey
	dir    string
	every  time.Duration
}

// Start copies the files whenever the Secret's differ, until ctx ends.
func (w *certFileWriter) Start(ctx context.Context) error {
	t := time.NewTicker(w.every)
	defer t.Stop()
	for {
		if err := w.sync(ctx); err != nil {
			log.FromContext(ctx).Error(err, "copy webhook certificate", "secret", w.key, "dir", w.dir)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// NeedLeaderElection is false: every replica serves webhooks.
func (w *certFileWriter) NeedLeaderElection() bool { return false }

func (w *certFileWriter) sync(ctx context.Context) error {
	var s corev1.Secret
	if err := w.reader.Get(ctx, w.key, &s); err != nil {
		return client.IgnoreNotFound(err)
	}
	for _, name := range []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey} {
		want := s.Data[name]
		if len(want) == 0 {
			return nil // the rotator has not issued yet
		}
		if have, err := os.ReadFile(filepath.Join(w.dir, name)); err == nil && bytes.Equal(have, want) {
			continue
		}
		if err := writeAtomic(filepath.Join(w.dir, name), want); err != nil {
			return err
		}
	}
	return nil
}

// writeAtomic replaces path by renaming a finished temporary file over it,
// so the server's certificate watcher never reads half a file.
func writeAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("make %s: %w", filepath.Dir(path), err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
