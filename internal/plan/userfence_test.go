package plan_test

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/pgward/pgward/internal/plan"
	pt "github.com/pgward/pgward/internal/plan/plantest"
)

func fencedObs(s plan.InstanceStatus) plan.InstanceStatus {
	s.Fenced, s.PostmasterRunning, s.StreamingFrom = true, false, ""
	return s
}

// TestUserFencing walks the user's fencing requests through a
// three-instance cluster, one decision at a time: a replica is shut down
// cleanly and kept down, the primary goes on; a fenced primary is not
// failed over however long it is down; unfencing starts each again in its
// role, the primary before anything else.
func TestUserFencing(t *testing.T) {
	mem := pt.Steady("c-1", 1, t0)
	steps := []struct {
		name   string
		fenced []string
		obs    []plan.InstanceStatus
		after  time.Duration
		want   []string
		userF  []string // Memory.UserFenced afterwards
	}{{
		name:   "fence a replica: a clean shutdown",
		fenced: []string{"c-2"},
		obs:    []plan.InstanceStatus{pt.Primary("c-1", 1, l5), pt.Replica("c-2", "c-1", l5), pt.Replica("c-3", "c-1", l5)},
		want:   []string{"demote c-2"},
		userF:  []string{"c-2"},
	}, {
		name:   "fenced replica down: left alone, the rest maintained",
		fenced: []string{"c-2"},
		obs:    []plan.InstanceStatus{pt.Primary("c-1", 1, l5), fencedObs(pt.Replica("c-2", "c-1", l5)), pt.Replica("c-3", "", l5)},
		want:   []string{"follow c-3 from=c-1"},
		userF:  []string{"c-2"},
	}, {
		name:   "fence the primary too",
		fenced: []string{"c-1", "c-2"},
		obs:    []plan.InstanceStatus{pt.Primary("c-1", 1, l5), fencedObs(pt.Replica("c-2", "c-1", l5)), pt.Replica("c-3", "c-1", l5)},
		want:   []string{"demote c-1", hold("primary c-1 is fenced on request: no failover while it is")},
		userF:  []string{"c-1", "c-2"},
	}, {
		name:   "a fenced primary is not failed over, a minute later",
		fenced: []string{"c-1", "c-2"},
		obs:    []plan.InstanceStatus{fencedObs(pt.Primary("c-1", 1, l5)), fencedObs(pt.Replica("c-2", "c-1", l5)), pt.Replica("c-3", "", l5)},
		after:  time.Minute,
		want:   []string{hold("primary c-1 is fenced on request: no failover while it is")},
		userF:  []string{"c-1", "c-2"},
	}, {
		name:   "nor while its manager is unreachable",
		fenced: []string{"c-1", "c-2"},
		obs:    []plan.InstanceStatus{pt.Unreachable("c-1"), fencedObs(pt.Replica("c-2", "c-1", l5)), pt.Replica("c-3", "", l5)},
		after:  time.Minute,
		want:   []string{hold("primary c-1 is fenced on request: no failover while it is")},
		userF:  []string{"c-1", "c-2"},
	}, {
		name:  "unfence all: the primary and the replica start in their roles",
		obs:   []plan.InstanceStatus{fencedObs(pt.Primary("c-1", 1, l5)), fencedObs(pt.Replica("c-2", "c-1", l5)), pt.Replica("c-3", "", l5)},
		want:  []string{"start c-1", "start c-2", hold("primary c-1 is being started again after its fencing or hibernation")},
		userF: []string{"c-1", "c-2"},
	}, {
		name:  "the primary runs: the usual maintenance, the memory forgets it",
		obs:   []plan.InstanceStatus{pt.Primary("c-1", 1, l5), pt.Replica("c-2", "", l5), pt.Replica("c-3", "", l5)},
		want:  []string{"follow c-2 from=c-1", "follow c-3 from=c-1"},
		userF: nil,
	}}
	now := t0
	for _, st := range steps {
		now = now.Add(time.Second + st.after)
		spec := three()
		spec.Fenced = st.fenced
		r := plan.Next(spec, mem, st.obs, now)
		if got := pt.Strings(r.Actions); !reflect.DeepEqual(got, st.want) {
			t.Fatalf("%s:\n got  %q\n want %q", st.name, got, st.want)
		}
		if !reflect.DeepEqual(r.Memory.UserFenced, st.userF) {
			t.Fatalf("%s: UserFenced %q, want %q", st.name, r.Memory.UserFenced, st.userF)
		}
		if r.Memory.TargetPrimary != "c-1" || r.Memory.Epoch != 1 || !r.Memory.PrimaryUnhealthySince.IsZero() {
			t.Fatalf("%s: memory %+v: no failover was due", st.name, r.Memory)
		}
		mem = r.Memory
	}
}

