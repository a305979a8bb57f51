package kube_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/kube"
)

// fakeSnapInstances answers for a cluster's instance managers: a primary,
// and replicas streaming from it; an instance in fenced[] reports itself
// fenced and stopped, as an instance manager does once it has shut
// PostgreSQL down for the fencing annotation.
type fakeSnapInstances struct {
	mu      sync.Mutex
	primary string
	fenced  map[string]bool
}

func (f *fakeSnapInstances) Status(_ context.Context, in kube.Instance, _ uint64) (*instanceapi.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := &instanceapi.Status{Name: in.Name, Role: instanceapi.RoleReplica, Ready: true, PostmasterRunning: true, StreamingFrom: f.primary}
	if in.Name == f.primary {
		st.Role, st.StreamingFrom = instanceapi.RolePrimary, ""
	}
	if f.fenced[in.Name] {
		st.Fenced, st.PostmasterRunning, st.Ready, st.Role = true, false, false, instanceapi.RoleUnknown
	}
	return st, nil
}

func (f *fakeSnapInstances) StartBackup(context.Context, kube.Instance) (*instanceapi.BackupRun, error) {
	panic("a volume snapshot backup never asks for a pgBackRest backup")
}

func (f *fakeSnapInstances) Backups(context.Context, kube.Instance) (*instanceapi.BackupList, error) {
	panic("a volume snapshot backup never lists the object store")
}

func (f *fakeSnapInstances) stop(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fenced[name] = true
}

// snapshotCluster is a two-instance Cluster with a WAL volume and
// spec.backup.volumeSnapshot only (no object store), reconciled once, its
// pods given addresses and its first instance the primary, as a kubelet
// and the failover loop would.
func snapshotCluster(t *testing.T, ns string) *v1.Cluster {
	t.Helper()
	ctx := ctxFor(t)
	c := sampleCluster(t, ns)
	c.Spec.Instances = 2
	c.Spec.WalStorage = &v1.StorageConfiguration{Size: "1Gi"}
	c.Spec.Backup = &v1.BackupConfiguration{VolumeSnapshot: &v1.VolumeSnapshotConfiguration{
		ClassName: "csi-snapclass", WalClassName: "csi-walclass",
		Labels: map[string]string{"team": "db"}, Annotations: map[string]string{"note": "nightly"},
		SnapshotOwnerReference: v1.SnapshotOwnerBackup,
	}}
	if _, err := (kube.ClusterWebhook{}).ValidateCreate(ctx, c); err != nil {
		t.Fatalf("webhook: %v", err)
	}
	createCluster(t, c)
	reconcileOnce(t, newReconciler(&kube.MTLSInstances{Timeout: time.Second}, nil), c)
	for i, name := range []string{c.Name + "-1", c.Name + "-2"} {
		var pod corev1.Pod
		if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &pod); err != nil {
			t.Fatal(err)
		}
		pod.Status.PodIP = []string{"10.244.0.7", "10.244.0.8"}[i]
		if err := admin.Status().Update(ctx, &pod); err != nil {
			t.Fatal(err)
		}
	}
	if err := admin.Get(ctx, client.ObjectKeyFromObject(c), c); err != nil {
		t.Fatal(err)
	}
	c.Status.CurrentPrimary = c.Name + "-1"
	if err := admin.Status().Update(ctx, c); err != nil {
		t.Fatal(err)
	}
	return c
}

// markSnapshot does what a CSI snapshotter does once the snapshot is cut
// and uploaded: readyToUse, a creation time and a restore size, or an
// error. It is this test's only stand-in: envtest runs no snapshot
// controller.
func markSnapshot(t *testing.T, ns, name, size, failure string) {
	t.Helper()
	ctx := ctxFor(t)
	var vs snapv1.VolumeSnapshot
	if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &vs); err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	vs.Status = &snapv1.VolumeSnapshotStatus{CreationTime: &now}
	if failure != "" {
		vs.Status = &snapv1.VolumeSnapshotStatus{ReadyToUse: new(false), Error: &snapv1.VolumeSnapshotError{Message: &failure}}
	} else {
		q := resource.MustParse(size)
		vs.Status.ReadyToUse, vs.Status.RestoreSize = new(true), &q
	}
	if err := admin.Status().Update(ctx, &vs); err != nil {
		t.Fatal(err)
	}
}

