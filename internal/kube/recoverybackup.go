package kube

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube/build"
)

// resolveRecoveryBackup turns bootstrap.recovery.backup (a Backup object
// of the namespace) into what the instance manager knows how to recover
// from, in desired only (the stored spec keeps the user's words): an
// external cluster holding the backed-up Cluster's object store and
// encryption key, set as the recovery source, and the Backup's ID as
// recoveryTarget.backupID. Only a completed Backup is accepted. Once an
// instance config holds the resolved spec, it is kept: the Backup may be
// deleted after the bootstrap without stopping the reconciliation.
func (r *ClusterReconciler) resolveRecoveryBackup(ctx context.Context, desired *v1.Cluster) error {
	b := desired.Spec.Bootstrap
	if b == nil || b.Recovery == nil || b.Recovery.Backup == nil {
		return nil
	}
	field := "spec.bootstrap.recovery.backup"
	rec := b.Recovery
	src, id, err := r.backupSource(ctx, desired.Namespace, rec.Backup.Name)
	if err != nil {
		kept, ok := r.resolvedRecovery(ctx, desired)
		if !ok {
			return fmt.Errorf("%s: %w", field, err)
		}
		src, id = kept.src, kept.id
	}
	for _, ec := range desired.Spec.ExternalClusters {
		if ec.Name == src.Name {
			return fmt.Errorf("%s: spec.externalClusters already has an entry %q, the name of the backed-up cluster: rename it", field, src.Name)
		}
	}
	desired.Spec.ExternalClusters = append(desired.Spec.ExternalClusters, *src)
	rec.Source, rec.Backup = src.Name, nil
	if rec.RecoveryTarget == nil {
		rec.RecoveryTarget = &v1.RecoveryTarget{}
	}
	rec.RecoveryTarget.BackupID = id
	if errs := desired.Validate(); len(errs) > 0 {
		return fmt.Errorf("%s %q resolved to an invalid recovery: %w", field, src.Name, errs.ToAggregate())
	}
	return nil
}

// backupSource reads Backup name and the Cluster it backed up: its object
// store (defaulted, so the encryption key and server name are explicit)
// as an external cluster named after that Cluster, and the backup's ID.
func (r *ClusterReconciler) backupSource(ctx context.Context, ns, name string) (*v1.ExternalCluster, string, error) {
	var bk v1.Backup
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &bk); err != nil {
		return nil, "", describeGetError("Backup", name, err)
	}
	if bk.Status.Phase != v1.BackupPhaseCompleted || bk.Status.BackupID == "" {
		return nil, "", fmt.Errorf("the Backup %q is %q, not completed: a recovery starts from a completed backup", name, bk.Status.Phase)
	}
	var from v1.Cluster
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: ns, Name: bk.Spec.Cluster.Name}, &from); err != nil {
		return nil, "", fmt.Errorf("the Backup %q backed up Cluster %q: %w", name, bk.Spec.Cluster.Name, describeGetError("Cluster", bk.Spec.Cluster.Name, err))
	}
	v1.SetDefaults(&from)
	if from.Spec.Backup == nil || from.Spec.Backup.BarmanObjectStore == nil {
		return nil, "", fmt.Errorf("the Backup %q: Cluster %q has no spec.backup.barmanObjectStore to recover from", name, from.Name)
	}
	store := from.Spec.Backup.BarmanObjectStore.DeepCopy()
	if store.EncryptionKey != nil && store.EncryptionKey.Name == from.Name+v1.BackupKeySuffix {
		// The operator never hands one Cluster's generated secret to
		// another's pods (ensureBackupSecrets): whoever may create a Cluster
		// would read every backup of the namespace. A copy of the key in a
		// Secret of the user's own shows they may read it.
		return nil, "", fmt.Errorf("the Backup %q: Cluster %q's backups are encrypted with the key pgward generated for it (%s), which another Cluster's pods never get: copy it into a Secret of your own and recover with bootstrap.recovery.source and an externalClusters entry naming that Secret as encryptionKey (docs/backup.md)",
			name, from.Name, store.EncryptionKey.Name)
	}
	return &v1.ExternalCluster{Name: from.Name, BarmanObjectStore: store}, bk.Status.BackupID, nil
}

type keptRecovery struct {
	src *v1.ExternalCluster
	id  string
}

// resolvedRecovery is the recovery an instance config already carries.
func (r *ClusterReconciler) resolvedRecovery(ctx context.Context, c *v1.Cluster) (keptRecovery, bool) {
	for _, name := range build.InstanceNames(c) {
		var s corev1.Secret
		if err := r.Client.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: build.InstanceConfigSecretName(name)}, &s); err != nil {
			continue
		}
		var m struct {
			Spec v1.ClusterSpec `json:"spec"`
		}
		if yaml.Unmarshal(s.Data[build.ClusterKeyJSON], &m) != nil {
			continue
		}
		rec := m.Spec.Bootstrap
		if rec == nil || rec.Recovery == nil || rec.Recovery.RecoveryTarget == nil || rec.Recovery.RecoveryTarget.BackupID == "" {
			continue
		}
		if src := m.Spec.RecoverySource(); src != nil && src.BarmanObjectStore != nil {
			return keptRecovery{src: src, id: rec.Recovery.RecoveryTarget.BackupID}, true
		}
	}
	return keptRecovery{}, false
}
