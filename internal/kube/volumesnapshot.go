package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/kube/build"
)

// Volume snapshot backups (method volumeSnapshot) are cold: the chosen
// instance (a streaming standby unless target is primary or there is
// none) is fenced through the Cluster's cnpg.io/fencedInstances
// annotation, which has its instance manager shut PostgreSQL down cleanly
// and keep it down; once it reports so, a VolumeSnapshot of each of its
// volumes is created (data, WAL, tablespaces); once every snapshot is
// cut, the fence is lifted and the instance starts and streams again;
// the Backup completes when every snapshot is readyToUse. A cleanly shut
// down data directory needs no backup_label: a recovery starts it, replays
// the WAL it holds and promotes.
//
// The operator reads VolumeSnapshots with its API reader (no informer): a
// cluster without the snapshot CRDs must not hold up the manager's cache.

// +kubebuilder:rbac:groups=snapshot.storage.k8s.io,resources=volumesnapshots,verbs=get;create

// Labels and annotations pgward puts on the VolumeSnapshots it takes, so
// that a recovery (and a person) can tell what each one holds.
const (
	// SnapshotBackupLabel names the Backup that took the snapshot.
	SnapshotBackupLabel = "pgward.io/backup"
	// SnapshotInstanceLabel names the instance whose volume it is.
	SnapshotInstanceLabel = "pgward.io/instance"
	// SnapshotTypeLabel is PG_DATA, PG_WAL or PG_TABLESPACE.
	SnapshotTypeLabel = "pgward.io/snapshotType"
	// SnapshotTablespaceLabel names a PG_TABLESPACE snapshot's tablespace.
	SnapshotTablespaceLabel = "pgward.io/tablespace"
	// SnapshotPGVersionAnnotation and SnapshotOnlineAnnotation describe
	// the data: PostgreSQL's major, and that it was cleanly shut down.
	SnapshotPGVersionAnnotation = "pgward.io/pgMajor"
	SnapshotOnlineAnnotation    = "pgward.io/online"
	// backupFenceAnnotation, on a Backup, names the instance the operator
	// fenced for it (and must unfence): one the user had fenced already
	// stays fenced.
	backupFenceAnnotation = "pgward.io/fenced-instance"
	// unfenceFinalizer keeps a Backup that fenced an instance until the
	// fence is lifted: deleting it mid-run must not leave the instance
	// down for good.
	unfenceFinalizer = "pgward.io/unfence"
)

// snapshotFenceTimeout bounds how long a backup waits for its instance to
// stop (its stopDelay is 180 s by default) before it fails and unfences.
const snapshotFenceTimeout = 10 * time.Minute

func boolPtr(b bool) *bool { return &b }

// snapshotBackup drives a Backup of method volumeSnapshot.
func (r *BackupReconciler) snapshotBackup(ctx context.Context, b *v1.Backup, c *v1.Cluster) (reconcile.Result, error) {
	if c.Spec.Backup == nil || c.Spec.Backup.VolumeSnapshot == nil {
		return r.fail(ctx, b, fmt.Sprintf("cluster %s has no spec.backup.volumeSnapshot", c.Name))
	}
	if b.Spec.Online != nil && *b.Spec.Online {
		return r.fail(ctx, b, "spec.online: pgward takes cold volume snapshots only")
	}
	if b.Status.Phase == v1.BackupPhaseRunning {
		return r.followSnapshots(ctx, b, c)
	}
	tlsm, err := r.clientTLS(ctx, c)
	if err != nil {
		return r.pending(ctx, b, err.Error())
	}
	primary := c.Status.CurrentPrimary
	if primary == "" {
		return r.pending(ctx, b, fmt.Sprintf("cluster %s has no primary yet", c.Name))
	}
	if other, err := r.runningBackup(ctx, b, c); err != nil || other != "" {
		if err != nil {
			return reconcile.Result{}, err
		}
		return r.pending(ctx, b, fmt.Sprintf("backup %s of cluster %s is running", other, c.Name))
	}
	pod := primary
	if b.Spec.Target != v1.BackupTargetPrimary {
		if s := r.streamingStandby(ctx, c, primary, tlsm); s != "" {
			pod = s
		}
	}
	fenced, err := c.Fenced()
	if err != nil {
		return r.fail(ctx, b, fmt.Sprintf("metadata.annotations[%s] of cluster %s: %v", v1.FencedInstancesAnnotation, c.Name, err))
	}
	if !slices.Contains(fenced, pod) && !slices.Contains(fenced, v1.FenceAll) {
		// Recorded on the Backup before the fence is set, so a restart of
		// the operator in between still lifts it.
		before := b.DeepCopy()
		if b.Annotations == nil {
			b.Annotations = map[string]string{}
		}
		b.Annotations[backupFenceAnnotation] = pod
		controllerutil.AddFinalizer(b, unfenceFinalizer)
		if err := r.Client.Patch(ctx, b, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
			return reconcile.Result{}, fmt.Errorf("recording the fence of backup %s: %w", b.Name, err)
		}
	}
	before := b.DeepCopy()
	b.Status.Phase, b.Status.Error = v1.BackupPhaseRunning, ""
	b.Status.Method, b.Status.Online = v1.BackupMethodVolumeSnapshot, boolPtr(false)
	b.Status.InstanceID = &v1.InstanceID{PodName: pod}
	b.Status.StartedAt = &metav1.Time{Time: r.now().Truncate(time.Second)}
	if err := r.patchStatus(ctx, b, before); err != nil {
		return reconcile.Result{}, err
	}
	r.event(b, corev1.EventTypeNormal, "Started", "cold volume snapshot backup of %s: stopping it cleanly (fenced)", pod)
	return r.followSnapshots(ctx, b, c)
}

