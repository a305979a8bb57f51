package kube

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/plan"
)

// PhaseHibernated is the phase of a Cluster whose instances are all shut
// down on request (cnpg.io/hibernation: on): no pods, the PVCs kept.
const PhaseHibernated = "Hibernated"

// hibernating reports whether c asks for hibernation (validated already).
func hibernating(c *v1.Cluster) bool {
	on, err := c.Hibernated()
	return err == nil && on
}

// podGone reports whether the pod of a hibernating cluster was deleted
// (after every instance shut down cleanly): it is not made again until the
// hibernation is lifted.
func (r *ClusterReconciler) podGone(ctx context.Context, c *v1.Cluster, name string) (bool, error) {
	if !hibernating(c) {
		return false, nil
	}
	var pod corev1.Pod
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: c.Namespace, Name: name}, &pod)
	switch {
	case apierrors.IsNotFound(err):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("reading pod %s: %w", name, err)
	}
	return false, nil
}

// releaseHibernatedPods deletes the pods once the planner says every
// instance is down on request (plan.Hibernated); the PVCs, the config
// secrets and the memory stay, so lifting the hibernation brings the same
// instances back on the same data. The pods' own graceful termination
// finds PostgreSQL already stopped.
func (r *ClusterReconciler) releaseHibernatedPods(ctx context.Context, spec plan.Spec, mem plan.Memory, obs []observation, pods map[string]*corev1.Pod) error {
	po := make([]plan.InstanceStatus, 0, len(obs))
	for _, o := range obs {
		po = append(po, o.plan)
	}
	if !plan.Hibernated(spec, mem, po) {
		return nil
	}
	for name, pod := range pods {
		uid := pod.UID
		if err := r.Client.Delete(ctx, pod, client.Preconditions{UID: &uid}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("hibernation: deleting pod %s: %w", name, err)
		}
		log.FromContext(ctx).Info("hibernation: pod deleted, its PVC kept", "pod", name)
		delete(pods, name)
	}
	return nil
}
