package kube

import (
	"k8s.io/apimachinery/pkg/util/validation/field"

	v1 "github.com/pgward/pgward/api/v1"
)

// walStorageForKubernetes requires spec.walStorage's size: each instance's
// WAL volume needs one, as the data volume does.
func walStorageForKubernetes(c *v1.Cluster) field.ErrorList {
	if w := c.Spec.WalStorage; w != nil && w.Size == "" {
		return field.ErrorList{field.Required(field.NewPath("spec", "walStorage", "size"),
			"each instance needs a persistent volume for its WAL on Kubernetes, e.g. 1Gi")}
	}
	return nil
}

// refuseWalStorageChanges refuses changing the WAL volumes' storage class
// once they exist (a claim's class cannot change); adding or removing
// walStorage is refused by v1's update validation, and the size grows.
func refuseWalStorageChanges(o, n *v1.Cluster) field.ErrorList {
	if o.Spec.WalStorage == nil || n.Spec.WalStorage == nil ||
		classEqual(o.Spec.WalStorage.StorageClass, n.Spec.WalStorage.StorageClass) {
		return nil
	}
	return field.ErrorList{field.Forbidden(field.NewPath("spec", "walStorage", "storageClass"),
		"fixed in the volumes when they are created (a claim's storage class cannot change)")}
}
