//go:build e2e_kube

package kube

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
)

// TestVolumeSnapshotBackupAndRecovery: on the CSI storage of
// PGWARD_KUBE_CSI=1, a Cluster of two instances with its data and WAL on
// csi-hostpath-sc takes a Backup with method volumeSnapshot (cold, from its
// standby, which is fenced, snapshotted and streams again), and a new
// Cluster recovered from the two VolumeSnapshots has the rows, runs on a
// new timeline with credentials of its own (its app user reads the rows
// over verified TLS with its own password, not the source's), and is
// healthy with its replica cloned.
func TestVolumeSnapshotBackupAndRecovery(t *testing.T) {
	needCSI(t)
	ns := newNamespace(t, "volsnap")
	ctx := context.Background()
	start := time.Now()
	src := loadSample(t, "cluster-example.yaml")
	src.Name = "snapsrc"
	src.Spec.Instances = 2
	src.Spec.StorageConfiguration.StorageClass = new(csiStorageClass)
	src.Spec.WalStorage = &v1.StorageConfiguration{Size: "1Gi", StorageClass: new(csiStorageClass)}
	src.Spec.Backup = &v1.BackupConfiguration{VolumeSnapshot: &v1.VolumeSnapshotConfiguration{
		ClassName: csiSnapshotClass, Labels: map[string]string{"purpose": "e2e"},
	}}
	createCluster(t, ns, src)
	src = waitStreaming(t, ns, src.Name)
	primary := src.Status.CurrentPrimary
	psqlLocal(t, ns, primary, "app", "CREATE TABLE kept(i int); ALTER TABLE kept OWNER TO app; INSERT INTO kept SELECT generate_series(1, 1000)")
	standby := ""
	for _, n := range []string{"snapsrc-1", "snapsrc-2"} {
		if n != primary {
			standby = n
		}
	}
	eventually(t, time.Minute, "the standby replayed the rows", func() error {
		if got := psqlLocal(t, ns, standby, "app", "SELECT count(*) FROM kept"); got != "1000" {
			return fmt.Errorf("%s rows", got)
		}
		return nil
	})
	t.Logf("source Cluster streaming with rows in %s", time.Since(start).Round(time.Second))

	start = time.Now()
	if err := cl.Create(ctx, &v1.Backup{
		ObjectMeta: objectMeta(ns, "snap1"),
		Spec:       v1.BackupSpec{Cluster: v1.LocalObjectReference{Name: src.Name}, Method: v1.BackupMethodVolumeSnapshot},
	}); err != nil {
		t.Fatal(err)
	}
	var b v1.Backup
	eventually(t, 6*time.Minute, "the volumeSnapshot Backup completed", func() error {
		if err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: "snap1"}, &b); err != nil {
			return err
		}
		if b.Status.Phase == v1.BackupPhaseFailed {
			t.Fatalf("backup failed: %s", b.Status.Error)
		}
		if b.Status.Phase != v1.BackupPhaseCompleted {
			return fmt.Errorf("phase %q: %s", b.Status.Phase, b.Status.Error)
		}
		return nil
	})
	t.Logf("cold volume snapshot backup of %s completed in %s", b.Status.InstanceID.PodName, time.Since(start).Round(time.Second))
	if b.Status.InstanceID == nil || b.Status.InstanceID.PodName != standby {
		t.Errorf("backup taken on %v, want the standby %s", b.Status.InstanceID, standby)
	}
	if s := b.Status.BackupSnapshotStatus; s == nil || len(s.Elements) != 2 {
		t.Fatalf("snapshots %+v, want data and WAL", s)
	}
	if got := mustKubectl(t, "-n", ns, "get", "volumesnapshot", "snap1-wal", "-o", "jsonpath={.status.readyToUse} {.metadata.labels.purpose}"); got != "true e2e" {
		t.Errorf("snap1-wal: readyToUse and label %q", got)
	}
	// The standby is unfenced and streams again.
	src = waitStreaming(t, ns, src.Name)
	if f := src.Annotations[v1.FencedInstancesAnnotation]; f != "" {
		t.Errorf("still fenced: %s", f)
	}

	start = time.Now()
	group := v1.VolumeSnapshotGroup
	dst := loadSample(t, "cluster-example.yaml")
	dst.Name = "snapdst"
	dst.Spec.Instances = 2
	dst.Spec.StorageConfiguration.StorageClass = new(csiStorageClass)
	dst.Spec.WalStorage = &v1.StorageConfiguration{Size: "1Gi", StorageClass: new(csiStorageClass)}
	dst.Spec.Bootstrap = &v1.BootstrapConfiguration{Recovery: &v1.BootstrapRecovery{VolumeSnapshots: &v1.DataSource{
		Storage:    v1.TypedLocalObjectReference{APIGroup: &group, Kind: v1.VolumeSnapshotKind, Name: "snap1"},
		WalStorage: &v1.TypedLocalObjectReference{APIGroup: &group, Kind: v1.VolumeSnapshotKind, Name: "snap1-wal"},
	}}}
	createCluster(t, ns, dst)
	dst = waitStreaming(t, ns, dst.Name)
	t.Logf("Cluster recovered from the snapshots, healthy and streaming in %s", time.Since(start).Round(time.Second))
	p := dst.Status.CurrentPrimary
	if got := psqlLocal(t, ns, p, "app", "SELECT count(*) FROM kept"); got != "1000" {
		t.Errorf("recovered rows: %s, want 1000", got)
	}
	if got := psqlLocal(t, ns, p, "postgres", "SELECT timeline_id > 1 FROM pg_control_checkpoint()"); got != "t" {
		t.Errorf("on a new timeline: %s", got)
	}
	var srcApp, dstApp corev1.Secret
	for name, s := range map[string]*corev1.Secret{"snapsrc-app": &srcApp, "snapdst-app": &dstApp} {
		if err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, s); err != nil {
			t.Fatal(err)
		}
	}
	if string(srcApp.Data["password"]) == string(dstApp.Data["password"]) {
		t.Error("the recovered Cluster has the source's app password")
	}
	out, ok := runPod(t, clientPod(ns, "reader", nil, pgClientScript("snapdst-app",
		`psql -h snapdst-rw -XAtc 'SELECT count(*) FROM kept'`), "snapdst-app"), 2*time.Minute)
	if !ok || strings.TrimSpace(out) != "1000" {
		t.Errorf("the recovered Cluster's app user over TLS: %v %q", ok, out)
	}
	if got := psqlLocal(t, ns, p, "postgres", "SELECT count(*) FROM pg_stat_replication"); got != "1" {
		t.Errorf("replicas streaming from the recovered primary: %s", got)
	}
}