func fencedOf(t *testing.T, c *v1.Cluster) string {
	t.Helper()
	var cur v1.Cluster
	if err := admin.Get(ctxFor(t), client.ObjectKeyFromObject(c), &cur); err != nil {
		t.Fatal(err)
	}
	return cur.Annotations[v1.FencedInstancesAnnotation]
}

// TestVolumeSnapshotBackup: a Backup with method volumeSnapshot fences a
// streaming standby (the default target), waits until its instance
// manager reports PostgreSQL stopped, snapshots its data and WAL volumes
// with the configured classes, labels, annotations and owner, lifts the
// fence once the snapshots are cut and completes once they are ready,
// listing them in its status. With target primary it snapshots the
// primary; a snapshot that fails fails the Backup with the driver's
// reason and lifts the fence. All with the operator's own RBAC.
func TestVolumeSnapshotBackup(t *testing.T) {
	ns := newNamespace(t, false)
	ctx := ctxFor(t)
	c := snapshotCluster(t, ns)
	fake := &fakeSnapInstances{primary: c.Name + "-1", fenced: map[string]bool{}}
	r := &kube.BackupReconciler{Client: operator, APIReader: operator, Instances: fake}
	do := func(name string) *v1.Backup {
		t.Helper()
		if _, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKey{Namespace: ns, Name: name}}); err != nil {
			t.Fatalf("reconcile %s: %v", name, err)
		}
		return getBackup(t, ns, name)
	}
	b := &v1.Backup{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "snap1"},
		Spec:       v1.BackupSpec{Cluster: v1.LocalObjectReference{Name: c.Name}, Method: v1.BackupMethodVolumeSnapshot},
	}
	if errs := kube.ValidateBackup(b); len(errs) > 0 {
		t.Fatalf("ValidateBackup: %v", errs)
	}
	if err := admin.Create(ctx, b); err != nil {
		t.Fatal(err)
	}
	standby := c.Name + "-2"
	got := do("snap1")
	if got.Status.Phase != v1.BackupPhaseRunning || got.Status.InstanceID == nil || got.Status.InstanceID.PodName != standby ||
		got.Status.Method != v1.BackupMethodVolumeSnapshot || got.Status.Online == nil || *got.Status.Online {
		t.Fatalf("after start: %+v, want running on %s, method volumeSnapshot, offline", got.Status, standby)
	}
	if f := fencedOf(t, c); f != `["`+standby+`"]` {
		t.Fatalf("fencing annotation %q, want the standby only", f)
	}
	// Still running: nothing is snapshotted before the instance is down.
	got = do("snap1")
	if got.Status.BackupSnapshotStatus != nil {
		t.Fatalf("snapshots taken while PostgreSQL runs: %+v", got.Status.BackupSnapshotStatus)
	}
	fake.stop(standby)
	got = do("snap1")
	if s := got.Status.BackupSnapshotStatus; s == nil || len(s.Elements) != 2 ||
		s.Elements[0] != (v1.BackupSnapshotElementStatus{Name: "snap1", Type: v1.SnapshotTypePGData}) ||
		s.Elements[1] != (v1.BackupSnapshotElementStatus{Name: "snap1-wal", Type: v1.SnapshotTypePGWAL}) {
		t.Fatalf("snapshot status %+v, want snap1 (PG_DATA) and snap1-wal (PG_WAL)", s)
	}
	for name, want := range map[string][2]string{"snap1": {standby, "csi-snapclass"}, "snap1-wal": {standby + "-wal", "csi-walclass"}} {
		var vs snapv1.VolumeSnapshot
		if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &vs); err != nil {
			t.Fatal(err)
		}
		if p := vs.Spec.Source.PersistentVolumeClaimName; p == nil || *p != want[0] {
			t.Errorf("%s: source %v, want claim %s", name, p, want[0])
		}
		if cl := vs.Spec.VolumeSnapshotClassName; cl == nil || *cl != want[1] {
			t.Errorf("%s: class %v, want %s", name, cl, want[1])
		}
		if vs.Labels["team"] != "db" || vs.Annotations["note"] != "nightly" || vs.Labels[kube.SnapshotBackupLabel] != "snap1" ||
			vs.Labels[kube.SnapshotInstanceLabel] != standby || vs.Annotations[kube.SnapshotOnlineAnnotation] != "false" {
			t.Errorf("%s: labels %v annotations %v", name, vs.Labels, vs.Annotations)
		}
		if len(vs.OwnerReferences) != 1 || vs.OwnerReferences[0].Kind != v1.BackupKind || vs.OwnerReferences[0].Name != "snap1" {
			t.Errorf("%s: owners %v, want the Backup (snapshotOwnerReference: backup)", name, vs.OwnerReferences)
		}
	}
	// Not cut yet: the instance stays fenced.
	if got = do("snap1"); got.Status.Phase != v1.BackupPhaseRunning || fencedOf(t, c) == "" {
		t.Fatalf("before the snapshots are cut: phase %s, fence %q", got.Status.Phase, fencedOf(t, c))
	}
	markSnapshot(t, ns, "snap1", "1Gi", "")
	markSnapshot(t, ns, "snap1-wal", "1Gi", "")
	got = do("snap1")
	if got.Status.Phase != v1.BackupPhaseCompleted || got.Status.StoppedAt == nil || got.Status.Error != "" {
		t.Fatalf("after the snapshots are ready: %+v", got.Status)
	}
	if f := fencedOf(t, c); f != "" {
		t.Fatalf("the standby is still fenced (%q) after the backup", f)
	}

	// target: primary, and a snapshot the driver fails.
	if err := admin.Create(ctx, &v1.Backup{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "snap2"},
		Spec:       v1.BackupSpec{Cluster: v1.LocalObjectReference{Name: c.Name}, Method: v1.BackupMethodVolumeSnapshot, Target: v1.BackupTargetPrimary},
	}); err != nil {
		t.Fatal(err)
	}
	if got = do("snap2"); got.Status.InstanceID == nil || got.Status.InstanceID.PodName != c.Name+"-1" {
		t.Fatalf("target primary: %+v", got.Status)
	}
	fake.stop(c.Name + "-1")
	if got = do("snap2"); got.Status.BackupSnapshotStatus == nil {
		t.Fatalf("no snapshots: %+v", got.Status)
	}
	markSnapshot(t, ns, "snap2", "", "driver says: out of quota")
	got = do("snap2")
	if got.Status.Phase != v1.BackupPhaseFailed || !strings.Contains(got.Status.Error, "out of quota") {
		t.Fatalf("failed snapshot: %+v, want failed with the driver's reason", got.Status)
	}
	if f := fencedOf(t, c); f != "" {
		t.Fatalf("the primary is still fenced (%q) after the failed backup", f)
	}
	for _, name := range []string{"snap1", "snap2"} {
		if f := getBackup(t, ns, name).Finalizers; len(f) != 0 {
			t.Errorf("%s ended with finalizers %v", name, f)
		}
	}

	// A Backup deleted while its instance is fenced lifts the fence.
	if err := admin.Create(ctx, &v1.Backup{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "snap3"},
		Spec:       v1.BackupSpec{Cluster: v1.LocalObjectReference{Name: c.Name}, Method: v1.BackupMethodVolumeSnapshot, Target: v1.BackupTargetPrimary},
	}); err != nil {
		t.Fatal(err)
	}
	delete(fake.fenced, c.Name+"-1")
	do("snap3")
	if f := fencedOf(t, c); f != `["`+c.Name+`-1"]` {
		t.Fatalf("snap3 did not fence the primary: %q", f)
	}
	if err := admin.Delete(ctx, &v1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "snap3"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKey{Namespace: ns, Name: "snap3"}}); err != nil {
		t.Fatal(err)
	}
	if f := fencedOf(t, c); f != "" {
		t.Fatalf("a deleted Backup left its instance fenced: %q", f)
	}
	var gone v1.Backup
	if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: "snap3"}, &gone); !apierrors.IsNotFound(err) {
		t.Fatalf("the deleted Backup is still there (%v): finalizers %v", err, gone.Finalizers)
	}
}

