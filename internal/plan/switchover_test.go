package plan_test

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/pgward/pgward/internal/plan"
	pt "github.com/pgward/pgward/internal/plan/plantest"
)

// TestSwitchoverSteps walks a switchover one observation at a time, with the
// target lagging behind the old primary's final WAL for one round.
func TestSwitchoverSteps(t *testing.T) {
	spec := three()
	mem := pt.Steady("c-1", 1, t0)
	mem.Switchover.To = "c-2"
	stopped := func(lsn plan.LSN) plan.InstanceStatus {
		s := pt.Dead(pt.Primary("c-1", 1, lsn))
		s.Fenced = true
		return s
	}
	steps := []struct {
		name string
		obs  []plan.InstanceStatus
		want []string
	}{{
		name: "request: the primary is shut down cleanly",
		obs:  []plan.InstanceStatus{pt.Primary("c-1", 1, l5), pt.Replica("c-2", "c-1", l4), pt.Replica("c-3", "c-1", l4)},
		want: []string{"demote c-1"},
	}, {
		name: "shutdown not seen yet: asked again",
		obs:  []plan.InstanceStatus{pt.Primary("c-1", 1, l5), pt.Replica("c-2", "c-1", l4), pt.Replica("c-3", "c-1", l4)},
		want: []string{"demote c-1", hold("switchover: waiting for c-1 to shut down")},
	}, {
		name: "stopped, its final WAL position not read yet: wait (0 is unknown, not the start)",
		obs:  []plan.InstanceStatus{stopped(0), pt.Replica("c-2", "", l5), pt.Replica("c-3", "", l4)},
		want: []string{hold("switchover: waiting for c-1 to report where its WAL ends")},
	}, {
		name: "stopped, target behind its final WAL: wait",
		obs:  []plan.InstanceStatus{stopped(l9), pt.Replica("c-2", "", l5), pt.Replica("c-3", "", l4)},
		want: []string{hold("switchover: c-2 has received 0/3000500 of c-1's final 0/3000900")},
	}, {
		name: "target caught up: promoted, the other follows",
		obs:  []plan.InstanceStatus{stopped(l9), pt.Replica("c-2", "", l9), pt.Replica("c-3", "", l5)},
		want: []string{"fence c-1", `promote c-2 epoch=2 sync=""`, "follow c-3 from=c-2"},
	}, {
		name: "promotion seen: old primary rejoins",
		obs: []plan.InstanceStatus{
			stopped(l9), onTimeline(pt.Primary("c-2", 2, l9), 2), onTimeline(pt.Replica("c-3", "c-2", l9), 2),
		},
		want: []string{"rejoin c-1 from=c-2"},
	}}
	now := t0
	for _, st := range steps {
		now = now.Add(time.Second)
		r := plan.Next(spec, mem, st.obs, now)
		if got := pt.Strings(r.Actions); !reflect.DeepEqual(got, st.want) {
			t.Fatalf("%s:\n got  %q\n want %q", st.name, got, st.want)
		}
		mem = r.Memory
	}
	if mem.Epoch != 2 || mem.TargetPrimary != "c-2" || mem.CurrentPrimary != "c-2" || mem.Switchover != (plan.Switchover{}) {
		t.Fatalf("final memory %+v", mem)
	}
}

func TestSwitchoverRefusedAndAborted(t *testing.T) {
	healthy := []plan.InstanceStatus{pt.Primary("c-1", 1, l5), pt.Replica("c-2", "c-1", l5), pt.Unreachable("c-3")}
	req := func(to string) plan.Memory {
		m := pt.Steady("c-1", 1, t0)
		m.Switchover.To = to
		return m
	}
	runCases(t, []nextCase{{
		name: "unknown instance: refused and cleared",
		spec: three(), mem: req("c-9"), obs: healthy, at: time.Second, event: plan.ReasonSwitchover,
		checkFn: func(t *testing.T, r plan.Ready) {
			if r.Memory.Switchover != (plan.Switchover{}) {
				t.Errorf("request kept: %+v", r.Memory.Switchover)
			}
		},
	}, {
		name: "target not streaming: wait, keep the request",
		spec: three(), mem: req("c-3"), obs: healthy, at: time.Second,
		want: []string{hold("switchover to c-3 waits until it is a replica streaming from c-1")},
		checkFn: func(t *testing.T, r plan.Ready) {
			if r.Memory.Switchover.To != "c-3" {
				t.Errorf("request dropped")
			}
		},
	}, {
		name: "target never caught up: old primary restarted",
		spec: three(), at: time.Minute,
		mem: func() plan.Memory {
			m := req("c-2")
			m.Switchover.From, m.Switchover.Since = "c-1", t0
			return m
		}(),
		obs: []plan.InstanceStatus{
			{Name: "c-1", Reachable: true, Fenced: true, Role: plan.RolePrimary, Epoch: 1, Timeline: 1, CurrentLSN: l9},
			pt.Replica("c-2", "", l5), pt.Unreachable("c-3"),
		},
		want: []string{"start c-1"}, epoch: 1, event: plan.ReasonSwitchover,
	}, {
		name: "old primary vanished during the shutdown: switchover dropped, failover rules apply",
		spec: three(), at: time.Second,
		mem: func() plan.Memory {
			m := req("c-2")
			m.Switchover.From, m.Switchover.Since = "c-1", t0
			return m
		}(),
		obs:  []plan.InstanceStatus{pt.Unreachable("c-1"), pt.Replica("c-2", "", l5), pt.Replica("c-3", "", l5)},
		want: []string{hold("primary c-1 has not answered for 1s")},
	}})
}