// streamingStandby is a replica of c that is up and streaming from the
// primary, "" when none answers so.
func (r *BackupReconciler) streamingStandby(ctx context.Context, c *v1.Cluster, primary string, tlsm *ClientTLS) string {
	for _, name := range build.InstanceNames(c) {
		if name == primary {
			continue
		}
		in, err := r.instance(ctx, c, name, tlsm)
		if err != nil {
			continue
		}
		st, err := r.Instances.Status(ctx, in, 0)
		if err != nil {
			continue
		}
		if st.Role == instanceapi.RoleReplica && st.Ready && !st.Fenced && st.StreamingFrom != "" {
			return name
		}
	}
	return ""
}

// followSnapshots waits for the instance to be down, takes the snapshots,
// lifts the fence once they are cut and completes once they are ready.
func (r *BackupReconciler) followSnapshots(ctx context.Context, b *v1.Backup, c *v1.Cluster) (reconcile.Result, error) {
	pod := ""
	if b.Status.InstanceID != nil {
		pod = b.Status.InstanceID.PodName
	}
	if b.Status.BackupSnapshotStatus == nil {
		if err := r.setFence(ctx, c, b, true); err != nil {
			return reconcile.Result{}, err
		}
		down, why, err := r.instanceDown(ctx, c, pod)
		if err != nil {
			return reconcile.Result{}, err
		}
		if !down {
			if b.Status.StartedAt != nil && r.now().Sub(b.Status.StartedAt.Time) > snapshotFenceTimeout {
				return r.failSnapshot(ctx, b, c, fmt.Sprintf("instance %s did not stop within %s (%s)", pod, snapshotFenceTimeout, why))
			}
			return reconcile.Result{RequeueAfter: r.poll()}, nil
		}
		elems, err := r.createSnapshots(ctx, b, c, pod)
		if err != nil {
			return r.failSnapshot(ctx, b, c, err.Error())
		}
		before := b.DeepCopy()
		b.Status.BackupSnapshotStatus = &v1.BackupSnapshotStatus{Elements: elems}
		if err := r.patchStatus(ctx, b, before); err != nil {
			return reconcile.Result{}, err
		}
	}
	cut, ready := true, true
	for _, e := range b.Status.BackupSnapshotStatus.Elements {
		var vs snapv1.VolumeSnapshot
		if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: b.Namespace, Name: e.Name}, &vs); err != nil {
			if apierrors.IsNotFound(err) {
				return r.failSnapshot(ctx, b, c, fmt.Sprintf("VolumeSnapshot %s was deleted", e.Name))
			}
			return reconcile.Result{}, fmt.Errorf("reading VolumeSnapshot %s: %w", e.Name, err)
		}
		st := vs.Status
		switch {
		case st != nil && st.Error != nil && st.Error.Message != nil:
			return r.failSnapshot(ctx, b, c, fmt.Sprintf("VolumeSnapshot %s: %s", e.Name, *st.Error.Message))
		case st == nil || st.ReadyToUse == nil || !*st.ReadyToUse:
			ready = false
			if st == nil || st.CreationTime == nil {
				cut = false
			}
		}
	}
	if cut {
		// The volumes' content is in the snapshots: the instance may
		// run again while they are uploaded, if the driver does that.
		if err := r.setFence(ctx, c, b, false); err != nil {
			return reconcile.Result{}, err
		}
	}
	if !ready {
		return reconcile.Result{RequeueAfter: r.poll()}, nil
	}
	before := b.DeepCopy()
	b.Status.Phase, b.Status.Error = v1.BackupPhaseCompleted, ""
	b.Status.StoppedAt = &metav1.Time{Time: r.now().Truncate(time.Second)}
	if err := r.patchStatus(ctx, b, before); err != nil {
		return reconcile.Result{}, err
	}
	r.event(b, corev1.EventTypeNormal, "Completed", "volume snapshots of %s ready: %s", pod, snapshotNames(b))
	return reconcile.Result{}, r.releaseFence(ctx, b)
}

