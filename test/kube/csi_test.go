//go:build e2e_kube

package kube

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube/build"
)

// The CSI storage of PGWARD_KUBE_CSI=1 (hack/kube-csi.sh), by the names
// CloudNativePG's samples use.
const (
	csiStorageClass  = "csi-hostpath-sc"
	csiSnapshotClass = "csi-hostpath-snapclass"
	csiDriverName    = "hostpath.csi.pgward.io"
)

// needCSI skips a test when the cluster was started without CSI storage
// (the smoke run); `make e2e` always starts it.
func needCSI(t *testing.T) {
	t.Helper()
	err := cl.Get(context.Background(), client.ObjectKey{Name: csiStorageClass}, &storagev1.StorageClass{})
	if apierrors.IsNotFound(err) {
		t.Skipf("no StorageClass %s: start the cluster with PGWARD_KUBE_CSI=1 hack/kube-up.sh (make e2e does)", csiStorageClass)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestCSISnapshots: the one-node cluster's CSI storage works as pgward's
// volume-snapshot backups need it. A claim of csi-hostpath-sc is bound and
// written by a pod running as uid 26 (the volume's root given to fsGroup 26,
// as for PostgreSQL's pods); a VolumeSnapshot of it becomes readyToUse; a
// claim restored from it holds the data with owner and mode kept (0700
// directory, 0600 file, uid 26); and a pgward Cluster of two instances with
// its data and WAL volumes on csi-hostpath-sc becomes healthy and streams.
func TestCSISnapshots(t *testing.T) {
	needCSI(t)
	ns := newNamespace(t, "csi")
	ctx := context.Background()

	start := time.Now()
	createClaim(t, ns, "data", nil)
	out, ok := runPod(t, volumePod(ns, "writer", "data", `set -e
mkdir -m 0700 /data/pgdata
printf 'written by uid %s\n' "$(id -u)" > /data/pgdata/file
chmod 0600 /data/pgdata/file
stat -c '%a %u %g %n' /data /data/pgdata /data/pgdata/file`), 2*time.Minute)
	if !ok {
		t.Fatalf("writer pod failed:\n%s", out)
	}
	t.Logf("claim bound and written by uid 26 in %s:\n%s", time.Since(start).Round(100*time.Millisecond), out)
	var pvc corev1.PersistentVolumeClaim
	if err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: "data"}, &pvc); err != nil {
		t.Fatal(err)
	}
	var pv corev1.PersistentVolume
	if err := cl.Get(ctx, client.ObjectKey{Name: pvc.Spec.VolumeName}, &pv); err != nil {
		t.Fatal(err)
	}
	if pv.Spec.CSI == nil || pv.Spec.CSI.Driver != csiDriverName {
		t.Fatalf("PV %s is not a volume of %s: %+v", pv.Name, csiDriverName, pv.Spec.PersistentVolumeSource)
	}

	start = time.Now()
	mustKubectlIn(t, fmt.Sprintf(`apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata: {name: snap, namespace: %s}
spec:
  volumeSnapshotClassName: %s
  source: {persistentVolumeClaimName: data}
`, ns, csiSnapshotClass), "apply", "-f", "-")
	eventually(t, 2*time.Minute, "VolumeSnapshot readyToUse", func() error {
		got, err := kubectl("-n", ns, "get", "volumesnapshot", "snap", "-o",
			"jsonpath={.status.readyToUse} {.status.restoreSize} {.status.error.message}")
		if err != nil {
			return fmt.Errorf("%w: %s", err, got)
		}
		if !strings.HasPrefix(got, "true ") {
			return fmt.Errorf("readyToUse, restoreSize, error: %q", got)
		}
		return nil
	})
	t.Logf("snapshot ready in %s", time.Since(start).Round(100*time.Millisecond))

	start = time.Now()
	createClaim(t, ns, "restored", &corev1.TypedLocalObjectReference{
		APIGroup: new("snapshot.storage.k8s.io"), Kind: "VolumeSnapshot", Name: "snap",
	})
	out, ok = runPod(t, volumePod(ns, "reader", "restored", `set -e
stat -c '%a %u %g %n' /data/pgdata /data/pgdata/file
cat /data/pgdata/file`), 2*time.Minute)
	if !ok {
		t.Fatalf("reader pod failed:\n%s", out)
	}
	t.Logf("restored claim bound and read in %s:\n%s", time.Since(start).Round(100*time.Millisecond), out)
	// The directory inherits the volume root's setgid bit (fsGroup), which
	// says nothing of who may read it: 700 or 2700.
	for _, want := range []string{"700 26 26 /data/pgdata\n", "600 26 26 /data/pgdata/file\n", "written by uid 26\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("restored volume: want a line %q in:\n%s", strings.TrimSpace(want), out)
		}
	}

	start = time.Now()
	c := loadSample(t, "cluster-example.yaml")
	c.Name = "csi"
	c.Spec.Instances = 2
	c.Spec.StorageConfiguration.StorageClass = new(csiStorageClass)
	c.Spec.WalStorage = &v1.StorageConfiguration{Size: "1Gi", StorageClass: new(csiStorageClass)}
	createCluster(t, ns, c)
	c = waitStreaming(t, ns, c.Name)
	t.Logf("Cluster of 2 instances on %s healthy and streaming in %s", csiStorageClass, time.Since(start).Round(100*time.Millisecond))
	var claims corev1.PersistentVolumeClaimList
	if err := cl.List(ctx, &claims, client.InNamespace(ns), client.MatchingLabels{build.ClusterLabel: c.Name}); err != nil {
		t.Fatal(err)
	}
	if len(claims.Items) != 4 {
		t.Errorf("%d claims for the Cluster, want 4 (data and WAL of 2 instances)", len(claims.Items))
	}
	for _, p := range claims.Items {
		if p.Spec.StorageClassName == nil || *p.Spec.StorageClassName != csiStorageClass || p.Status.Phase != corev1.ClaimBound {
			t.Errorf("claim %s: class %v, phase %s; want %s, Bound", p.Name, p.Spec.StorageClassName, p.Status.Phase, csiStorageClass)
		}
	}
	if got := psqlLocal(t, ns, c.Status.CurrentPrimary, "postgres", "SELECT count(*) FROM pg_stat_replication"); got != "1" {
		t.Errorf("replicas streaming from %s: %s", c.Status.CurrentPrimary, got)
	}
}

// createClaim makes a 1Gi claim of the CSI class, restored from source if
// not nil.
func createClaim(t *testing.T, ns, name string, source *corev1.TypedLocalObjectReference) {
	t.Helper()
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: objectMeta(ns, name),
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: new(csiStorageClass),
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
			DataSource:       source,
		},
	}
	if err := cl.Create(context.Background(), pvc); err != nil {
		t.Fatalf("claim %s: %v", name, err)
	}
}

// volumePod is a client pod (uid 26, fsGroup 26, restricted) with claim
// mounted on /data, its fsGroup applied as on pgward's instance pods
// (OnRootMismatch: a restored volume's root already has it, so its files
// keep their modes).
func volumePod(ns, name, claim, script string) *corev1.Pod {
	p := clientPod(ns, name, nil, script)
	p.Spec.SecurityContext.FSGroupChangePolicy = new(corev1.FSGroupChangeOnRootMismatch)
	p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim},
	}})
	p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "data", MountPath: "/data"})
	return p
}

func mustKubectlIn(t *testing.T, stdin string, args ...string) {
	t.Helper()
	if out, err := kubectlIn(stdin, args...); err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