// TestSwitchoverSim runs a switchover against the simulated cluster, with
// required synchronous replication, and checks that no acknowledged write is
// lost and that there is one writable primary throughout.
func TestSwitchoverSim(t *testing.T) {
	spec := syncSpec(1, 2)
	sim := pt.NewSim(t0, 4*time.Second, "c-1", "c-2", "c-3")
	mem := settle(t, sim, spec, plan.Memory{})
	for range 5 {
		sim.Write()
	}
	mem.Switchover.To = "c-2"
	var kinds [][]plan.ActionKind
	for i := 0; i < 6; i++ {
		sim.Now = sim.Now.Add(200 * time.Millisecond)
		r, err := sim.Round(spec, mem)
		if err != nil {
			t.Fatal(err)
		}
		mem = r.Memory
		kinds = append(kinds, pt.Kinds(r.Actions))
		if w := sim.Writable(); len(w) > 1 {
			t.Fatalf("two writable primaries: %v", w)
		}
		sim.Write()
	}
	if mem.CurrentPrimary != "c-2" || mem.Epoch != 2 {
		t.Fatalf("memory %+v after rounds %v", mem, kinds)
	}
	if want := []plan.ActionKind{plan.ActionDemote}; !reflect.DeepEqual(kinds[0], want) {
		t.Errorf("first round %v, want %v", kinds[0], want)
	}
	if want := []plan.ActionKind{plan.ActionFence, plan.ActionPromote, plan.ActionFollow}; !reflect.DeepEqual(kinds[1], want) {
		t.Errorf("second round %v, want %v", kinds[1], want)
	}
	if lost := sim.Lost("c-2"); len(lost) > 0 {
		t.Fatalf("acknowledged writes lost: %v", lost)
	}
	if n := sim.Node("c-1"); n.Primary || n.Upstream != "c-2" || !n.Running {
		t.Fatalf("old primary did not rejoin: %+v (rounds %v)", n, kinds)
	}
}

// settle runs rounds until the planner asks for nothing more.
func settle(t *testing.T, sim *pt.Sim, spec plan.Spec, mem plan.Memory) plan.Memory {
	t.Helper()
	for i := 0; i < 20; i++ {
		sim.Now = sim.Now.Add(200 * time.Millisecond)
		r, err := sim.Round(spec, mem)
		if err != nil {
			t.Fatal(err)
		}
		mem = r.Memory
		if len(r.Actions) == 0 {
			return mem
		}
	}
	t.Fatalf("cluster did not settle: %+v", mem)
	return mem
}

func TestSwitchoverWithdrawn(t *testing.T) {
	mem := pt.Steady("c-1", 1, t0)
	mem.Switchover = plan.Switchover{From: "c-1", Since: t0}
	obs := []plan.InstanceStatus{
		{Name: "c-1", Reachable: true, Fenced: true, Role: plan.RolePrimary, Epoch: 1, Timeline: 1, CurrentLSN: l5},
		pt.Replica("c-2", "", l5), pt.Replica("c-3", "", l5),
	}
	r := plan.Next(three(), mem, obs, t0.Add(time.Second))
	if got := pt.Strings(r.Actions); !reflect.DeepEqual(got, []string{"start c-1"}) || r.Memory.Switchover != (plan.Switchover{}) {
		t.Fatalf("actions %q, switchover %+v", got, r.Memory.Switchover)
	}
}

