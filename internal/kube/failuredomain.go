package kube

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/plan"
)

// Nodes are read only for their labels (the failure domains of
// synchronous standbys), one at a time by name, from the API server.
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get

// syncDomains is plan.Spec.SyncDomains for c: each instance whose pod is
// scheduled, mapped to the values of the failure-domain labels on its pod
// and its node (nil when c sets no failure-domain key). An instance whose
// pod is not scheduled, or whose node cannot be read, is left out: its
// domain is unknown and the planner never counts it as another domain.
func (r *ClusterReconciler) syncDomains(ctx context.Context, c *v1.Cluster, pods map[string]*corev1.Pod) (map[string]string, error) {
	podKeys, nodeKeys := c.Spec.SyncFailureDomainKeys()
	if len(podKeys)+len(nodeKeys) == 0 {
		return nil, nil
	}
	nodes := map[string]map[string]string{}
	out := make(map[string]string, len(pods))
	for name, pod := range pods {
		if pod == nil || pod.Spec.NodeName == "" || pod.DeletionTimestamp != nil {
			continue
		}
		var nodeLabels map[string]string
		if len(nodeKeys) > 0 {
			labels, ok := nodes[pod.Spec.NodeName]
			if !ok {
				var n corev1.Node
				err := r.APIReader.Get(ctx, types.NamespacedName{Name: pod.Spec.NodeName}, &n)
				switch {
				case apierrors.IsNotFound(err):
					// Gone with its pod: unknown, not an error.
				case err != nil:
					return nil, fmt.Errorf("reading node %s of %s for its failure domain: %w", pod.Spec.NodeName, name, err)
				default:
					labels = n.Labels
					if labels == nil {
						labels = map[string]string{} // read, with no label
					}
				}
				nodes[pod.Spec.NodeName] = labels
			}
			if labels == nil {
				continue
			}
			nodeLabels = labels
		}
		out[name] = plan.FailureDomain(podKeys, nodeKeys, pod.Labels, nodeLabels)
	}
	return out, nil
}
