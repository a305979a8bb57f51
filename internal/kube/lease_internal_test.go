package kube

import (
	"testing"
	"time"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/plan"
)

// TestTakeoverAllowed is step 7's rule for moving the Lease to the
// instance being promoted.
func TestTakeoverAllowed(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	const bound = 9 * time.Second
	up := plan.InstanceStatus{Name: "c-1", Reachable: true, PostmasterRunning: true, Role: plan.RolePrimary}
	fenced, stopped, replica, unknown := up, up, up, up
	fenced.Fenced, stopped.PostmasterRunning, replica.Role, unknown.Role = true, false, plan.RoleReplica, plan.RoleUnknown
	for _, c := range []struct {
		name    string
		holder  string
		seen    time.Duration // before now
		status  plan.InstanceStatus
		allowed bool
	}{
		{"already held by the new primary", "c-2", 0, up, true},
		{"no holder", "", 0, plan.InstanceStatus{Name: ""}, true},
		{"holder silent for the bound", "c-1", bound, plan.InstanceStatus{Name: "c-1"}, true},
		{"holder renewed within the bound, unreachable", "c-1", bound - time.Millisecond, plan.InstanceStatus{Name: "c-1"}, false},
		{"holder renewed within the bound, answering as a writable primary", "c-1", time.Second, up, false},
		{"holder renewed recently but reports itself fenced (switchover, fence)", "c-1", 0, fenced, true},
		{"holder renewed recently but reports postgres stopped", "c-1", 0, stopped, true},
		{"holder renewed recently but reports itself a replica", "c-1", 0, replica, true},
		{"holder renewed recently, running with its role unknown (it may be a primary)", "c-1", 0, unknown, false},
		{"another instance's status does not count", "c-1", 0, plan.InstanceStatus{Name: "c-3", Reachable: true, Fenced: true}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			why := takeoverAllowed(c.holder, "c-2", t0.Add(-c.seen), t0, bound, c.status)
			if (why == "") != c.allowed {
				t.Errorf("allowed %v (%q), want %v", why == "", why, c.allowed)
			}
		})
	}
}

// TestPrimarySelfFence: the bound covers what the primary's manager was
// started with, which an operator upgrade or a changed --self-fence does
// not change until its pod restarts.
func TestPrimarySelfFence(t *testing.T) {
	c := &v1.Cluster{}
	c.Namespace, c.Name = "ns", "c"
	for _, tc := range []struct {
		name     string
		reported map[string]time.Duration
		want     time.Duration
	}{
		{"nothing reported since the operator started: the legacy 30 s", nil, LegacySelfFence},
		{"another instance's report does not count", map[string]time.Duration{"c-2": 4 * time.Second}, LegacySelfFence},
		{"the primary reports the operator's 3 s", map[string]time.Duration{"c-1": 3 * time.Second}, 3 * time.Second},
		{"the primary was started with a longer one (an older --self-fence)", map[string]time.Duration{"c-1": 20 * time.Second}, 20 * time.Second},
		{"never less than the operator's own", map[string]time.Duration{"c-1": time.Second}, 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &ClusterReconciler{Timing: DefaultTiming()}
			if tc.reported != nil {
				r.selfFences = map[string]map[string]time.Duration{"ns/c": tc.reported}
			}
			if got := r.primarySelfFence(c, "c-1"); got != tc.want {
				t.Errorf("self-fence %v, want %v", got, tc.want)
			}
		})
	}
}