// releaseFence lifts the fence the Backup set, if its Cluster is still
// there, and then drops its finalizer.
func (r *BackupReconciler) releaseFence(ctx context.Context, b *v1.Backup) error {
	var c v1.Cluster
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: b.Namespace, Name: b.Spec.Cluster.Name}, &c)
	switch {
	case err == nil:
		if err := r.setFence(ctx, &c, b, false); err != nil {
			return err
		}
	case !apierrors.IsNotFound(err):
		return fmt.Errorf("reading cluster %s: %w", b.Spec.Cluster.Name, err)
	}
	if !controllerutil.ContainsFinalizer(b, unfenceFinalizer) {
		return nil
	}
	before := b.DeepCopy()
	controllerutil.RemoveFinalizer(b, unfenceFinalizer)
	if err := r.Client.Patch(ctx, b, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("dropping the finalizer of backup %s: %w", b.Name, err)
	}
	return nil
}

func snapshotNames(b *v1.Backup) string {
	var names []string
	if s := b.Status.BackupSnapshotStatus; s != nil {
		for _, e := range s.Elements {
			names = append(names, e.Name)
		}
	}
	out, _ := json.Marshal(names)
	return string(out)
}

// instanceDown reports whether pod's PostgreSQL is shut down and kept
// down by its instance manager (fenced), and if not, what it reports.
func (r *BackupReconciler) instanceDown(ctx context.Context, c *v1.Cluster, pod string) (bool, string, error) {
	tlsm, err := r.clientTLS(ctx, c)
	if err != nil {
		return false, err.Error(), nil
	}
	in, err := r.instance(ctx, c, pod, tlsm)
	if err != nil {
		return false, err.Error(), nil
	}
	st, err := r.Instances.Status(ctx, in, 0)
	if err != nil {
		return false, err.Error(), nil
	}
	if st.Fenced && !st.PostmasterRunning {
		return true, "", nil
	}
	return false, fmt.Sprintf("fenced %t, postgres running %t", st.Fenced, st.PostmasterRunning), nil
}