// Every way a switchover request ends is reported, with the request's ID,
// so that whoever asked learns the outcome instead of waiting it out.
func TestSwitchoverOutcomes(t *testing.T) {
	healthy := []plan.InstanceStatus{pt.Primary("c-1", 1, l5), pt.Replica("c-2", "c-1", l5), pt.Replica("c-3", "c-1", l5)}
	stopped := plan.InstanceStatus{Name: "c-1", Reachable: true, Fenced: true, Role: plan.RolePrimary, Epoch: 1, Timeline: 1, CurrentLSN: l9}
	started := func(m plan.Memory) plan.Memory {
		m.Switchover.From, m.Switchover.Since = "c-1", t0
		return m
	}
	req := func(to string) plan.Memory {
		m := pt.Steady("c-1", 1, t0)
		m.Switchover = plan.Switchover{ID: "req-1", To: to}
		return m
	}
	for _, tc := range []struct {
		name   string
		mem    plan.Memory
		obs    []plan.InstanceStatus
		at     time.Duration
		result plan.SwitchoverResult
	}{
		{"to the primary itself", req("c-1"), healthy, time.Second, plan.SwitchoverDone},
		{"to no such instance", req("c-9"), healthy, time.Second, plan.SwitchoverRefused},
		{"target caught up", started(req("c-2")), []plan.InstanceStatus{stopped, pt.Replica("c-2", "", l9), pt.Replica("c-3", "", l5)},
			time.Second, plan.SwitchoverPromoting},
		{"target never caught up", started(req("c-2")), []plan.InstanceStatus{stopped, pt.Replica("c-2", "", l5), pt.Replica("c-3", "", l5)},
			time.Minute, plan.SwitchoverAborted},
		{"a failover first", req("c-3"), []plan.InstanceStatus{pt.Dead(pt.Primary("c-1", 1, l5)), pt.Replica("c-2", "c-1", l5), pt.Replica("c-3", "c-1", l4)},
			time.Second, plan.SwitchoverSuperseded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := plan.Next(three(), tc.mem, tc.obs, t0.Add(tc.at))
			o := r.SwitchoverOutcome
			if o == nil || o.ID != "req-1" || o.Result != tc.result {
				t.Fatalf("outcome %+v, want %s for req-1 (actions %q)", o, tc.result, pt.Strings(r.Actions))
			}
			if o.Result != plan.SwitchoverPromoting && o.Reason == "" {
				t.Errorf("no reason for %s", o.Result)
			}
			if r.Memory.Switchover != (plan.Switchover{}) {
				t.Errorf("request kept after its outcome: %+v", r.Memory.Switchover)
			}
		})
	}
	// A request still waiting for its target has no outcome yet.
	r := plan.Next(three(), req("c-2"), []plan.InstanceStatus{pt.Primary("c-1", 1, l5), pt.Replica("c-2", "", l5), pt.Replica("c-3", "c-1", l5)}, t0.Add(time.Second))
	if r.SwitchoverOutcome != nil || r.Memory.Switchover.ID != "req-1" {
		t.Fatalf("waiting request: outcome %+v, memory %+v", r.SwitchoverOutcome, r.Memory.Switchover)
	}
}

// TestTransitionInterval: with a TransitionInterval, every step of a
// switchover asks to be looked at again that soon (each step waits on what
// the next observation shows), and a settled cluster goes back to
// CheckInterval, so a healthy cluster costs no more than before.
func TestTransitionInterval(t *testing.T) {
	spec := syncSpec(1, 2)
	spec.CheckInterval = 2 * time.Second
	spec.TransitionInterval = 200 * time.Millisecond
	sim := pt.NewSim(t0, 4*time.Second, "c-1", "c-2", "c-3")
	mem := settle(t, sim, spec, plan.Memory{})
	r, err := sim.Round(spec, mem)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Actions) != 0 || r.RecheckAfter != spec.CheckInterval {
		t.Fatalf("settled: actions %v, recheck %v; want none and %v", pt.Strings(r.Actions), r.RecheckAfter, spec.CheckInterval)
	}
	mem = r.Memory
	mem.Switchover.To = "c-2"
	for i := 0; ; i++ {
		if i == 10 {
			t.Fatalf("the switchover did not settle: %+v", mem)
		}
		sim.Now = sim.Now.Add(200 * time.Millisecond)
		r, err := sim.Round(spec, mem)
		if err != nil {
			t.Fatal(err)
		}
		changing := slices.ContainsFunc(r.Actions, func(a plan.Action) bool { return a.Kind != plan.ActionHold }) ||
			r.Memory.Switchover.From != "" || r.Memory.CurrentPrimary != r.Memory.TargetPrimary
		if want := map[bool]time.Duration{true: spec.TransitionInterval, false: spec.CheckInterval}[changing]; r.RecheckAfter != want {
			t.Fatalf("round %d (actions %v, memory %+v): recheck %v, want %v", i, pt.Strings(r.Actions), r.Memory, r.RecheckAfter, want)
		}
		mem = r.Memory
		if !changing && mem.CurrentPrimary == "c-2" {
			break
		}
	}
	// A cluster that only waits (here: a new one whose instances do not
	// answer yet) is looked at every CheckInterval, not every
	// TransitionInterval: what it waits for wakes it.
	fresh := pt.NewSim(t0, 4*time.Second, "c-1", "c-2", "c-3")
	fresh.Node("c-3").Isolated = true
	r, err = fresh.Round(spec, plan.Memory{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Actions) != 1 || r.Actions[0].Kind != plan.ActionHold || r.RecheckAfter != spec.CheckInterval {
		t.Fatalf("waiting for instances: actions %v, recheck %v; want one hold and %v", pt.Strings(r.Actions), r.RecheckAfter, spec.CheckInterval)
	}
	spec.TransitionInterval = -time.Second
	if err := spec.Validate(); err == nil {
		t.Fatal("a negative TransitionInterval is accepted")
	}
}
