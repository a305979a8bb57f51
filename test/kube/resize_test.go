//go:build e2e_kube

package kube

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/kube/build"
)

// TestResizeInUseVolumesOnPods: a Cluster of two instances with its data
// and WAL on csi-hostpath-sc (which allows expansion: csi-resizer and the
// test driver's ControllerExpandVolume), rows written; storage.size and
// walStorage.size raised from 1Gi to 2Gi (resizeInUseVolumes unset:
// CloudNativePG's default, true). Every PVC's status capacity becomes 2Gi
// while the pods keep running: same pod UIDs, no container restart, the
// same postmaster start time on each instance; the Cluster's VolumeSize
// condition turns AtSize, the cluster stays healthy, the replica streams
// and the rows are there.
func TestResizeInUseVolumesOnPods(t *testing.T) {
	needCSI(t)
	ns := newNamespace(t, "resize")
	ctx := context.Background()

	c := loadSample(t, "cluster-example.yaml")
	c.Name = "resize"
	c.Spec.Instances = 2
	c.Spec.StorageConfiguration.Size = "1Gi"
	c.Spec.StorageConfiguration.StorageClass = new(csiStorageClass)
	c.Spec.WalStorage = &v1.StorageConfiguration{Size: "1Gi", StorageClass: new(csiStorageClass)}
	createCluster(t, ns, c)
	c = waitStreaming(t, ns, c.Name)
	primary := c.Status.CurrentPrimary
	psqlLocal(t, ns, primary, "app", "CREATE TABLE grown AS SELECT g FROM generate_series(1, 1000) g")

	type before struct {
		uid      string
		restarts int32
		started  string
	}
	seen := map[string]before{}
	for _, inst := range build.InstanceNames(c) {
		var pod corev1.Pod
		if err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: inst}, &pod); err != nil {
			t.Fatal(err)
		}
		seen[inst] = before{uid: string(pod.UID), restarts: podRestarts(&pod),
			started: psqlLocal(t, ns, inst, "postgres", "SELECT pg_postmaster_start_time()")}
	}

	start := time.Now()
	mustKubectl(t, "-n", ns, "patch", "cluster", c.Name, "--type", "merge", "-p",
		`{"spec":{"storage":{"size":"2Gi"},"walStorage":{"size":"2Gi"}}}`)
	want := resource.MustParse("2Gi")
	eventually(t, 3*time.Minute, "every PVC's capacity 2Gi", func() error {
		var claims corev1.PersistentVolumeClaimList
		if err := cl.List(ctx, &claims, client.InNamespace(ns), client.MatchingLabels{build.ClusterLabel: c.Name}); err != nil {
			return err
		}
		if len(claims.Items) != 4 {
			return fmt.Errorf("%d claims, want 4", len(claims.Items))
		}
		var small []string
		for _, p := range claims.Items {
			if got := p.Status.Capacity[corev1.ResourceStorage]; got.Cmp(want) != 0 {
				small = append(small, fmt.Sprintf("%s %s (conditions %v)", p.Name, got.String(), p.Status.Conditions))
			}
		}
		if len(small) > 0 {
			return fmt.Errorf("not grown: %s", strings.Join(small, "; "))
		}
		return nil
	})
	t.Logf("4 PVCs grown from 1Gi to 2Gi in use in %s", time.Since(start).Round(100*time.Millisecond))

	eventually(t, time.Minute, "VolumeSize AtSize", func() error {
		cond := meta.FindStatusCondition(getCluster(t, ns, c.Name).Status.Conditions, kube.ConditionVolumeSize)
		if cond == nil || cond.Status != "True" {
			return fmt.Errorf("VolumeSize %+v", cond)
		}
		return nil
	})
	c = waitStreaming(t, ns, c.Name)
	for _, inst := range build.InstanceNames(c) {
		var pod corev1.Pod
		if err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: inst}, &pod); err != nil {
			t.Fatal(err)
		}
		b := seen[inst]
		if string(pod.UID) != b.uid || podRestarts(&pod) != b.restarts {
			t.Errorf("pod %s: UID %s restarts %d, before %s %d: the resize restarted it", inst, pod.UID, podRestarts(&pod), b.uid, b.restarts)
		}
		if got := psqlLocal(t, ns, inst, "postgres", "SELECT pg_postmaster_start_time()"); got != b.started {
			t.Errorf("instance %s: postmaster started %s, before %s: PostgreSQL restarted", inst, got, b.started)
		}
		if got := psqlLocal(t, ns, inst, "app", "SELECT count(*) FROM grown"); got != "1000" {
			t.Errorf("instance %s: %s rows, want 1000", inst, got)
		}
	}
	if c.Status.CurrentPrimary != primary {
		t.Errorf("primary %s, before %s", c.Status.CurrentPrimary, primary)
	}
	if got := psqlLocal(t, ns, primary, "postgres", "SELECT count(*) FROM pg_stat_replication"); got != "1" {
		t.Errorf("replicas streaming from %s: %s", primary, got)
	}
}

// podRestarts sums a pod's container restarts.
func podRestarts(p *corev1.Pod) int32 {
	var n int32
	for _, s := range p.Status.ContainerStatuses {
		n += s.RestartCount
	}
	return n
}
