package kube

import (
	"context"
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/control"
	"github.com/pgward/pgward/internal/plan"
)

// takeRestart puts the pgward.io/restart request into the planner's memory
// (plan.RequestRestart), which the next step saves before it acts; it
// reports whether there was one, so that the annotation can go afterwards.
func takeRestart(ctx context.Context, c *v1.Cluster, spec plan.Spec, mem *control.Memory) bool {
	v, ok := c.Annotations[v1.RestartAnnotation]
	if !ok {
		return false
	}
	m, err := plan.RequestRestart(spec, mem.Latest(), v)
	if err != nil {
		// The webhook checks the value; one that got in anyway is dropped.
		log.FromContext(ctx).Info("restart request refused", "error", err.Error())
		return true
	}
	mem.Set(m)
	return true
}

// clearRestartAnnotation removes a taken restart request, only from the
// Cluster as it was read (a newer request stays for the next reconcile).
func (r *ClusterReconciler) clearRestartAnnotation(ctx context.Context, c *v1.Cluster) error {
	patch := map[string]any{"metadata": map[string]any{
		"resourceVersion": c.ResourceVersion,
		"annotations":     map[string]any{v1.RestartAnnotation: nil},
	}}
	b, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	if err := r.Client.Patch(ctx, c.DeepCopy(), client.RawPatch(types.MergePatchType, b)); err != nil {
		return fmt.Errorf("removing the restart request: %w", err)
	}
	return nil
}

// RequestRestart asks the operator for a restart (`kubectl pgward
// restart`): instance, or every instance, rolling, when it is "" or "*".
func RequestRestart(ctx context.Context, cl client.Client, key types.NamespacedName, instance string) error {
	if instance == "" {
		instance = v1.FenceAll
	}
	return patchAnnotations(ctx, cl, key, func(c *v1.Cluster) error {
		c.Annotations[v1.RestartAnnotation] = instance
		if _, _, err := c.RestartRequest(); err != nil {
			return fmt.Errorf("instance: %w", err)
		}
		return nil
	})
}

// RestartProgress says where a restart requested with RequestRestart
// stands, from the Cluster as the operator wrote it: done when the
// operator has taken the request (the annotation is gone), no instance is
// left to restart and the cluster is healthy again. Under
// primaryUpdateStrategy supervised the primary waits for the user's
// switchover: waiting is then over once it is the only one left, and
// note says so.
func RestartProgress(c *v1.Cluster) (done bool, note string, err error) {
	if _, pending := c.Annotations[v1.RestartAnnotation]; pending {
		return false, "waiting for the operator to take the request", nil
	}
	m, err := loadMemory(c)
	if err != nil {
		return false, "", err
	}
	left := m.RestartPending
	if len(left) == 1 && left[0] == m.TargetPrimary && c.Spec.PrimaryUpdateStrategy == "supervised" {
		return true, fmt.Sprintf("replicas restarted; the primary %s waits for your switchover (primaryUpdateStrategy: supervised): kubectl pgward promote %s INSTANCE", left[0], c.Name), nil
	}
	if len(left) > 0 {
		return false, fmt.Sprintf("left to restart: %v", left), nil
	}
	if c.Status.Phase != PhaseHealthy || c.Status.ReadyInstances != c.Spec.Instances {
		return false, fmt.Sprintf("%d of %d instances ready (%s)", c.Status.ReadyInstances, c.Spec.Instances, c.Status.Phase), nil
	}
	return true, "", nil
}
