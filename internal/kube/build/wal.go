package build

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	v1 "github.com/pgward/pgward/api/v1"
)

// WalMount holds the WAL volume (spec.walStorage). The instance manager's
// WAL directory is WalDir, a directory in it rather than the mount's root:
// the root is root's (writable through fsGroup) and may hold lost+found,
// and initdb --waldir must create a directory PostgreSQL owns, mode 0700.
const (
	WalMount = "/var/lib/postgresql/wal"
	WalDir   = WalMount + "/pg_wal"
	volWal   = "pgwal"
)

// PVCRoleLabel on an instance's volume other than its data volume says
// what it holds (PVCRoleWAL); such a volume goes with its instance.
const (
	PVCRoleLabel = "pgward.io/pvcRole"
	PVCRoleWAL   = "wal"
)

// WalPVCName is CloudNativePG's name for an instance's WAL volume.
func WalPVCName(instance string) string { return instance + "-wal" }

// WalPVC is instance's WAL volume, nil without spec.walStorage: size and
// class from spec.walStorage (the webhook requires the size on
// Kubernetes), ReadWriteOnce, labelled as the data volume is plus its role.
func WalPVC(c *v1.Cluster, instance string) (*corev1.PersistentVolumeClaim, error) {
	w := c.Spec.WalStorage
	if w == nil {
		return nil, nil
	}
	size, err := resource.ParseQuantity(w.Size)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: spec.walStorage.size %q: %w", c.Name, w.Size, err)
	}
	spec := corev1.PersistentVolumeClaimSpec{
		AccessModes: []corev1.PersistentVolumeAccessMode{pvcRWO},
		Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
	}
	if w.StorageClass != nil {
		spec.StorageClassName = new(*w.StorageClass)
	}
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: objectMeta(c, WalPVCName(instance), map[string]string{InstanceLabel: instance, PVCRoleLabel: PVCRoleWAL}),
		Spec:       spec,
	}, nil
}

// walVolumes are the pod's volume and the container's mount of its WAL
// volume, none without spec.walStorage.
func walVolumes(c *v1.Cluster, instance string) ([]corev1.Volume, []corev1.VolumeMount) {
	if c.Spec.WalStorage == nil {
		return nil, nil
	}
	return []corev1.Volume{{Name: volWal, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: WalPVCName(instance)},
		}}},
		[]corev1.VolumeMount{{Name: volWal, MountPath: WalMount}}
}
