package build

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"

	v1 "github.com/pgward/pgward/api/v1"
)

// TestWalStorageObjects: without spec.walStorage nothing changes; with it
// the instance's WAL volume, its mount and the instance manager's WAL
// directory inside the mount (not its root, which is root's).
func TestWalStorageObjects(t *testing.T) {
	c := &v1.Cluster{}
	c.Name, c.Namespace = "pg", "ns"
	c.Spec.Instances = 1
	c.Spec.StorageConfiguration.Size = "1Gi"
	if pvc, err := WalPVC(c, "pg-1"); pvc != nil || err != nil {
		t.Fatalf("without walStorage: %v %v", pvc, err)
	}
	if cfg := InstanceConfig(c, "pg-1", "pg-1", Options{}); cfg.WalDir != "" {
		t.Errorf("without walStorage: walDir %q", cfg.WalDir)
	}
	c.Spec.WalStorage = &v1.StorageConfiguration{Size: "lots"}
	if _, err := WalPVC(c, "pg-1"); err == nil {
		t.Error("a size that is not a quantity was accepted")
	}
	c.Spec.WalStorage = &v1.StorageConfiguration{Size: "512Mi"}
	pvc, err := WalPVC(c, "pg-1")
	if err != nil {
		t.Fatal(err)
	}
	size := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	if pvc.Name != "pg-1-wal" || size.String() != "512Mi" || pvc.Spec.StorageClassName != nil ||
		!slices.Equal(pvc.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) || pvc.Labels[PVCRoleLabel] != PVCRoleWAL {
		t.Errorf("WAL PVC %+v", pvc)
	}
	cfg := InstanceConfig(c, "pg-1", "pg-1", Options{})
	if cfg.WalDir != WalDir || WalDir == WalMount {
		t.Errorf("walDir %q, mount %q", cfg.WalDir, WalMount)
	}
	pod := Pod(c, "pg-1", RolePrimary, Options{})
	found := false
	for _, m := range pod.Spec.Containers[0].VolumeMounts {
		found = found || (m.MountPath == WalMount && m.Name == volWal)
	}
	if !found {
		t.Errorf("mounts %v", pod.Spec.Containers[0].VolumeMounts)
	}
}

func TestRoleSecretNames(t *testing.T) {
	c := &v1.Cluster{}
	if got := RoleSecretNames(c); got != nil {
		t.Errorf("no managed: %v", got)
	}
	c.Spec.Managed = &v1.ManagedConfiguration{Roles: []v1.RoleConfiguration{
		{Name: "b", PasswordSecret: &v1.LocalObjectReference{Name: "sb"}},
		{Name: "n"},
		{Name: "a", PasswordSecret: &v1.LocalObjectReference{Name: "sa"}, Ensure: "absent"},
		{Name: "c", PasswordSecret: &v1.LocalObjectReference{Name: "sb"}},
	}}
	if got := RoleSecretNames(c); !slices.Equal(got, []string{"sa", "sb"}) {
		t.Errorf("got %v, want the absent role's secret too, sorted, once each", got)
	}
}
