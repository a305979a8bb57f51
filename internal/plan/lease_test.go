package plan_test

import (
	"testing"
	"time"

	"github.com/pgward/pgward/internal/plan"
	pt "github.com/pgward/pgward/internal/plan/plantest"
)

// TestNextLeaseAndContact: on Kubernetes an unreachable primary may still
// be renewing its lease, which restarts its self-fencing timer like an
// answered status request. A replacement is promoted only once both the
// last answer and the last renewal seen are the bound (10 s) old. Steady
// memory has the primary last answering at t0.
func TestNextLeaseAndContact(t *testing.T) {
	steady := pt.Steady("c-1", 1, t0)
	lease := func(seen time.Duration) plan.InstanceStatus {
		s := pt.Unreachable("c-1")
		s.LeaseSeen = t0.Add(seen)
		return s
	}
	replicas := []plan.InstanceStatus{pt.Replica("c-2", "", l5), pt.Replica("c-3", "", l4)}
	obs := func(primary plan.InstanceStatus) []plan.InstanceStatus {
		return append([]plan.InstanceStatus{primary}, replicas...)
	}
	promoted := []string{`promote c-2 epoch=2 sync=""`, "follow c-3 from=c-2"}
	runCases(t, []nextCase{{
		name: "contact silent, lease silent: promoted",
		spec: three(), mem: steady, at: 12 * time.Second,
		obs:  obs(lease(time.Second)),
		want: promoted, epoch: 2, target: "c-2",
	}, {
		name: "contact silent, lease renewed recently (operator cut off, API server up): hold",
		spec: three(), mem: steady, at: 12 * time.Second,
		obs:  obs(lease(9 * time.Second)),
		want: []string{hold("c-1 has not answered for 12s but renewed its lease 3s ago and may still accept writes until the self-fencing bound 10s has passed")},
		checkFn: func(t *testing.T, r plan.Ready) {
			if r.RecheckAfter != time.Second || r.Memory.Epoch != 1 {
				t.Errorf("recheck %v, epoch %d: want a look when the lease's bound ends (7s, capped by the check interval), same epoch", r.RecheckAfter, r.Memory.Epoch)
			}
		},
	}, {
		name: "contact recent, lease silent (API server down, operator up): hold",
		spec: three(), mem: func() plan.Memory { m := steady; m.PrimaryLastSeen = t0.Add(8 * time.Second); return m }(), at: 12 * time.Second,
		obs:  obs(lease(0)),
		want: []string{hold("c-1 has not answered for 4s and may still accept writes until the self-fencing bound 10s has passed")},
	}, {
		name: "no lease in this runtime (local): the direct contact alone decides",
		spec: three(), mem: steady, at: 10 * time.Second,
		obs:  obs(pt.Unreachable("c-1")),
		want: promoted,
	}, {
		name: "operator restarted without history: the lease counts from its first read, so it waits the whole bound",
		// Resume made the primary "seen" at the restart (t0+20s); the first
		// read of the lease is at t0+20s too, whatever renewTime it holds.
		spec: three(), mem: func() plan.Memory { m := steady; m.PrimaryLastSeen = t0.Add(20 * time.Second); return m }(), at: 29 * time.Second,
		obs:  obs(lease(20 * time.Second)),
		want: []string{hold("c-1 has not answered for 9s and may still accept writes until the self-fencing bound 10s has passed")},
	}, {
		name: "operator restarted without history, bound passed since its first read: promoted",
		spec: three(), mem: func() plan.Memory { m := steady; m.PrimaryLastSeen = t0.Add(20 * time.Second); return m }(), at: 30 * time.Second,
		obs:  obs(lease(20 * time.Second)),
		want: promoted,
	}, {
		name: "lease renewed, no self-fencing bound: still blocks",
		spec: func() plan.Spec { s := three(); s.SelfFenceBound = 0; return s }(), mem: steady, at: time.Hour,
		obs:  obs(lease(time.Minute)),
		want: []string{hold("c-1 has not answered for 1h0m0s but renewed its lease 59m0s ago and may still accept writes; with no self-fencing bound it must be fenced or confirmed dead")},
	}})
}
