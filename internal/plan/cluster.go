package plan

import (
	"fmt"

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
	s := Spec{
		Instances:       append([]string(nil), names...),
		MinSyncReplicas: c.Spec.MinSyncReplicas,
		MaxSyncReplicas: c.Spec.MaxSyncReplicas,
	}
	return s, s.Validate()
}
