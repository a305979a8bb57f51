package kube

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube/build"
)

// ensureBackupSecrets generates the backup encryption key when spec.backup
// names none, and checks that every key the backup and recovery
// configuration names exists: a missing one would leave the pods waiting
// for their projected volume with no word in the Cluster's status.
func (r *ClusterReconciler) ensureBackupSecrets(ctx context.Context, c *v1.Cluster) error {
	generated := c.Name + v1.BackupKeySuffix
	for _, u := range c.BackupSecretKeys() {
		if u.Name == generated && u.Field == "spec.backup.barmanObjectStore.encryptionKey" {
			if err := r.ensureBackupKey(ctx, c); err != nil {
				return err
			}
			continue
		}
		s, err := r.userSecret(ctx, c, u.Name, u.What)
		if err != nil {
			return fmt.Errorf("%s: %w", u.Field, err)
		}
		if _, ok := s.Data[u.Key]; !ok {
			return fmt.Errorf("%s: secret %s has no key %q", u.Field, u.Name, u.Key)
		}
	}
	return nil
}

// ensureBackupKey creates <cluster>-backup-key once, never replacing it: a
// new passphrase would make the backups already in the store unreadable.
// The passphrase is never logged nor put in an event.
func (r *ClusterReconciler) ensureBackupKey(ctx context.Context, c *v1.Cluster) error {
	name := c.Name + v1.BackupKeySuffix
	var cur corev1.Secret
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: name}, &cur)
	switch {
	case err == nil:
		if !metav1.IsControlledBy(&cur, c) {
			return fmt.Errorf("secret %s exists and is not controlled by cluster %s: refusing to use it as the generated key", name, c.Name)
		}
		return nil
	case !apierrors.IsNotFound(err):
		return fmt.Errorf("reading secret %s: %w", name, err)
	}
	key := make([]byte, 32)
	if _, err := io.ReadFull(r.rand(), key); err != nil {
		return fmt.Errorf("generating the backup encryption key: %w", err)
	}
	_, err = ensure(ctx, r.Client, c, build.BackupKeySecret(c, []byte(hex.EncodeToString(key))), func(_, _ *corev1.Secret) {})
	return err
}
