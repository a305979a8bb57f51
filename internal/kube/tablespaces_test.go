package kube_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/kube/build"
)

// TestTablespacesOnTheAPIServer: spec.tablespaces on the real API server.
// Each instance gets one PVC per tablespace (CloudNativePG's
// <pod>-tbs-<name>, size and class from the tablespace, owned by the
// Cluster), its pod mounts each at the fixed path the instance manager's
// config names (the pod is admitted in a namespace enforcing the
// restricted standard), and they go with their instance when the cluster
// shrinks. The webhook
// refuses a tablespace without a size, and, on a running cluster, one
// added (the pods' volumes are fixed), removed, or a changed class.
func TestTablespacesOnTheAPIServer(t *testing.T) {
	ns := newNamespace(t, true)
	ctx := ctxFor(t)
	c := sampleCluster(t, ns)
	c.Spec.Tablespaces = []v1.TablespaceConfiguration{
		{Name: "another_tablespace", Storage: v1.StorageConfiguration{Size: "2Gi", StorageClass: new("standard")}, Owner: v1.DatabaseRoleRef{Name: "app"}},
		{Name: "scratch", Storage: v1.StorageConfiguration{Size: "1Gi"}, Temporary: true},
	}
	v1.SetDefaults(c)
	if errs := kube.ValidateForKubernetes(c); len(errs) > 0 {
		t.Fatal(errs.ToAggregate())
	}
	createCluster(t, c)
	r := newReconciler(&kube.MTLSInstances{Timeout: time.Second}, nil)
	reconcileOnce(t, r, c)

	for _, name := range build.InstanceNames(c) {
		for _, tc := range []struct{ tbs, pvc, size, class string }{
			{"another_tablespace", name + "-tbs-another-tablespace", "2Gi", "standard"},
			{"scratch", name + "-tbs-scratch", "1Gi", ""},
		} {
			var pvc corev1.PersistentVolumeClaim
			if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: tc.pvc}, &pvc); err != nil {
				t.Fatalf("PVC %s: %v", tc.pvc, err)
			}
			size := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
			class := ""
			if pvc.Spec.StorageClassName != nil {
				class = *pvc.Spec.StorageClassName
			}
			if size.String() != tc.size || (tc.class != "" && class != tc.class) || pvc.Labels[build.InstanceLabel] != name || pvc.Labels[build.TablespaceLabel] != tc.tbs {
				t.Errorf("PVC %s: size %s class %q labels %v", tc.pvc, size.String(), class, pvc.Labels)
			}
			if len(pvc.OwnerReferences) != 1 || pvc.OwnerReferences[0].Name != c.Name || pvc.OwnerReferences[0].Controller == nil || !*pvc.OwnerReferences[0].Controller {
				t.Errorf("PVC %s owner %+v", tc.pvc, pvc.OwnerReferences)
			}
		}
		var pod corev1.Pod
		if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &pod); err != nil {
			t.Fatalf("pod %s: %v", name, err)
		}
		claims := map[string]string{}
		for _, v := range pod.Spec.Volumes {
			if v.PersistentVolumeClaim != nil {
				claims[v.Name] = v.PersistentVolumeClaim.ClaimName
			}
		}
		mounts := map[string]string{}
		for _, m := range pod.Spec.Containers[0].VolumeMounts {
			mounts[m.MountPath] = claims[m.Name]
		}
		for path, claim := range map[string]string{
			build.TablespacesMount + "/another_tablespace": name + "-tbs-another-tablespace",
			build.TablespacesMount + "/scratch":            name + "-tbs-scratch",
		} {
			if mounts[path] != claim {
				t.Errorf("pod %s mounts %q at %s, want %s (mounts %v)", name, mounts[path], path, claim, mounts)
			}
		}
		var sec corev1.Secret
		if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: build.InstanceConfigSecretName(name)}, &sec); err != nil {
			t.Fatal(err)
		}
		var cfg instanceapi.Config
		if err := json.Unmarshal(sec.Data["config.json"], &cfg); err != nil || cfg.TablespacesDir != build.TablespacesMount || cfg.TablespaceLocation != build.TablespacesMount {
			t.Errorf("config.json of %s: tablespaces %q %q (%v)", name, cfg.TablespacesDir, cfg.TablespaceLocation, err)
		}
	}

	var cur v1.Cluster
	if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: c.Name}, &cur); err != nil {
		t.Fatal(err)
	}
	v1.SetDefaults(&cur)

	// Fewer instances: the tablespace volumes of the instances removed go
	// with their data volume.
	cur.Spec.Instances = 2
	if err := admin.Update(ctx, &cur); err != nil {
		t.Fatal(err)
	}
	reconcileOnce(t, r, &cur)
	gone := c.Name + "-3"
	for _, pvc := range []string{gone, gone + "-tbs-another-tablespace", gone + "-tbs-scratch"} {
		var got corev1.PersistentVolumeClaim
		err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: pvc}, &got)
		if !apierrors.IsNotFound(err) && (err != nil || got.DeletionTimestamp == nil) {
			t.Errorf("PVC %s of the removed instance: still there (%v)", pvc, err)
		}
	}
	for _, pvc := range []string{c.Name + "-2-tbs-another-tablespace", c.Name + "-2-tbs-scratch"} {
		var got corev1.PersistentVolumeClaim
		if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: pvc}, &got); err != nil || got.DeletionTimestamp != nil {
			t.Errorf("PVC %s of a kept instance: %v %v", pvc, err, got.DeletionTimestamp)
		}
	}
	if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: c.Name}, &cur); err != nil {
		t.Fatal(err)
	}
	v1.SetDefaults(&cur)

	// The webhook's refusals, each naming the field.
	w := kube.ClusterWebhook{}
	noSize := cur.DeepCopy()
	noSize.Spec.Tablespaces[0].Storage.Size = ""
	if _, err := w.ValidateCreate(context.Background(), noSize); err == nil || !strings.Contains(err.Error(), "spec.tablespaces[0].storage.size: Required") {
		t.Errorf("no size: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(*v1.Cluster)
		want   string
	}{
		{"added", func(n *v1.Cluster) {
			n.Spec.Tablespaces = append(n.Spec.Tablespaces, v1.TablespaceConfiguration{Name: "late", Storage: v1.StorageConfiguration{Size: "1Gi"}})
		}, `spec.tablespaces[2]: Forbidden: tablespace "late" cannot be added to a running cluster on Kubernetes`},
		{"removed", func(n *v1.Cluster) { n.Spec.Tablespaces = n.Spec.Tablespaces[:1] }, `tablespace "scratch" cannot be removed`},
		{"class changed", func(n *v1.Cluster) { n.Spec.Tablespaces[0].Storage.StorageClass = new("fast") }, "spec.tablespaces[0].storage.storageClass: Forbidden"},
		{"shrunk", func(n *v1.Cluster) { n.Spec.Tablespaces[0].Storage.Size = "1Gi" }, "spec.tablespaces[0].storage.size: Forbidden: cannot shrink"},
	} {
		n := cur.DeepCopy()
		tc.change(n)
		if _, err := w.ValidateUpdate(context.Background(), &cur, n); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	owner := cur.DeepCopy()
	owner.Spec.Tablespaces[0].Owner.Name = "postgres"
	owner.Spec.Tablespaces[0].Temporary = true
	owner.Spec.Tablespaces[0].Storage.Size = "5Gi"
	if _, err := w.ValidateUpdate(context.Background(), &cur, owner); err != nil {
		t.Errorf("owner, temporary and size changed: %v", err)
	}
}