// TestVolumeSnapshotBackupRefusals: the admission checks of Backups and
// ScheduledBackups for the method's options, and a Backup of a Cluster
// without spec.backup.volumeSnapshot fails saying so.
func TestVolumeSnapshotBackupRefusals(t *testing.T) {
	on := true
	for _, tc := range []struct {
		name string
		spec v1.BackupSpec
		want string
	}{
		{"online", v1.BackupSpec{Method: v1.BackupMethodVolumeSnapshot, Online: &on}, "spec.online"},
		{"target on an object store backup", v1.BackupSpec{Target: v1.BackupTargetPrimary}, "spec.target"},
		{"online on an object store backup", v1.BackupSpec{Online: new(false)}, "spec.online"},
		{"unknown target", v1.BackupSpec{Method: v1.BackupMethodVolumeSnapshot, Target: "replica"}, "spec.target"},
		{"plugin", v1.BackupSpec{Method: "plugin"}, "spec.method"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.spec.Cluster.Name = "c"
			errs := kube.ValidateBackup(&v1.Backup{Spec: tc.spec})
			if len(errs) == 0 || !strings.Contains(errs.ToAggregate().Error(), tc.want) {
				t.Fatalf("got %v, want an error naming %s", errs, tc.want)
			}
			sb := &v1.ScheduledBackup{Spec: v1.ScheduledBackupSpec{Schedule: "0 0 0 * * *", Cluster: tc.spec.Cluster, Method: tc.spec.Method, Target: tc.spec.Target, Online: tc.spec.Online}}
			if errs := kube.ValidateScheduledBackup(sb); len(errs) == 0 {
				t.Fatal("the ScheduledBackup is accepted")
			}
		})
	}
	ns := newNamespace(t, false)
	ctx := ctxFor(t)
	c := readyBackupCluster(t, ns)
	r := &kube.BackupReconciler{Client: operator, APIReader: operator, Instances: &fakeSnapInstances{fenced: map[string]bool{}}}
	if err := admin.Create(ctx, &v1.Backup{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nosnap"},
		Spec:       v1.BackupSpec{Cluster: v1.LocalObjectReference{Name: c.Name}, Method: v1.BackupMethodVolumeSnapshot},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKey{Namespace: ns, Name: "nosnap"}}); err != nil {
		t.Fatal(err)
	}
	if b := getBackup(t, ns, "nosnap"); b.Status.Phase != v1.BackupPhaseFailed || !strings.Contains(b.Status.Error, "spec.backup.volumeSnapshot") {
		t.Fatalf("%+v, want failed naming spec.backup.volumeSnapshot", b.Status)
	}
}

