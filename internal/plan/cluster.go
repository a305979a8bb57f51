package plan

import (
	"fmt"
	"time"

	v1 "github.com/pgward/pgward/api/v1"
)

// SpecFromCluster returns the planner's view of c, whose instances the
// runtime names names (one per instance, bootstrap instance first). It
// copies what the Cluster says; the timings it does not carry yet
// (FailoverDelay, SelfFenceBound, UnreachableTimeout, ...) are the runtime's
// to set on the result.
func SpecFromCluster(c *v1.Cluster, names []string) (Spec, error) {
	if len(names) != c.Spec.Instances {
		return Spec{}, fmt.Errorf("cluster %s has %d instances but %d names were given", c.Name, c.Spec.Instances, len(names))
	}
	fenced, err := c.Fenced()
	if err != nil {
		return Spec{}, fmt.Errorf("%s: %w", v1.FencedInstancesAnnotation, err)
	}
	hibernate, err := c.Hibernated()
	if err != nil {
		return Spec{}, fmt.Errorf("%s: %w", v1.HibernationAnnotation, err)
	}
	lo, hi, method := c.Spec.SyncBounds()
	s := Spec{
		Instances:       append([]string(nil), names...),
		MinSyncReplicas: lo,
		MaxSyncReplicas: hi,
		SyncMethod:      SyncMethod(method),
		FailoverDelay:   time.Duration(c.Spec.FailoverDelay) * time.Second,
		// CloudNativePG's names; pgward switches over by default (a pause
		// under a second, where a restart in place stops writes longer).
		SupervisedPrimaryUpdate: c.Spec.PrimaryUpdateStrategy == "supervised",
		RestartPrimaryInPlace:   c.Spec.PrimaryUpdateMethod == "restart",
		FailoverQuorum:          c.Spec.FailoverQuorum(),
		ReplicaCluster:          c.IsReplica(),
		Fenced:                  fenced,
		Hibernate:               hibernate,
	}
	// spec.switchoverDelay is the old primary's time to shut down: the
	// switchover waits for it, then as long as ever for the catch-up.
	if d := c.Spec.SwitchoverDelay(); d > 0 {
		s.SwitchoverTimeout = d + DefaultSwitchoverTimeout
	}
	return s, s.Validate()
}
