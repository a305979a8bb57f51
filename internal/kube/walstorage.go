package kube

import (
	"k8s.io/apimachinery/pkg/util/validation/field"

	v1 "github.com/pgward/pgward/api/v1"
)

// walStorageForKubernetes requires spec.walStorage's size: each instance's
// WAL volume needs one, as the data volume does.
//
// It also refuses walStorage.pvcTemplate, which the WAL volumes do not
// take yet: the API server's schema knows the field (walStorage shares
// storage's type), so the loader's list of CloudNativePG fields pgward
// does not support, which refuses it locally, never sees it here.
func walStorageForKubernetes(c *v1.Cluster) field.ErrorList {
	w := c.Spec.WalStorage
	if w == nil {
		return nil
	}
	var errs field.ErrorList
	p := field.NewPath("spec", "walStorage")
	if w.Size == "" {
		errs = append(errs, field.Required(p.Child("size"),
			"each instance needs a persistent volume for its WAL on Kubernetes, e.g. 1Gi"))
	}
	if w.PersistentVolumeClaimTemplate != nil {
		errs = append(errs, field.Forbidden(p.Child("pvcTemplate"),
			"pgward does not support a template for the WAL volumes yet: set walStorage.size and walStorage.storageClass"))
	}
	return errs
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
