package kube

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/plan"
)

// updateStatus records what this reconcile saw and decided. Every field is
// a function of the cluster's state (no timestamps, no durations), so a
// resync of a settled cluster writes nothing.
func (r *ClusterReconciler) updateStatus(ctx context.Context, c, desired *v1.Cluster, ready plan.Ready, obs []observation, pods map[string]*corev1.Pod) error {
	before := c.DeepCopy()
	st := &c.Status
	mem := ready.Memory
	st.Instances = len(pods)
	names := make([]string, 0, len(pods))
	for name := range pods {
		names = append(names, name)
	}
	slices.Sort(names)
	st.InstanceNames = names
	st.ReadyInstances = 0
	st.TimelineID = 0
	for _, o := range obs {
		if o.wire != nil && o.wire.Ready {
			st.ReadyInstances++
		}
		if o.wire != nil && o.plan.Name == mem.CurrentPrimary {
			st.TimelineID = int(o.wire.Timeline)
		}
	}
	st.TargetPrimary = targetOf(desired, mem)
	st.CurrentPrimary = mem.CurrentPrimary

	phase, status, reason, msg := summarize(desired, mem, ready, st.ReadyInstances)
	st.Phase = phase
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type: ConditionReady, Status: status, Reason: reason, Message: msg, ObservedGeneration: c.Generation,
	})
	if cond, ok := configCondition(obs, c.Generation); ok {
		meta.SetStatusCondition(&st.Conditions, cond)
	}
	r.setImageCondition(c, &st.Conditions)
	r.setVolumeSizeCondition(c, &st.Conditions)
	if err := r.setManagedRolesCondition(ctx, c, mem.CurrentPrimary, obs, pods, &st.Conditions); err != nil {
		return err
	}
	if err := r.updateDatabases(ctx, c, mem.CurrentPrimary, obs, pods); err != nil {
		return err
	}
	observeStatus(c)
	if equality.Semantic.DeepEqual(before.Status, c.Status) {
		return nil
	}
	if err := r.Client.Status().Patch(ctx, c, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("writing status of %s: %w", c.Name, err)
	}
	return nil
}

// ConditionConfigurationApplied says whether every instance runs the
// manifest's configuration, or which one PostgreSQL refused and why (the
// admission webhook cannot run the server's own checks; each instance
// manager does, and keeps its last good configuration).
const ConditionConfigurationApplied = "ConfigurationApplied"

// configCondition sums up the instances' configuration errors; ok is false
// when no instance answered (nothing is known).
func configCondition(obs []observation, generation int64) (metav1.Condition, bool) {
	var refused []string
	answered := false
	for _, o := range obs {
		if o.wire == nil {
			continue
		}
		answered = true
		if o.wire.ConfigError != "" {
			refused = append(refused, o.plan.Name+": "+o.wire.ConfigError)
		}
	}
	if !answered {
		return metav1.Condition{}, false
	}
	slices.Sort(refused)
	if len(refused) == 0 {
		return metav1.Condition{Type: ConditionConfigurationApplied, Status: metav1.ConditionTrue, Reason: "Applied",
			Message: "every answering instance runs the manifest's configuration", ObservedGeneration: generation}, true
	}
	msg := strings.Join(refused, "; ")
	if len(msg) > 4096 {
		msg = msg[:4096]
	}
	return metav1.Condition{Type: ConditionConfigurationApplied, Status: metav1.ConditionFalse, Reason: "RefusedByPostgreSQL",
		Message: msg, ObservedGeneration: generation}, true
}

// summarize turns the planner's state into a phase and the Ready condition.
func summarize(c *v1.Cluster, mem plan.Memory, ready plan.Ready, readyCount int) (phase string, status metav1.ConditionStatus, reason, msg string) {
	n := c.Spec.Instances
	bootstrapping := slices.ContainsFunc(ready.Actions, func(a plan.Action) bool { return a.Kind == plan.ActionBootstrap })
	fenced, _ := c.Fenced()
	switch {
	case hibernating(c) && mem.Epoch > 0:
		return PhaseHibernated, metav1.ConditionFalse, "Hibernated",
			fmt.Sprintf("every instance is shut down on request (%s: on), its PVC kept; %d of %d answering", v1.HibernationAnnotation, readyCount, n)
	case mem.Epoch > 0 && (slices.Contains(fenced, mem.TargetPrimary) || slices.Contains(fenced, v1.FenceAll)):
		return PhaseDegraded, metav1.ConditionFalse, "PrimaryFenced",
			fmt.Sprintf("primary %s is fenced on request (%s): no writes, no failover until it is unfenced", mem.TargetPrimary, v1.FencedInstancesAnnotation)
	case mem.Epoch == 0 && !bootstrapping:
		return PhaseWaiting, metav1.ConditionFalse, "WaitingForInstances",
			fmt.Sprintf("%d of %d instances ready; the first primary is created once every instance answers", readyCount, n)
	case mem.CurrentPrimary == "":
		return PhaseSettingUp, metav1.ConditionFalse, "SettingUpPrimary",
			fmt.Sprintf("creating the first primary %s", mem.TargetPrimary)
	case mem.CurrentPrimary != mem.TargetPrimary:
		return PhaseFailingOver, metav1.ConditionFalse, "FailingOver",
			fmt.Sprintf("promoting %s in place of %s (epoch %d)", mem.TargetPrimary, mem.CurrentPrimary, mem.Epoch)
	case !mem.PrimaryUnhealthySince.IsZero():
		return PhaseDegraded, metav1.ConditionFalse, "PrimaryUnhealthy",
			fmt.Sprintf("primary %s is unhealthy", mem.TargetPrimary)
	case readyCount < n:
		return PhaseDegraded, metav1.ConditionFalse, "InstancesNotReady",
			fmt.Sprintf("%d of %d instances ready, primary %s", readyCount, n, mem.CurrentPrimary)
	}
	return PhaseHealthy, metav1.ConditionTrue, "ClusterReady",
		fmt.Sprintf("%d of %d instances ready, primary %s", readyCount, n, mem.CurrentPrimary)
}

// setCondition reports a reconcile that could not proceed. Messages come
// from pgward's own errors, which name objects and fields, never secret
// values.
func (r *ClusterReconciler) setCondition(ctx context.Context, c *v1.Cluster, phase string, status metav1.ConditionStatus, reason, msg string) error {
	before := c.DeepCopy()
	c.Status.Phase = phase
	meta.SetStatusCondition(&c.Status.Conditions, metav1.Condition{
		Type: ConditionReady, Status: status, Reason: reason, Message: msg, ObservedGeneration: c.Generation,
	})
	observeStatus(c)
	if equality.Semantic.DeepEqual(before.Status, c.Status) {
		return nil
	}
	if err := r.Client.Status().Patch(ctx, c, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("writing status of %s: %w", c.Name, err)
	}
	return nil
}