func TestUserFencingCases(t *testing.T) {
	healthy := []plan.InstanceStatus{pt.Primary("c-1", 1, l5), pt.Replica("c-2", "c-1", l5), pt.Replica("c-3", "c-1", l5)}
	withUserFenced := func(m plan.Memory, n ...string) plan.Memory { m.UserFenced = n; return m }
	runCases(t, []nextCase{{
		name: "fence all with *: every instance, the primary first",
		spec: func() plan.Spec { s := three(); s.Fenced = []string{plan.FenceAll}; return s }(),
		mem:  pt.Steady("c-1", 1, t0), obs: healthy, at: time.Second,
		want: []string{"demote c-1", "demote c-2", "demote c-3", hold("primary c-1 is fenced on request: no failover while it is")},
	}, {
		name: "hibernation: every instance, the primary first",
		spec: func() plan.Spec { s := three(); s.Hibernate = true; return s }(),
		mem:  pt.Steady("c-2", 2, t0),
		obs:  []plan.InstanceStatus{pt.Replica("c-1", "c-2", l5), pt.Primary("c-2", 2, l5), pt.Replica("c-3", "c-2", l5)}, at: time.Second,
		want:  []string{"demote c-2", "demote c-1", "demote c-3", hold("hibernated: every instance is kept down (cnpg.io/hibernation=on)")},
		event: plan.ReasonHibernation,
	}, {
		name: "hibernated with the pods gone: nothing to do, no failover",
		spec: func() plan.Spec { s := three(); s.Hibernate = true; return s }(),
		mem:  withUserFenced(pt.Steady("c-1", 1, t0), "c-1", "c-2", "c-3"),
		obs:  []plan.InstanceStatus{pt.Unreachable("c-1"), pt.Unreachable("c-2"), pt.Unreachable("c-3")}, at: time.Hour,
		want: []string{hold("hibernated: every instance is kept down (cnpg.io/hibernation=on)")},
	}, {
		name: "hibernation lifted, pods back: the same primary starts first",
		spec: three(),
		mem:  withUserFenced(pt.Steady("c-1", 1, t0), "c-1", "c-2", "c-3"),
		obs: []plan.InstanceStatus{fencedObs(pt.Primary("c-1", 1, l5)), fencedObs(pt.Replica("c-2", "c-1", l5)),
			fencedObs(pt.Replica("c-3", "c-1", l5))}, at: time.Hour,
		want:  []string{"start c-1", "start c-2", "start c-3", hold("primary c-1 is being started again after its fencing or hibernation")},
		event: plan.ReasonUnfenced,
	}, {
		name: "hibernation lifted, the primary's pod not back yet: wait, no failover",
		spec: three(),
		mem:  withUserFenced(pt.Steady("c-1", 1, t0), "c-1", "c-2", "c-3"),
		obs: []plan.InstanceStatus{pt.Unreachable("c-1"), fencedObs(pt.Replica("c-2", "c-1", l5)),
			fencedObs(pt.Replica("c-3", "c-1", l5))}, at: time.Hour,
		want: []string{"start c-2", "start c-3", hold("primary c-1 is being started again after its fencing or hibernation")},
	}, {
		name: "a fenced replica is never a failover candidate",
		spec: func() plan.Spec { s := three(); s.Fenced = []string{"c-3"}; return s }(),
		mem:  withUserFenced(pt.Steady("c-1", 1, t0), "c-3"),
		obs:  []plan.InstanceStatus{pt.Dead(pt.Primary("c-1", 1, l5)), pt.Replica("c-2", "", l4), fencedObs(pt.Replica("c-3", "c-1", l5))}, at: time.Second,
		want: []string{"fence c-1", "promote c-2 epoch=2 sync=\"\""},
	}, {
		name: "unfencing a former primary after a failover: rejoined, not started as a primary",
		spec: three(),
		mem:  withUserFenced(pt.Steady("c-2", 2, t0), "c-1"),
		obs:  []plan.InstanceStatus{fencedObs(pt.Primary("c-1", 1, l5)), pt.Primary("c-2", 2, l9), pt.Replica("c-3", "c-2", l9)}, at: time.Second,
		want: []string{"rejoin c-1 from=c-2"},
		checkFn: func(t *testing.T, r plan.Ready) {
			if slices.Contains(r.Memory.UserFenced, "c-1") {
				t.Errorf("UserFenced still holds c-1: %q", r.Memory.UserFenced)
			}
		},
	}})
}

