package plan_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/internal/plan"
	pt "github.com/pgward/pgward/internal/plan/plantest"
)

func unroutable(s plan.InstanceStatus) plan.InstanceStatus {
	s.Unroutable = true
	return s
}

// TestSwitchoverWaitsForRoute: a planned switchover keeps the primary
// running while clients cannot be routed to its target (on real pods the
// first switchover of a new cluster promoted a pod not Ready yet, and
// clients hung to their connect timeout: docs/benchmarks.md), and goes on
// as soon as they can, or after Spec.RouteWait, saying so.
func TestSwitchoverWaitsForRoute(t *testing.T) {
	type step struct {
		at     time.Duration
		target plan.InstanceStatus
		want   []string
		warn   bool // a Warning event says it went ahead unrouted
	}
	waiting := func(left string) string {
		return hold("switchover to c-2 waits until clients can be routed to it (on Kubernetes: its pod is not Ready yet), at most " + left + " more")
	}
	for _, tc := range []struct {
		name  string
		id    string
		since time.Duration // a stored wait start, from t0
		steps []step
	}{{
		name: "routable at once: no wait",
		steps: []step{
			{at: time.Second, target: pt.Replica("c-2", "c-1", l5), want: []string{"demote c-1"}},
		},
	}, {
		name: "not routable, then routable: waits, then shuts the primary down",
		steps: []step{
			{at: time.Second, target: unroutable(pt.Replica("c-2", "c-1", l5)), want: []string{waiting("5s")}},
			{at: 2500 * time.Millisecond, target: unroutable(pt.Replica("c-2", "c-1", l5)), want: []string{waiting("3.5s")}},
			{at: 3 * time.Second, target: pt.Replica("c-2", "c-1", l5), want: []string{"demote c-1"}},
		},
	}, {
		name: "never routable: bounded, then goes ahead with a warning",
		steps: []step{
			{at: time.Second, target: unroutable(pt.Replica("c-2", "c-1", l5)), want: []string{waiting("5s")}},
			{at: 5900 * time.Millisecond, target: unroutable(pt.Replica("c-2", "c-1", l5)), want: []string{waiting("100ms")}},
			{at: 6 * time.Second, target: unroutable(pt.Replica("c-2", "c-1", l5)), want: []string{"demote c-1"}, warn: true},
		},
	}, {
		name: "the wait starts when the target streams, not when it was asked",
		steps: []step{
			{at: time.Second, target: unroutable(pt.Replica("c-2", "", l5)), want: []string{hold("switchover to c-2 waits until it is a replica streaming from c-1"), "follow c-2 from=c-1"}},
			{at: 7 * time.Second, target: unroutable(pt.Replica("c-2", "c-1", l5)), want: []string{waiting("5s")}},
			{at: 8 * time.Second, target: pt.Replica("c-2", "c-1", l5), want: []string{"demote c-1"}},
		},
	}, {
		name: "a rolling update's switchover waits the same way",
		id:   "rolling-update",
		steps: []step{
			{at: time.Second, target: unroutable(pt.Replica("c-2", "c-1", l5)), want: []string{waiting("5s")}},
			{at: 2 * time.Second, target: pt.Replica("c-2", "c-1", l5), want: []string{"demote c-1"}},
		},
	}, {
		name:  "a wait start stored ahead of the clock (another leader's): still bounded from now",
		since: time.Hour,
		steps: []step{
			{at: time.Second, target: unroutable(pt.Replica("c-2", "c-1", l5)), want: []string{waiting("5s")}},
			{at: 6 * time.Second, target: unroutable(pt.Replica("c-2", "c-1", l5)), want: []string{"demote c-1"}, warn: true},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			mem := pt.Steady("c-1", 1, t0)
			mem.Switchover = plan.Switchover{ID: tc.id, To: "c-2"}
			if tc.since != 0 {
				mem.Switchover.Since = t0.Add(tc.since)
			}
			for i, st := range tc.steps {
				now := t0.Add(st.at)
				obs := []plan.InstanceStatus{pt.Primary("c-1", 1, l5), st.target, pt.Replica("c-3", "c-1", l5)}
				r := plan.Next(three(), mem, obs, now)
				if got := pt.Strings(r.Actions); !reflect.DeepEqual(got, st.want) {
					t.Fatalf("step %d:\n got  %q\n want %q", i, got, st.want)
				}
				warned := false
				for _, e := range r.Events {
					warned = warned || (e.Warning && strings.Contains(e.Message, "goes ahead although clients cannot be routed"))
				}
				if warned != st.warn {
					t.Fatalf("step %d: warned %v, want %v (events %v)", i, warned, st.warn, r.Events)
				}
				if r.Actions[0].Kind == plan.ActionHold && strings.Contains(r.Actions[0].Reason, "routed") &&
					r.RecheckAfter > now.Sub(t0)+plan.DefaultRouteWait {
					t.Fatalf("step %d: recheck after %s, past the wait's end", i, r.RecheckAfter)
				}
				mem = r.Memory
			}
			if mem.Switchover.From != "c-1" || !mem.Switchover.Since.Equal(t0.Add(tc.steps[len(tc.steps)-1].at)) {
				t.Fatalf("switchover not under way from the last step: %+v", mem.Switchover)
			}
		})
	}
}

