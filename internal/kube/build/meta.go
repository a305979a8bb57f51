package build

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/pgward/pgward/api/v1"
)

// Options are the operator-wide settings the objects depend on.
type Options struct {
	// Image is the instance image: pgward and PostgreSQL.
	Image string
	// ImagePullPolicy of the instance image ("" lets Kubernetes decide).
	ImagePullPolicy string
	// ClusterImage is one Cluster's operand image, resolved from its
	// imageName or imageCatalogRef ("": Image). It need not hold pgward:
	// an init container copies pgward in from Image (image.go).
	ClusterImage string
	// PGBinDir is where the image keeps postgres, initdb and pg_basebackup.
	PGBinDir string
	// OperatorNamespace is where the operator runs: the only namespace
	// whose (operator) pods may reach the status port when NetworkPolicies
	// are on.
	OperatorNamespace string
	// ClusterDomain is the DNS suffix of Services ("cluster.local").
	ClusterDomain string
	// SelfFenceSeconds is how long a primary keeps accepting writes without
	// hearing from the operator (see plan.FenceTiming).
	SelfFenceSeconds int64
	// LeaseRenew is how often the primary renews the cluster's Lease, and
	// LeaseTimeout bounds one renewal; zero LeaseRenew: no Lease.
	LeaseRenew   time.Duration
	LeaseTimeout time.Duration
}

// OwnerReference makes c the controller of an object: garbage collection
// deletes the object with c, and blockOwnerDeletion keeps a foreground
// deletion of c waiting until the object is gone.
func OwnerReference(c *v1.Cluster) metav1.OwnerReference {
	return metav1.OwnerReference{
		APIVersion:         v1.APIVersion,
		Kind:               v1.Kind,
		Name:               c.Name,
		UID:                c.UID,
		Controller:         new(true),
		BlockOwnerDeletion: new(true),
	}
}

// objectMeta is the metadata of an object named name that c owns, with
// extra labels on top of the common ones.
func objectMeta(c *v1.Cluster, name string, extra map[string]string) metav1.ObjectMeta {
	labels := commonLabels(c)
	for k, v := range extra {
		labels[k] = v
	}
	return metav1.ObjectMeta{
		Name:            name,
		Namespace:       c.Namespace,
		Labels:          withInherited(c, labels),
		Annotations:     inheritedAnnotations(c),
		OwnerReferences: []metav1.OwnerReference{OwnerReference(c)},
	}
}

func secondsDuration(s int64) time.Duration { return time.Duration(s) * time.Second }
