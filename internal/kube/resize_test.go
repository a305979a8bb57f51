package kube_test

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/kube/build"
)

// TestResizeInUseVolumesOnTheAPIServer: growing storage.size,
// walStorage.size and a tablespace's size on the real API server (its
// PersistentVolumeClaimResize admission and PVC validation), with the
// claims bound by hand as a provisioner would (envtest runs none):
//   - storage (resizeInUseVolumes unset, true): the data PVCs' requests
//     grow in place;
//   - walStorage (resizeInUseVolumes false): the WAL PVCs keep their size,
//     and a new instance's WAL PVC gets the new one;
//   - a tablespace on a StorageClass without allowVolumeExpansion: the API
//     server refuses the grow; the reconcile goes on (the pods are still
//     made) and the Cluster's VolumeSize condition names the PVC and the
//     API server's reason; once the class allows expansion the claim grows.
func TestResizeInUseVolumesOnTheAPIServer(t *testing.T) {
	ns := newNamespace(t, true)
	ctx := ctxFor(t)
	expandable, fixed := ns+"-expandable", ns+"-fixed"
	for name, allow := range map[string]bool{expandable: true, fixed: false} {
		sc := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Provisioner: "example.com/none", AllowVolumeExpansion: new(allow)}
		if err := admin.Create(ctx, sc); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = admin.Delete(ctx, sc) })
	}
	c := sampleCluster(t, ns)
	c.Spec.Instances = 2
	c.Spec.StorageConfiguration = v1.StorageConfiguration{Size: "1Gi", StorageClass: new(expandable)}
	c.Spec.WalStorage = &v1.StorageConfiguration{Size: "1Gi", StorageClass: new(expandable), ResizeInUseVolumes: new(false)}
	c.Spec.Tablespaces = []v1.TablespaceConfiguration{{Name: "t", Storage: v1.StorageConfiguration{Size: "1Gi", StorageClass: new(fixed)}}}
	v1.SetDefaults(c)
	w := kube.ClusterWebhook{}
	if _, err := w.ValidateCreate(ctx, c); err != nil {
		t.Fatalf("webhook: %v", err)
	}
	createCluster(t, c)
	r := newReconciler(&kube.MTLSInstances{Timeout: time.Second}, nil)
	reconcileOnce(t, r, c)

	claims := func(inst string) []string {
		return []string{inst, inst + "-wal", build.TablespacePVCName(inst, "t")}
	}
	// Bound, with the capacity asked for, as a provisioner leaves them.
	bind := func(names ...string) {
		t.Helper()
		for _, name := range names {
			var pvc corev1.PersistentVolumeClaim
			if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &pvc); err != nil {
				t.Fatal(err)
			}
			pvc.Status.Phase = corev1.ClaimBound
			pvc.Status.Capacity = corev1.ResourceList{corev1.ResourceStorage: pvc.Spec.Resources.Requests[corev1.ResourceStorage]}
			if err := admin.Status().Update(ctx, &pvc); err != nil {
				t.Fatalf("binding %s: %v", name, err)
			}
		}
	}
	sizes := func() map[string]string {
		t.Helper()
		var list corev1.PersistentVolumeClaimList
		if err := admin.List(ctx, &list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, p := range list.Items {
			q := p.Spec.Resources.Requests[corev1.ResourceStorage]
			out[p.Name] = q.String()
		}
		return out
	}
	condition := func() *metav1.Condition {
		t.Helper()
		return meta.FindStatusCondition(storedCluster(t, c).Status.Conditions, kube.ConditionVolumeSize)
	}
	for _, inst := range build.InstanceNames(c) {
		bind(claims(inst)...)
	}
	reconcileOnce(t, r, c)
	if cond := condition(); cond == nil || cond.Status != metav1.ConditionTrue || cond.Reason != "AtSize" {
		t.Errorf("bound at size: VolumeSize %+v", cond)
	}

	// Every size grows: the webhook accepts it with resizeInUseVolumes
	// false too (CloudNativePG's meaning: new claims get it).
	cur := storedCluster(t, c)
	grown := cur.DeepCopy()
	grown.Spec.StorageConfiguration.Size = "2Gi"
	grown.Spec.WalStorage.Size = "2Gi"
	grown.Spec.Tablespaces[0].Storage.Size = "2Gi"
	if _, err := w.ValidateUpdate(ctx, cur, grown); err != nil {
		t.Fatalf("webhook, sizes grown: %v", err)
	}
	if err := admin.Update(ctx, grown); err != nil {
		t.Fatal(err)
	}
	reconcileOnce(t, r, grown) // a refused grow does not fail it
	got := sizes()
	for _, inst := range build.InstanceNames(c) {
		for name, want := range map[string]string{inst: "2Gi", inst + "-wal": "1Gi", build.TablespacePVCName(inst, "t"): "1Gi"} {
			if got[name] != want {
				t.Errorf("PVC %s requests %s, want %s (all: %v)", name, got[name], want, got)
			}
		}
		var pod corev1.Pod
		if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: inst}, &pod); err != nil {
			t.Errorf("pod %s: %v", inst, err)
		}
	}
	cond := condition()
	if cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != "ResizeRefused" ||
		!strings.Contains(cond.Message, "PVC "+build.TablespacePVCName("cluster-example-1", "t")+" stays 1Gi (spec 2Gi): the API server refused to grow it") ||
		!strings.Contains(cond.Message, "storageclass") {
		t.Errorf("refused grow: VolumeSize %+v", cond)
	}

	// The class now allows expansion: the tablespace's claims grow; the
	// WAL's are kept, and the condition says why and what to do.
	var sc storagev1.StorageClass
	if err := admin.Get(ctx, types.NamespacedName{Name: fixed}, &sc); err != nil {
		t.Fatal(err)
	}
	sc.AllowVolumeExpansion = new(true)
	if err := admin.Update(ctx, &sc); err != nil {
		t.Fatal(err)
	}
	reconcileOnce(t, r, grown)
	got = sizes()
	if tb := build.TablespacePVCName("cluster-example-2", "t"); got[tb] != "2Gi" {
		t.Errorf("PVC %s requests %s once its class allows expansion", tb, got[tb])
	}
	cond = condition()
	if cond == nil || cond.Reason != "ResizeInUseVolumesDisabled" || !strings.Contains(cond.Message, "PVC cluster-example-1-wal keeps 1Gi (spec 2Gi)") {
		t.Errorf("WAL kept: VolumeSize %+v", cond)
	}

	// A new instance: its WAL claim is made at the new size.
	cur = storedCluster(t, c)
	cur.Spec.Instances = 3
	if err := admin.Update(ctx, cur); err != nil {
		t.Fatal(err)
	}
	reconcileOnce(t, r, cur)
	if got := sizes()["cluster-example-3-wal"]; got != "2Gi" {
		t.Errorf("a new instance's WAL PVC requests %s, want 2Gi", got)
	}

	// resizeInUseVolumes back to true: the WAL claims grow too; with the
	// storage not done yet the condition says Resizing, then AtSize.
	cur = storedCluster(t, c)
	cur.Spec.WalStorage.ResizeInUseVolumes = nil
	if err := admin.Update(ctx, cur); err != nil {
		t.Fatal(err)
	}
	bind(claims("cluster-example-3")...)
	reconcileOnce(t, r, cur)
	if got := sizes()["cluster-example-1-wal"]; got != "2Gi" {
		t.Errorf("WAL PVC with resizeInUseVolumes back to true requests %s", got)
	}
	if cond := condition(); cond == nil || cond.Reason != "Resizing" || !strings.Contains(cond.Message, "PVC cluster-example-1: 1Gi of 2Gi") {
		t.Errorf("resizing: VolumeSize %+v", cond)
	}
	for _, inst := range []string{"cluster-example-1", "cluster-example-2"} {
		bind(claims(inst)...)
	}
	reconcileOnce(t, r, cur)
	if cond := condition(); cond == nil || cond.Status != metav1.ConditionTrue {
		t.Errorf("resized: VolumeSize %+v", cond)
	}
}