// TestRollingUpdateRouteWaitRestartsPrimaryOnce: a rolling restart's
// switchover held for its target's route still counts the primary
// restarted when it finally shuts it down, or the old primary, rejoined,
// would be restarted a second time.
func TestRollingUpdateRouteWaitRestartsPrimaryOnce(t *testing.T) {
	spec := three()
	mem, err := plan.RequestRestart(spec, pt.Steady("c-1", 1, t0), "c-1")
	if err != nil {
		t.Fatal(err)
	}
	obs := []plan.InstanceStatus{pt.Primary("c-1", 1, l5), unroutable(pt.Replica("c-2", "c-1", l5)), pt.Replica("c-3", "c-1", l4)}
	r := plan.Next(spec, mem, obs, t0.Add(time.Second))
	if r.Memory.Switchover.To != "c-2" || r.Memory.Switchover.From != "" || len(r.Memory.RestartPending) != 1 {
		t.Fatalf("held: actions %q, memory %+v", pt.Strings(r.Actions), r.Memory)
	}
	obs[1].Unroutable = false
	r = plan.Next(spec, r.Memory, obs, t0.Add(2*time.Second))
	if got := pt.Strings(r.Actions); !reflect.DeepEqual(got, []string{"demote c-1"}) || len(r.Memory.RestartPending) != 0 {
		t.Fatalf("released: actions %q, pending %q", got, r.Memory.RestartPending)
	}
}

// TestFailoverPrefersRoutableOnlyAmongEquals: a failover never trades
// data for a route; only between candidates holding the same WAL does the
// routable one go first.
func TestFailoverPrefersRoutableOnlyAmongEquals(t *testing.T) {
	steady := pt.Steady("c-1", 1, t0)
	steady.PrimaryLastLSN = l5
	sync := syncSpec(1, 2)
	syncMem := steady
	syncMem.SyncStandbys = []plan.SyncConfig{{Method: plan.SyncAny, Num: 1, Names: []string{"c-2", "c-3"}}}
	replayed := func(s plan.InstanceStatus, l plan.LSN) plan.InstanceStatus {
		s.ReplayedLSN = l
		return s
	}
	runCases(t, []nextCase{{
		// The pod recreated in the round before, not Ready yet, holds
		// the same WAL as a Ready one: the Ready one serves at once.
		name: "same WAL: the routable one, even if it replayed less",
		spec: three(), mem: steady, at: time.Second,
		obs: []plan.InstanceStatus{
			pt.Dead(pt.Primary("c-1", 1, l5)),
			replayed(unroutable(pt.Replica("c-2", "", l5)), l5),
			replayed(pt.Replica("c-3", "", l5), l4),
		},
		want:  []string{"fence c-1", `promote c-3 epoch=2 sync=""`, "follow c-2 from=c-3"},
		event: plan.ReasonRoutableCandidate,
	}, {
		name: "more WAL but unroutable: data first",
		spec: three(), mem: steady, at: time.Second,
		obs: []plan.InstanceStatus{
			pt.Dead(pt.Primary("c-1", 1, l5)), unroutable(pt.Replica("c-2", "", l5)), pt.Replica("c-3", "", l4),
		},
		want: []string{"fence c-1", `promote c-2 epoch=2 sync=""`, "follow c-3 from=c-2"},
	}, {
		name: "newer timeline but unroutable: data first",
		spec: three(), mem: steady, at: time.Second,
		obs: []plan.InstanceStatus{
			pt.Dead(pt.Primary("c-1", 1, l5)), onTimeline(unroutable(pt.Replica("c-2", "", l4)), 2), pt.Replica("c-3", "", l4),
		},
		want: []string{"fence c-1", `promote c-2 epoch=2 sync=""`, "follow c-3 from=c-2"},
	}, {
		name: "synchronous: the standby holding more acknowledged WAL wins over a routable one",
		spec: sync, mem: syncMem, at: time.Second,
		obs: []plan.InstanceStatus{
			pt.Dead(pt.Primary("c-1", 1, l5)), unroutable(pt.Replica("c-2", "", l5)), pt.Replica("c-3", "", l4),
		},
		want: []string{"fence c-1", `promote c-2 epoch=2 sync="ANY 1 (\"c-3\")"`, "follow c-3 from=c-2"},
	}})
}
