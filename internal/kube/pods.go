package kube

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube/build"
)

// ensureInstances makes each instance's config secret, PVC and pod, with
// the pod labelled primary if it is target and replica otherwise, and
// removes the instances a scale-down left over (never the target primary,
// which a switchover must move first). It returns the pods by name.
//
// A pod's spec is immutable: an existing pod only gets its labels updated.
func (r *ClusterReconciler) ensureInstances(ctx context.Context, c *v1.Cluster, target string, mon monitoringResult) (map[string]*corev1.Pod, error) {
	pods := map[string]*corev1.Pod{}
	opts, err := r.podOptions(ctx, c)
	r.setImageError(c, err)
	if err != nil {
		// A catalog gone or changed wrongly must not stop a running
		// cluster's failovers: its pods keep the image they run, and the
		// OperandImage condition says why nothing rolls. A cluster with
		// no pod yet waits for a resolvable image instead of guessing.
		kept, ok, lerr := r.currentImageOptions(ctx, c)
		if lerr != nil {
			return nil, errors.Join(err, lerr)
		}
		if !ok {
			return nil, err
		}
		log.FromContext(ctx).Info("operand image unresolved: the pods keep theirs", "error", err.Error(), "image", build.OperandImage(kept))
		opts = kept
	}
	sql, err := r.resolveSQLRefs(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("spec.bootstrap.initdb SQL references: %w", err)
	}
	dbs, err := r.clusterDatabases(ctx, c)
	if err != nil {
		return nil, err
	}
	decls := databaseDeclarations(dbs)
	outdated := map[string]bool{}
	var sizes []claimSize
	for _, name := range build.InstanceNames(c) {
		cfg, err := build.InstanceConfigSecretWithSQL(c, name, target, opts, sql)
		if err != nil {
			return nil, err
		}
		r.applyCustomQueries(ctx, cfg, mon)
		build.SetDatabases(cfg, decls)
		if _, err := ensure(ctx, r.Client, c, cfg, mutateSecret); err != nil {
			return nil, err
		}
		r.noteManifest(c, name, cfg.Data[build.ClusterKeyJSON])
		pvc, err := build.PVC(c, name)
		if err != nil {
			return nil, err
		}
		tbs, err := build.TablespacePVCs(c, name)
		if err != nil {
			return nil, err
		}
		wal, err := build.WalPVC(c, name)
		if err != nil {
			return nil, err
		}
		if wal != nil {
			tbs = append(tbs, wal)
		}
		// The data volume first, as before; all from the recovery's
		// snapshots when there are some (volumesnapshot.go).
		tbs = append([]*corev1.PersistentVolumeClaim{pvc}, tbs...)
		if err := r.snapshotClaims(ctx, c, name, tbs); err != nil {
			return nil, err
		}
		for _, pvc := range tbs {
			cs, err := r.ensureClaim(ctx, c, pvc)
			if err != nil {
				return nil, err
			}
			sizes = append(sizes, cs)
		}
		if r.powerFencedRecently(c, name) {
			continue // lease.go:powerFence says why
		}
		if gone, err := r.podGone(ctx, c, name); err != nil || gone {
			if err != nil {
				return nil, err
			}
			continue // hibernated (hibernation.go)
		}
		want := build.Pod(c, name, roleOf(name, target), opts)
		manifest := r.manifestOf(c, name)
		if want.Annotations == nil {
			want.Annotations = map[string]string{}
		}
		want.Annotations[ManifestAnnotation] = manifest
		pod, err := ensure(ctx, r.Client, c, want, func(_, _ *corev1.Pod) {})
		if err != nil {
			return nil, err
		}
		if manifest != "" {
			if err := r.annotatePod(ctx, pod, ManifestAnnotation, manifest); err != nil {
				return nil, err
			}
		}
		pods[name] = pod
		if podImagesOutdated(pod, want) {
			outdated[name] = true
		}
	}
	r.setOutdated(c, outdated)
	r.setVolumeSizes(c, sizes)
	if err := r.removeExtraInstances(ctx, c, target); err != nil {
		return nil, err
	}
	return pods, nil
}

// growPVC asks for more storage when the spec grew; volumes never shrink
// (the webhook refuses that) and nothing else of a bound claim may change.
func growPVC(cur, want *corev1.PersistentVolumeClaim) {
	w := want.Spec.Resources.Requests[corev1.ResourceStorage]
	c := cur.Spec.Resources.Requests[corev1.ResourceStorage]
	if w.Cmp(c) > 0 {
		if cur.Spec.Resources.Requests == nil {
			cur.Spec.Resources.Requests = corev1.ResourceList{}
		}
		cur.Spec.Resources.Requests[corev1.ResourceStorage] = w
	}
}

// removeExtraInstances deletes the pods, PVCs and config secrets of
// instances beyond spec.instances.
func (r *ClusterReconciler) removeExtraInstances(ctx context.Context, c *v1.Cluster, target string) error {
	sel := r.ofCluster(c)
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, sel...); err != nil {
		return fmt.Errorf("listing pods of %s: %w", c.Name, err)
	}
	var pvcs corev1.PersistentVolumeClaimList
	if err := r.Client.List(ctx, &pvcs, sel...); err != nil {
		return fmt.Errorf("listing volumes of %s: %w", c.Name, err)
	}
	extra := map[string]bool{}
	for _, p := range pods.Items {
		extra[p.Name] = true
	}
	for _, p := range pvcs.Items {
		extra[p.Name] = true
		// A tablespace's or the WAL's volume goes with its instance.
		if inst := p.Labels[build.InstanceLabel]; inst != p.Name && (p.Labels[build.TablespaceLabel] != "" || p.Labels[build.PVCRoleLabel] == build.PVCRoleWAL) {
			if idx := build.InstanceIndex(c, inst); idx > c.Spec.Instances && inst != target {
				if err := deleteOwned(ctx, r.Client, c, &corev1.PersistentVolumeClaim{ObjectMeta: objectKey(c, p.Name)}); err != nil {
					return err
				}
			}
		}
	}
	for name := range extra {
		if idx := build.InstanceIndex(c, name); idx <= c.Spec.Instances || name == target {
			continue
		}
		for _, obj := range []client.Object{
			&corev1.Pod{ObjectMeta: objectKey(c, name)},
			&corev1.PersistentVolumeClaim{ObjectMeta: objectKey(c, name)},
			&corev1.Secret{ObjectMeta: objectKey(c, build.InstanceConfigSecretName(name))},
		} {
			if err := deleteOwned(ctx, r.Client, c, obj); err != nil {
				return err
			}
		}
	}
	return nil
}

func roleOf(name, target string) string {
	if name == target {
		return build.RolePrimary
	}
	return build.RoleReplica
}
