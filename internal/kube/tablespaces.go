package kube

import (
	"fmt"

	"k8s.io/apimachinery/pkg/util/validation/field"

	v1 "github.com/pgward/pgward/api/v1"
)

// tablespacesForKubernetes requires each tablespace's size: its PVCs need
// one, as the data volume does.
func tablespacesForKubernetes(c *v1.Cluster) field.ErrorList {
	var errs field.ErrorList
	for i, t := range c.Spec.Tablespaces {
		if t.Storage.Size == "" {
			errs = append(errs, field.Required(field.NewPath("spec", "tablespaces").Index(i).Child("storage", "size"),
				"each instance needs a persistent volume per tablespace on Kubernetes, e.g. 1Gi"))
		}
	}
	return errs
}

// refuseTablespaceChanges refuses, on Kubernetes, the tablespace changes
// running pods cannot take: a pod's volumes are fixed when it is created,
// so a tablespace added later would have no volume (the operator does not
// recreate the pods for it yet), and a claim's storage class cannot change.
// Growing a size, the owner and temporary apply live.
func refuseTablespaceChanges(o, n *v1.Cluster) field.ErrorList {
	var errs field.ErrorList
	old := map[string]v1.TablespaceConfiguration{}
	for _, t := range o.Spec.Tablespaces {
		old[t.Name] = t
	}
	p := field.NewPath("spec", "tablespaces")
	for i, t := range n.Spec.Tablespaces {
		was, ok := old[t.Name]
		if !ok {
			errs = append(errs, field.Forbidden(p.Index(i), fmt.Sprintf(
				"tablespace %q cannot be added to a running cluster on Kubernetes yet: the pods' volumes are fixed when they are created (declare it when creating the Cluster)", t.Name)))
			continue
		}
		if !classEqual(was.Storage.StorageClass, t.Storage.StorageClass) {
			errs = append(errs, field.Forbidden(p.Index(i).Child("storage", "storageClass"),
				"fixed in the volumes when they are created (a claim's storage class cannot change)"))
		}
	}
	return errs
}

func classEqual(a, b *string) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}