// TestSimFenceAndHibernate runs the whole cycle on the simulated cluster:
// writes go on with a replica fenced, nothing is lost and no second primary
// appears while the primary is fenced, and the same primary takes writes
// again after hibernation.
func TestSimFenceAndHibernate(t *testing.T) {
	spec := fenceSpec(t, 4*time.Second, "c-1", "c-2", "c-3")
	sim := pt.NewSim(t0, 4*time.Second, "c-1", "c-2", "c-3")
	mem := settle(t, sim, spec, plan.Memory{})
	fenced := spec
	fenced.Fenced = []string{"c-2"}
	mem = run(t, sim, fenced, mem, 5*time.Second, 250*time.Millisecond)
	if n := sim.Node("c-2"); n.Running || !n.Fenced {
		t.Fatalf("fenced replica: %+v", n)
	}
	if w := sim.Writable(); !reflect.DeepEqual(w, []string{"c-1"}) {
		t.Fatalf("writable with a replica fenced: %v", w)
	}
	fenced.Fenced = []string{"c-1"}
	mem = run(t, sim, fenced, mem, 30*time.Second, 250*time.Millisecond)
	if w := sim.Writable(); len(w) != 0 || mem.TargetPrimary != "c-1" {
		t.Fatalf("primary fenced: writable %v, target %s", w, mem.TargetPrimary)
	}
	hib := spec
	hib.Hibernate = true
	mem = run(t, sim, hib, mem, 5*time.Second, 250*time.Millisecond)
	for _, n := range []string{"c-1", "c-2", "c-3"} {
		if sim.Node(n).Running {
			t.Fatalf("%s runs while hibernated", n)
		}
	}
	mem = run(t, sim, spec, mem, 10*time.Second, 250*time.Millisecond)
	if w := sim.Writable(); !reflect.DeepEqual(w, []string{"c-1"}) || mem.Epoch != 1 || len(mem.UserFenced) != 0 {
		t.Fatalf("after hibernation: writable %v, memory %+v", w, mem)
	}
	for _, n := range []string{"c-2", "c-3"} {
		if nd := sim.Node(n); !nd.Running || nd.Upstream != "c-1" {
			t.Fatalf("%s after hibernation: %+v", n, nd)
		}
	}
	if lost := sim.Lost("c-1"); len(lost) > 0 {
		t.Fatalf("writes lost: %v", lost)
	}
}

func TestHibernated(t *testing.T) {
	hib := three()
	hib.Hibernate = true
	all := plan.Memory{UserFenced: []string{"c-1", "c-2", "c-3"}}
	down := []plan.InstanceStatus{fencedObs(pt.Primary("c-1", 1, l5)), fencedObs(pt.Replica("c-2", "c-1", l5)), pt.Unreachable("c-3")}
	for _, c := range []struct {
		name string
		spec plan.Spec
		mem  plan.Memory
		obs  []plan.InstanceStatus
		want bool
	}{
		{"all down or gone", hib, all, down, true},
		{"not hibernating", three(), all, down, false},
		{"one still running", hib, all, []plan.InstanceStatus{down[0], pt.Replica("c-2", "c-1", l5), down[2]}, false},
		{"stopped but not fenced (crashed, not shut down on request)", hib, all, []plan.InstanceStatus{down[0], pt.Dead(pt.Replica("c-2", "c-1", l5)), down[2]}, false},
		{"one not yet stopped by the planner", hib, plan.Memory{UserFenced: []string{"c-1", "c-2"}}, down, false},
	} {
		if got := plan.Hibernated(c.spec, c.mem, c.obs); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