// TestRecoveryFromVolumeSnapshots: a Cluster with
// bootstrap.recovery.volumeSnapshots waits, with the reason in its Ready
// condition, while a snapshot is missing or not ready; then its first
// instance's data and WAL volumes are created from the snapshots (at
// least their restore size), the other instances' volumes empty (they
// are cloned), and the Cluster gets its own credentials. Snapshots of
// another kind or group are refused at admission.
func TestRecoveryFromVolumeSnapshots(t *testing.T) {
	ns := newNamespace(t, true)
	ctx := ctxFor(t)
	group := v1.VolumeSnapshotGroup
	c := sampleCluster(t, ns)
	c.Name = "restored"
	c.Spec.Instances = 2
	c.Spec.WalStorage = &v1.StorageConfiguration{Size: "1Gi"}
	c.Spec.Bootstrap = &v1.BootstrapConfiguration{Recovery: &v1.BootstrapRecovery{VolumeSnapshots: &v1.DataSource{
		Storage:    v1.TypedLocalObjectReference{APIGroup: &group, Kind: v1.VolumeSnapshotKind, Name: "origin-data"},
		WalStorage: &v1.TypedLocalObjectReference{APIGroup: &group, Kind: v1.VolumeSnapshotKind, Name: "origin-wal"},
	}}}
	for _, bad := range []func(*v1.Cluster){
		func(c *v1.Cluster) { c.Spec.Bootstrap.Recovery.VolumeSnapshots.Storage.Kind = "PersistentVolumeClaim" },
		func(c *v1.Cluster) { c.Spec.Bootstrap.Recovery.VolumeSnapshots.Storage.APIGroup = nil },
		func(c *v1.Cluster) { c.Spec.Bootstrap.Recovery.VolumeSnapshots.Storage.Name = "../x" },
	} {
		b := c.DeepCopy()
		bad(b)
		if _, err := (kube.ClusterWebhook{}).ValidateCreate(ctx, b); err == nil || !strings.Contains(err.Error(), "spec.bootstrap.recovery.volumeSnapshots.storage") {
			t.Errorf("webhook: %v, want a refusal naming volumeSnapshots.storage", err)
		}
	}
	if _, err := (kube.ClusterWebhook{}).ValidateCreate(ctx, c); err != nil {
		t.Fatalf("webhook: %v", err)
	}
	createCluster(t, c)
	r := newReconciler(&kube.MTLSInstances{Timeout: time.Second}, nil)
	condition := func(want string) {
		t.Helper()
		if _, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(c)}); err == nil {
			t.Fatalf("reconciled without %s", want)
		}
		var cur v1.Cluster
		if err := admin.Get(ctx, client.ObjectKeyFromObject(c), &cur); err != nil {
			t.Fatal(err)
		}
		cond := meta.FindStatusCondition(cur.Status.Conditions, kube.ConditionReady)
		if cond == nil || cond.Status != metav1.ConditionFalse || !strings.Contains(cond.Message, want) {
			t.Fatalf("Ready condition %+v, want it to say %q", cond, want)
		}
		var pvc corev1.PersistentVolumeClaim
		if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: "restored-1"}, &pvc); err == nil {
			t.Fatalf("the first instance's volume was created (data source %v) before its snapshot was usable", pvc.Spec.DataSource)
		}
	}
	condition(`spec.bootstrap.recovery.volumeSnapshots.storage: no VolumeSnapshot "origin-data"`)
	for _, name := range []string{"origin-data", "origin-wal"} {
		pvc := "origin-1"
		if err := admin.Create(ctx, &snapv1.VolumeSnapshot{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec:       snapv1.VolumeSnapshotSpec{Source: snapv1.VolumeSnapshotSource{PersistentVolumeClaimName: &pvc}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	condition(`"origin-data" is not ready to use yet`)
	markSnapshot(t, ns, "origin-data", "3Gi", "")
	condition(`spec.bootstrap.recovery.volumeSnapshots.walStorage: the VolumeSnapshot "origin-wal" is not ready to use yet`)
	markSnapshot(t, ns, "origin-wal", "512Mi", "")
	reconcileOnce(t, r, c)

	for name, want := range map[string][2]string{
		"restored-1": {"origin-data", "3Gi"}, "restored-1-wal": {"origin-wal", "1Gi"},
		"restored-2": {"", "1Gi"}, "restored-2-wal": {"", "1Gi"},
	} {
		var pvc corev1.PersistentVolumeClaim
		if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &pvc); err != nil {
			t.Fatal(err)
		}
		ds := pvc.Spec.DataSource
		switch {
		case want[0] == "" && ds != nil:
			t.Errorf("%s: data source %v, want an empty volume", name, ds)
		case want[0] != "" && (ds == nil || ds.Name != want[0] || ds.Kind != v1.VolumeSnapshotKind || ds.APIGroup == nil || *ds.APIGroup != group):
			t.Errorf("%s: data source %v, want VolumeSnapshot %s", name, ds, want[0])
		}
		if q := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; q.Cmp(resource.MustParse(want[1])) != 0 {
			t.Errorf("%s: size %s, want %s", name, q.String(), want[1])
		}
	}
	// Its own credentials and CA, generated as for any new Cluster.
	for _, s := range []string{"restored-app", "restored-ca"} {
		var sec corev1.Secret
		if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: s}, &sec); err != nil {
			t.Errorf("the recovered cluster's own %s: %v", s, err)
		}
	}
}

