// Package plantest builds instance statuses for tests of package plan, and
// simulates a cluster that runs the planner's actions (see Sim).
package plantest

import (
	"time"

	"github.com/pgward/pgward/internal/plan"
)

// Base is the WAL position of an empty cluster in these fixtures.
const Base plan.LSN = 0x3000000

// Spec returns a spec for the named instances with a 10 s self-fencing bound
// and the planner's other defaults.
func Spec(names ...string) plan.Spec {
	return plan.Spec{Instances: names, SelfFenceBound: 10 * time.Second}
}

// Primary returns a healthy primary on timeline 1 at epoch, writing at lsn.
func Primary(name string, epoch uint64, lsn plan.LSN) plan.InstanceStatus {
	return plan.InstanceStatus{
		Name: name, Reachable: true, PostmasterRunning: true, Role: plan.RolePrimary,
		Epoch: epoch, Timeline: 1, CurrentLSN: lsn,
	}
}

// Replica returns a running replica on timeline 1 that has received and
// replayed lsn, streaming from upstream ("" for not streaming).
func Replica(name, upstream string, lsn plan.LSN) plan.InstanceStatus {
	return plan.InstanceStatus{
		Name: name, Reachable: true, PostmasterRunning: true, Role: plan.RoleReplica,
		Timeline: 1, ReceivedLSN: lsn, ReplayedLSN: lsn, StreamingFrom: upstream,
	}
}

// Dead returns s as its instance manager reports it after postgres died.
func Dead(s plan.InstanceStatus) plan.InstanceStatus {
	s.PostmasterRunning = false
	s.StreamingFrom = ""
	return s
}

// Unreachable returns the record of an instance that did not answer.
func Unreachable(name string) plan.InstanceStatus {
	return plan.InstanceStatus{Name: name}
}

// Empty returns an instance whose manager answers with no data directory.
func Empty(name string) plan.InstanceStatus {
	return plan.InstanceStatus{Name: name, Reachable: true, Empty: true, Role: plan.RoleUnknown}
}

// Steady returns the memory of a cluster whose primary has been healthy at
// epoch, last seen at seen.
func Steady(primary string, epoch uint64, seen time.Time) plan.Memory {
	return plan.Memory{Epoch: epoch, TargetPrimary: primary, CurrentPrimary: primary, PrimaryLastSeen: seen}
}

// Kinds returns the kinds of actions, for compact assertions.
func Kinds(actions []plan.Action) []plan.ActionKind {
	out := make([]plan.ActionKind, len(actions))
	for i, a := range actions {
		out[i] = a.Kind
	}
	return out
}

// Strings renders actions one per element.
func Strings(actions []plan.Action) []string {
	out := make([]string, len(actions))
	for i, a := range actions {
		out[i] = a.String()
	}
	return out
}