// createSnapshots creates a VolumeSnapshot of each of pod's volumes (those
// that exist already, from an earlier attempt of this Backup, are kept).
func (r *BackupReconciler) createSnapshots(ctx context.Context, b *v1.Backup, c *v1.Cluster, pod string) ([]v1.BackupSnapshotElementStatus, error) {
	cfg := c.Spec.Backup.VolumeSnapshot
	type vol struct {
		pvc, name, typ, tbs, class string
	}
	vols := []vol{{pvc: pod, name: b.Name, typ: v1.SnapshotTypePGData, class: cfg.ClassName}}
	if c.Spec.WalStorage != nil {
		vols = append(vols, vol{pvc: build.WalPVCName(pod), name: b.Name + "-wal", typ: v1.SnapshotTypePGWAL, class: firstNonEmpty(cfg.WalClassName, cfg.ClassName)})
	}
	for _, t := range c.Spec.Tablespaces {
		vols = append(vols, vol{
			pvc: build.TablespacePVCName(pod, t.Name), name: build.TablespacePVCName(b.Name, t.Name),
			typ: v1.SnapshotTypeTablespace, tbs: t.Name, class: firstNonEmpty(cfg.TablespaceClassName[t.Name], cfg.ClassName),
		})
	}
	var elems []v1.BackupSnapshotElementStatus
	for _, v := range vols {
		if msgs := validation.IsDNS1123Subdomain(v.name); len(msgs) > 0 {
			return nil, fmt.Errorf("VolumeSnapshot name %q (from the Backup's name): %v", v.name, msgs)
		}
		var pvc corev1.PersistentVolumeClaim
		if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: v.pvc}, &pvc); err != nil {
			return nil, fmt.Errorf("volume %s of instance %s: %w", v.pvc, pod, err)
		}
		vs := &snapv1.VolumeSnapshot{
			ObjectMeta: metav1.ObjectMeta{Namespace: c.Namespace, Name: v.name, Labels: map[string]string{}, Annotations: map[string]string{}},
			Spec: snapv1.VolumeSnapshotSpec{
				Source: snapv1.VolumeSnapshotSource{PersistentVolumeClaimName: &v.pvc},
			},
		}
		if v.class != "" {
			vs.Spec.VolumeSnapshotClassName = &v.class
		}
		// The user's first, so pgward's own keys (which validation keeps
		// out of theirs) are always what they say.
		for k, val := range cfg.Labels {
			vs.Labels[k] = val
		}
		for k, val := range cfg.Annotations {
			vs.Annotations[k] = val
		}
		vs.Labels[build.ClusterLabel] = c.Name
		vs.Labels[SnapshotBackupLabel] = b.Name
		vs.Labels[SnapshotInstanceLabel] = pod
		vs.Labels[SnapshotTypeLabel] = v.typ
		if v.tbs != "" {
			vs.Labels[SnapshotTablespaceLabel] = v.tbs
		}
		vs.Annotations[SnapshotPGVersionAnnotation] = "15"
		vs.Annotations[SnapshotOnlineAnnotation] = "false"
		switch cfg.SnapshotOwnerReference {
		case v1.SnapshotOwnerCluster:
			if err := controllerutil.SetOwnerReference(c, vs, r.Client.Scheme()); err != nil {
				return nil, err
			}
		case v1.SnapshotOwnerBackup:
			if err := controllerutil.SetOwnerReference(b, vs, r.Client.Scheme()); err != nil {
				return nil, err
			}
		}
		if err := r.Client.Create(ctx, vs); err != nil {
			if !apierrors.IsAlreadyExists(err) {
				return nil, fmt.Errorf("creating VolumeSnapshot %s of %s: %w", v.name, v.pvc, err)
			}
			var cur snapv1.VolumeSnapshot
			if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(vs), &cur); err != nil {
				return nil, err
			}
			if cur.Labels[SnapshotBackupLabel] != b.Name || cur.Spec.Source.PersistentVolumeClaimName == nil || *cur.Spec.Source.PersistentVolumeClaimName != v.pvc {
				return nil, fmt.Errorf("a VolumeSnapshot %s exists already and is not this backup's snapshot of %s", v.name, v.pvc)
			}
		}
		elems = append(elems, v1.BackupSnapshotElementStatus{Name: v.name, Type: v.typ, TablespaceName: v.tbs})
	}
	return elems, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// failSnapshot lifts the fence and fails the Backup.
func (r *BackupReconciler) failSnapshot(ctx context.Context, b *v1.Backup, c *v1.Cluster, why string) (reconcile.Result, error) {
	if err := r.setFence(ctx, c, b, false); err != nil {
		return reconcile.Result{}, err
	}
	r.event(b, corev1.EventTypeWarning, "Failed", "%s", why)
	res, err := r.fail(ctx, b, why)
	if err != nil {
		return res, err
	}
	return res, r.releaseFence(ctx, b)
}

// setFence adds (on) or removes the instance the Backup fenced to or from
// the Cluster's fencing annotation; nothing when the Backup fenced none.
func (r *BackupReconciler) setFence(ctx context.Context, c *v1.Cluster, b *v1.Backup, on bool) error {
	pod := b.Annotations[backupFenceAnnotation]
	if pod == "" {
		return nil
	}
	var cur v1.Cluster
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(c), &cur); err != nil {
		return fmt.Errorf("reading cluster %s: %w", c.Name, err)
	}
	names, err := cur.Fenced()
	if err != nil {
		return fmt.Errorf("metadata.annotations[%s] of cluster %s: %w", v1.FencedInstancesAnnotation, c.Name, err)
	}
	has := slices.Contains(names, pod)
	if has == on {
		return nil
	}
	if on {
		names = append(names, pod)
	} else {
		names = slices.DeleteFunc(names, func(n string) bool { return n == pod })
	}
	before := cur.DeepCopy()
	if cur.Annotations == nil {
		cur.Annotations = map[string]string{}
	}
	if len(names) == 0 {
		delete(cur.Annotations, v1.FencedInstancesAnnotation)
	} else {
		v, _ := json.Marshal(names)
		cur.Annotations[v1.FencedInstancesAnnotation] = string(v)
	}
	if err := r.Client.Patch(ctx, &cur, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("fencing %s for backup %s: %w", pod, b.Name, err)
	}
	return nil
}

