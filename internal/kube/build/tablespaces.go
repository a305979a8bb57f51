package build

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	v1 "github.com/pgward/pgward/api/v1"
)

// TablespacesMount holds one volume per tablespace (spec.tablespaces), at
// <mount>/<name>; the instance manager makes <name>/data in it (the
// volume's root is root's, writable through fsGroup, and PostgreSQL must
// own a tablespace's location). The path is the same in every pod, so the
// location CREATE TABLESPACE records on the primary names each replica's
// own volume when it replays it.
const TablespacesMount = "/var/lib/postgresql/tablespaces"

// TablespaceLabel on a tablespace's PVC names the tablespace.
const TablespaceLabel = "pgward.io/tablespace"

// tablespaceK8sName is a tablespace name in Kubernetes names: '_' is not
// allowed there and '-' is not allowed in the tablespace names validation
// accepts, so the mapping is one to one.
func tablespaceK8sName(name string) string { return strings.ReplaceAll(name, "_", "-") }

// TablespacePVCName is CloudNativePG's name for the volume of tablespace
// tbs of instance: <instance>-tbs-<name>.
func TablespacePVCName(instance, tbs string) string {
	return instance + "-tbs-" + tablespaceK8sName(tbs)
}

// tablespaceVolume is the pod's volume name of tablespace tbs (a DNS
// label: validation keeps names to 59 characters).
func tablespaceVolume(tbs string) string { return "tbs-" + tablespaceK8sName(tbs) }

// TablespacePVCs are the volumes of instance's tablespaces: size and class
// from each tablespace's storage (the webhook requires the size on
// Kubernetes), ReadWriteOnce.
func TablespacePVCs(c *v1.Cluster, instance string) ([]*corev1.PersistentVolumeClaim, error) {
	var out []*corev1.PersistentVolumeClaim
	for i, t := range c.Spec.Tablespaces {
		size, err := resource.ParseQuantity(t.Storage.Size)
		if err != nil {
			return nil, fmt.Errorf("cluster %s: spec.tablespaces[%d].storage.size %q: %w", c.Name, i, t.Storage.Size, err)
		}
		spec := corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{pvcRWO},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
		}
		if t.Storage.StorageClass != nil {
			spec.StorageClassName = new(*t.Storage.StorageClass)
		}
		out = append(out, &corev1.PersistentVolumeClaim{
			ObjectMeta: objectMeta(c, TablespacePVCName(instance, t.Name), map[string]string{InstanceLabel: instance, TablespaceLabel: t.Name}),
			Spec:       spec,
		})
	}
	return out, nil
}

// tablespaceVolumes are the pod's volumes and the container's mounts of
// its tablespaces.
func tablespaceVolumes(c *v1.Cluster, instance string) ([]corev1.Volume, []corev1.VolumeMount) {
	var vols []corev1.Volume
	var mounts []corev1.VolumeMount
	for _, t := range c.Spec.Tablespaces {
		vols = append(vols, corev1.Volume{Name: tablespaceVolume(t.Name), VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: TablespacePVCName(instance, t.Name)},
		}})
		mounts = append(mounts, corev1.VolumeMount{Name: tablespaceVolume(t.Name), MountPath: TablespacesMount + "/" + t.Name})
	}
	return vols, mounts
}
