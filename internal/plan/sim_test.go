package plan_test

import (
	"testing"
	"time"

	"github.com/pgward/pgward/internal/plan"
	pt "github.com/pgward/pgward/internal/plan/plantest"
)

// fenceSpec returns a spec whose self-fencing bound is derived from an
// instance-manager self-fence time f, as a runtime would.
func fenceSpec(t *testing.T, f time.Duration, names ...string) plan.Spec {
	t.Helper()
	u, err := plan.FenceTiming{SelfFence: f, RequestTimeout: 200 * time.Millisecond, CheckInterval: 100 * time.Millisecond,
		StopTime: 500 * time.Millisecond, Drift: 0.001}.Bound()
	if err != nil {
		t.Fatal(err)
	}
	s := pt.Spec(names...)
	s.SelfFenceBound = u
	return s
}

// run advances the simulation by step per round for d, writing once per
// round, and fails on two writable primaries.
func run(t *testing.T, sim *pt.Sim, spec plan.Spec, mem plan.Memory, d, step time.Duration) plan.Memory {
	t.Helper()
	for end := sim.Now.Add(d); sim.Now.Before(end); {
		sim.Now = sim.Now.Add(step)
		sim.Step()
		if w := sim.Writable(); len(w) > 1 {
			t.Fatalf("at %v: two writable primaries %v", sim.Now.Sub(t0), w)
		}
		r, _ := sim.Round(spec, mem) // a failed action is retried next round
		mem = r.Memory
		if w := sim.Writable(); len(w) > 1 {
			t.Fatalf("at %v after %v: two writable primaries %v", sim.Now.Sub(t0), pt.Strings(r.Actions), w)
		}
		sim.Write()
	}
	return mem
}

func TestSimKillPrimary(t *testing.T) {
	spec := fenceSpec(t, 4*time.Second, "c-1", "c-2", "c-3")
	spec.MinSyncReplicas, spec.MaxSyncReplicas = 1, 1
	sim := pt.NewSim(t0, 4*time.Second, "c-1", "c-2", "c-3")
	mem := settle(t, sim, spec, plan.Memory{})
	mem = run(t, sim, spec, mem, 2*time.Second, 250*time.Millisecond)

	sim.Node("c-1").Running = false // kill -9 of the postmaster
	mem = run(t, sim, spec, mem, 500*time.Millisecond, 250*time.Millisecond)
	if mem.Epoch != 2 || mem.TargetPrimary == "c-1" {
		t.Fatalf("no failover within two rounds: %+v", mem)
	}
	mem = run(t, sim, spec, mem, 10*time.Second, 250*time.Millisecond)
	if lost := sim.Lost(mem.CurrentPrimary); len(lost) > 0 {
		t.Fatalf("acknowledged writes lost: %v", lost)
	}
	if n := sim.Node("c-1"); n.Primary || !n.Running {
		t.Fatalf("old primary not rejoined: %+v", n)
	}
}

func TestSimIsolatedPrimary(t *testing.T) {
	spec := fenceSpec(t, 4*time.Second, "c-1", "c-2", "c-3")
	sim := pt.NewSim(t0, 4*time.Second, "c-1", "c-2", "c-3")
	mem := settle(t, sim, spec, plan.Memory{})
	mem = run(t, sim, spec, mem, time.Second, 250*time.Millisecond)

	sim.Node("c-1").Isolated = true
	start := sim.Now
	for mem.Epoch == 1 {
		mem = run(t, sim, spec, mem, 250*time.Millisecond, 250*time.Millisecond)
		if sim.Now.Sub(start) > 20*time.Second {
			t.Fatal("no failover")
		}
	}
	if took := sim.Now.Sub(start); took < spec.SelfFenceBound {
		t.Fatalf("promoted after %v, before the self-fencing bound %v", took, spec.SelfFenceBound)
	}
	sim.Node("c-1").Isolated = false
	mem = run(t, sim, spec, mem, 3*time.Second, 250*time.Millisecond)
	if n := sim.Node("c-1"); n.Primary || n.Upstream != mem.CurrentPrimary {
		t.Fatalf("old primary did not rejoin: %+v", n)
	}
}

// TestSimBoundTooShort checks that the simulation does catch split brain:
// with a bound shorter than the instance's self-fence time, two primaries
// accept writes at once.
func TestSimBoundTooShort(t *testing.T) {
	spec := pt.Spec("c-1", "c-2", "c-3")
	spec.SelfFenceBound = 5 * time.Second
	sim := pt.NewSim(t0, 20*time.Second, "c-1", "c-2", "c-3")
	mem := settle(t, sim, spec, plan.Memory{})
	sim.Node("c-1").Isolated = true
	for i := 0; i < 40; i++ {
		sim.Now = sim.Now.Add(250 * time.Millisecond)
		r, _ := sim.Round(spec, mem)
		mem = r.Memory
		if len(sim.Writable()) > 1 {
			return
		}
	}
	t.Fatal("a bound shorter than the self-fence time went unnoticed")
}
