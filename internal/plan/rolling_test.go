package plan_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/pgward/pgward/internal/plan"
	pt "github.com/pgward/pgward/internal/plan/plantest"
)

// TestRollingRestart walks a change that needs a restart through a
// three-instance cluster: the replicas one at a time, each back streaming
// before the next, then a switchover to an updated replica; never more
// than one instance down.
func TestRollingRestart(t *testing.T) {
	spec := three()
	mem := pt.Steady("c-1", 1, t0)
	pending := func(s plan.InstanceStatus) plan.InstanceStatus { s.PendingRestart = true; return s }
	restarting := func(s plan.InstanceStatus) plan.InstanceStatus {
		s.Restarting, s.PostmasterRunning, s.StreamingFrom = true, false, ""
		return s
	}
	steps := []struct {
		name string
		obs  []plan.InstanceStatus
		want []string
	}{{
		name: "all pending: the first replica restarts",
		obs:  []plan.InstanceStatus{pending(pt.Primary("c-1", 1, l5)), pending(pt.Replica("c-2", "c-1", l5)), pending(pt.Replica("c-3", "c-1", l5))},
		want: []string{"restart c-2"},
	}, {
		name: "while it restarts: nothing else (one down at most)",
		obs:  []plan.InstanceStatus{pending(pt.Primary("c-1", 1, l5)), restarting(pt.Replica("c-2", "c-1", l5)), pending(pt.Replica("c-3", "c-1", l5))},
		want: []string{},
	}, {
		name: "back streaming: the next replica",
		obs:  []plan.InstanceStatus{pending(pt.Primary("c-1", 1, l5)), pt.Replica("c-2", "c-1", l5), pending(pt.Replica("c-3", "c-1", l5))},
		want: []string{"restart c-3"},
	}, {
		name: "not streaming yet after its restart: wait",
		obs:  []plan.InstanceStatus{pending(pt.Primary("c-1", 1, l5)), pt.Replica("c-2", "c-1", l5), pt.Replica("c-3", "", l5)},
		want: []string{"follow c-3 from=c-1"},
	}, {
		name: "replicas done: switch over to the most advanced",
		obs:  []plan.InstanceStatus{pending(pt.Primary("c-1", 1, l9)), pt.Replica("c-2", "c-1", l5), pt.Replica("c-3", "c-1", l9)},
		want: []string{"demote c-1"},
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
	if mem.Switchover.To != "c-3" || mem.Switchover.From != "c-1" {
		t.Fatalf("switchover in memory: %+v", mem.Switchover)
	}
}

func TestRollingRestartPrimaryOptions(t *testing.T) {
	obs := []plan.InstanceStatus{pt.Primary("c-1", 1, l5), pt.Replica("c-2", "c-1", l5), pt.Replica("c-3", "c-1", l5)}
	obs[0].PendingRestart = true
	for _, c := range []struct {
		name   string
		mutate func(*plan.Spec)
		want   []string
	}{
		{"in place", func(s *plan.Spec) { s.RestartPrimaryInPlace = true }, []string{"restart c-1"}},
		{"supervised", func(s *plan.Spec) { s.SupervisedPrimaryUpdate = true },
			[]string{hold("primary c-1 needs a restart for new settings: waiting for a switchover (primaryUpdateStrategy: supervised)")}},
	} {
		spec := three()
		c.mutate(&spec)
		r := plan.Next(spec, pt.Steady("c-1", 1, t0), obs, t0.Add(time.Second))
		if got := pt.Strings(r.Actions); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
	// A primary restarting in place is not failed over.
	restarting := obs[0]
	restarting.PendingRestart, restarting.Restarting, restarting.PostmasterRunning = false, true, false
	spec := three()
	spec.RestartPrimaryInPlace = true
	r := plan.Next(spec, pt.Steady("c-1", 1, t0), []plan.InstanceStatus{restarting, obs[1], obs[2]}, t0.Add(10*time.Second))
	if got := pt.Strings(r.Actions); !reflect.DeepEqual(got, []string{hold("primary c-1 is restarting to apply settings that need a restart")}) {
		t.Errorf("restarting primary: %q", got)
	}
}

// TestUserRestart: a user's restart request (no setting changed) rolls
// through the cluster as a settings change does, replicas first, then a
// switchover; each instance once; one instance only when asked so.
func TestUserRestart(t *testing.T) {
	spec := three()
	mem, err := plan.RequestRestart(spec, pt.Steady("c-1", 1, t0), "*")
	if err != nil {
		t.Fatal(err)
	}
	restarting := func(s plan.InstanceStatus) plan.InstanceStatus {
		s.Restarting, s.PostmasterRunning, s.StreamingFrom = true, false, ""
		return s
	}
	steps := []struct {
		name string
		obs  []plan.InstanceStatus
		want []string
	}{{
		name: "the first replica",
		obs:  []plan.InstanceStatus{pt.Primary("c-1", 1, l5), pt.Replica("c-2", "c-1", l5), pt.Replica("c-3", "c-1", l5)},
		want: []string{"restart c-2"},
	}, {
		name: "while it restarts, nothing else",
		obs:  []plan.InstanceStatus{pt.Primary("c-1", 1, l5), restarting(pt.Replica("c-2", "c-1", l5)), pt.Replica("c-3", "c-1", l5)},
		want: []string{},
	}, {
		name: "back: the next one, not c-2 again",
		obs:  []plan.InstanceStatus{pt.Primary("c-1", 1, l5), pt.Replica("c-2", "c-1", l5), pt.Replica("c-3", "c-1", l5)},
		want: []string{"restart c-3"},
	}, {
		name: "replicas done: a switchover to the most advanced",
		obs:  []plan.InstanceStatus{pt.Primary("c-1", 1, l9), pt.Replica("c-2", "c-1", l5), pt.Replica("c-3", "c-1", l9)},
		want: []string{"demote c-1"},
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
	if len(mem.RestartPending) != 0 || mem.Switchover.To != "c-3" {
		t.Fatalf("after the request: pending %q, switchover %+v", mem.RestartPending, mem.Switchover)
	}
	// One replica only.
	one, err := plan.RequestRestart(spec, pt.Steady("c-1", 1, t0), "c-3")
	if err != nil {
		t.Fatal(err)
	}
	healthy := []plan.InstanceStatus{pt.Primary("c-1", 1, l5), pt.Replica("c-2", "c-1", l5), pt.Replica("c-3", "c-1", l5)}
	r := plan.Next(spec, one, healthy, t0.Add(time.Second))
	if got := pt.Strings(r.Actions); !reflect.DeepEqual(got, []string{"restart c-3"}) || len(r.Memory.RestartPending) != 0 {
		t.Fatalf("one replica: %q, pending %q", got, r.Memory.RestartPending)
	}
	if got := pt.Strings(plan.Next(spec, r.Memory, healthy, t0.Add(2*time.Second)).Actions); len(got) != 0 {
		t.Fatalf("after it: %q", got)
	}
	// The primary only, in place when asked so.
	spec.RestartPrimaryInPlace = true
	p, _ := plan.RequestRestart(spec, pt.Steady("c-1", 1, t0), "c-1")
	if got := pt.Strings(plan.Next(spec, p, healthy, t0.Add(time.Second)).Actions); !reflect.DeepEqual(got, []string{"restart c-1"}) {
		t.Fatalf("the primary in place: %q", got)
	}
	if _, err := plan.RequestRestart(spec, pt.Steady("c-1", 1, t0), "c-9"); err == nil {
		t.Fatal("restart of c-9 accepted")
	}
}
