package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/control"
	"github.com/pgward/pgward/internal/plan"
)

// switchoverID names a request taken from the annotation: the same
// instance asked again after the last request ended is a new request.
func switchoverID(to string) string { return "annotation:" + to }

// takeSwitchover puts the annotation's request into the planner's memory,
// unless a switchover is already under way; it reports whether the
// annotation has been dealt with (taken now or earlier) and may go.
func takeSwitchover(c *v1.Cluster, mem *control.Memory) bool {
	to, ok := c.Annotations[v1.SwitchoverAnnotation]
	if !ok {
		return false
	}
	m := mem.Latest()
	sw := &m.Switchover
	switch {
	case sw.ID == switchoverID(to):
		return true
	case sw.From != "":
		return false // one already shutting a primary down: later
	}
	*sw = plan.Switchover{ID: switchoverID(to), To: to}
	mem.Set(m)
	return true
}

// clearSwitchoverAnnotation removes a taken request, only if it is still
// the one taken (a newer one stays for the next reconcile).
func (r *ClusterReconciler) clearSwitchoverAnnotation(ctx context.Context, c *v1.Cluster) error {
	to := c.Annotations[v1.SwitchoverAnnotation]
	patch := map[string]any{"metadata": map[string]any{
		"resourceVersion": c.ResourceVersion,
		"annotations":     map[string]any{v1.SwitchoverAnnotation: nil},
	}}
	b, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	if err := r.Client.Patch(ctx, c.DeepCopy(), client.RawPatch(types.MergePatchType, b)); err != nil {
		return fmt.Errorf("removing the switchover request to %s: %w", to, err)
	}
	return nil
}

// publishSwitchover records how a requested switchover ended, as an event.
func (r *ClusterReconciler) publishSwitchover(c *v1.Cluster, o *plan.SwitchoverOutcome) {
	if o != nil {
		switchoversTotal.WithLabelValues(c.Namespace, c.Name, string(o.Result)).Inc()
	}
	if o == nil || r.Recorder == nil {
		return
	}
	kind := corev1.EventTypeNormal
	if o.Result != plan.SwitchoverDone && o.Result != plan.SwitchoverPromoting {
		kind = corev1.EventTypeWarning
	}
	r.Recorder.Eventf(c, nil, kind, "Switchover", "Switchover", "switchover to %s: %s %s", o.To, o.Result, o.Reason)
}

// RequestSwitchover asks the operator for a switchover of the Cluster key
// to instance to, and waits until it is the primary every instance of the
// Cluster reports (status.currentPrimary), or timeout.
func RequestSwitchover(ctx context.Context, cl client.Client, key types.NamespacedName, to string, timeout time.Duration) error {
	var c v1.Cluster
	if err := cl.Get(ctx, key, &c); err != nil {
		return fmt.Errorf("reading cluster %s: %w", key, err)
	}
	if c.Status.CurrentPrimary == to {
		return nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{v1.SwitchoverAnnotation: to}}})
	if err != nil {
		return err
	}
	if err := cl.Patch(ctx, &c, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("requesting the switchover: %w", err)
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if err := cl.Get(ctx, key, &c); err == nil && c.Status.CurrentPrimary == to && c.Status.TargetPrimary == to {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return fmt.Errorf("switchover to %s: not the primary after %s (see the Cluster's events)", to, timeout)
}