// TestScheduledVolumeSnapshotBackup: a ScheduledBackup of method
// volumeSnapshot creates Backups with its method and target.
func TestScheduledVolumeSnapshotBackup(t *testing.T) {
	ns := newNamespace(t, false)
	ctx := ctxFor(t)
	c := sampleCluster(t, ns)
	createCluster(t, c)
	now := time.Date(2026, 12, 6, 12, 0, 5, 0, time.UTC)
	r := &kube.ScheduledBackupReconciler{Client: operator, Now: func() time.Time { return now }}
	sb := &v1.ScheduledBackup{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nightly"},
		Spec: v1.ScheduledBackupSpec{
			Schedule: "0 0 0 * * *", Immediate: new(true), Cluster: v1.LocalObjectReference{Name: c.Name},
			Method: v1.BackupMethodVolumeSnapshot, Target: v1.BackupTargetPrimary,
		},
	}
	if errs := kube.ValidateScheduledBackup(sb); len(errs) > 0 {
		t.Fatal(errs)
	}
	if err := admin.Create(ctx, sb); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(sb)}); err != nil {
		t.Fatal(err)
	}
	var l v1.BackupList
	if err := admin.List(ctx, &l, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(l.Items) != 1 || l.Items[0].Spec.Method != v1.BackupMethodVolumeSnapshot || l.Items[0].Spec.Target != v1.BackupTargetPrimary {
		t.Fatalf("backups %+v, want one volumeSnapshot Backup with target primary", l.Items)
	}
}