func (r *BackupReconciler) event(b *v1.Backup, kind, reason, format string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(b, nil, kind, reason, "VolumeSnapshotBackup", format, args...)
	}
}

// snapshotClaims gives the first instance's new volumes, when the cluster
// is recovered from volume snapshots and was never bootstrapped, the
// snapshots as data sources: the data volume (claims[0]), the WAL volume
// and the tablespaces' (by their TablespaceLabel). Each snapshot must be
// of the namespace, exist and be ready to use; a claim is made at least
// as large as the snapshot's restoreSize. A volume that exists already is
// left alone, and once the cluster has had a primary, a lost volume is
// cloned like any replica's, never restored from the snapshots again.
func (r *ClusterReconciler) snapshotClaims(ctx context.Context, c *v1.Cluster, instance string, claims []*corev1.PersistentVolumeClaim) error {
	ds := c.Spec.SnapshotDataSource()
	if ds == nil || instance != build.InstanceNames(c)[0] || c.Status.CurrentPrimary != "" || c.Status.TargetPrimary != "" {
		return nil
	}
	p := "spec.bootstrap.recovery.volumeSnapshots"
	for _, pvc := range claims {
		var ref v1.TypedLocalObjectReference
		var field string
		switch {
		case pvc.Name == instance:
			ref, field = ds.Storage, p+".storage"
		case pvc.Labels[build.PVCRoleLabel] == build.PVCRoleWAL:
			if ds.WalStorage == nil {
				continue // an empty WAL volume: the instance moves pg_wal into it
			}
			ref, field = *ds.WalStorage, p+".walStorage"
		case pvc.Labels[build.TablespaceLabel] != "":
			tbs := pvc.Labels[build.TablespaceLabel]
			var ok bool
			if ref, ok = ds.TablespaceStorage[tbs]; !ok {
				return fmt.Errorf("%s.tablespaceStorage: no snapshot for tablespace %q", p, tbs)
			}
			field = p + ".tablespaceStorage[" + tbs + "]"
		default:
			continue
		}
		var cur corev1.PersistentVolumeClaim
		if err := r.Client.Get(ctx, client.ObjectKeyFromObject(pvc), &cur); err == nil {
			continue
		} else if !apierrors.IsNotFound(err) {
			return fmt.Errorf("reading volume %s: %w", pvc.Name, err)
		}
		size, err := r.readySnapshot(ctx, c.Namespace, ref.Name)
		if err != nil {
			return fmt.Errorf("%s: %w", field, err)
		}
		if size != nil && size.Cmp(pvc.Spec.Resources.Requests[corev1.ResourceStorage]) > 0 {
			pvc.Spec.Resources.Requests[corev1.ResourceStorage] = *size
		}
		group := v1.VolumeSnapshotGroup
		pvc.Spec.DataSource = &corev1.TypedLocalObjectReference{APIGroup: &group, Kind: v1.VolumeSnapshotKind, Name: ref.Name}
	}
	return nil
}

// readySnapshot checks that VolumeSnapshot name of namespace ns exists and
// is ready to use, and returns its restoreSize (nil if unknown). Only the
// Cluster's own namespace is read: a claim cannot take a snapshot of
// another namespace's as its data source anyway.
func (r *ClusterReconciler) readySnapshot(ctx context.Context, ns, name string) (*resource.Quantity, error) {
	var vs snapv1.VolumeSnapshot
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &vs); err != nil {
		return nil, describeGetError(v1.VolumeSnapshotKind, name, err)
	}
	st := vs.Status
	switch {
	case st != nil && st.Error != nil && st.Error.Message != nil:
		return nil, fmt.Errorf("the VolumeSnapshot %q failed: %s", name, *st.Error.Message)
	case st == nil || st.ReadyToUse == nil || !*st.ReadyToUse:
		return nil, fmt.Errorf("the VolumeSnapshot %q is not ready to use yet", name)
	}
	return st.RestoreSize, nil
}
