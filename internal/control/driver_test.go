package control_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/internal/control"
	"github.com/pgward/pgward/internal/plan"
	pt "github.com/pgward/pgward/internal/plan/plantest"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

const (
	selfFence = 4 * time.Second
	tick      = 250 * time.Millisecond
)

// simCluster is the driver's three interfaces over plantest.Sim: the
// instances answer and execute as the simulation says, and every save,
// route and action is logged in order.
type simCluster struct {
	sim      *pt.Sim
	log      []string
	saved    []plan.Memory
	failSave error
	failRun  error
	// unsaved counts actions run under a memory the store did not hold.
	unsaved int
}

func (s *simCluster) Observe(context.Context, []string) []plan.InstanceStatus {
	s.sim.Step()
	return s.sim.Observe()
}

func (s *simCluster) Observed(context.Context, []plan.InstanceStatus) {}

func (s *simCluster) Save(_ context.Context, m plan.Memory) error {
	if s.failSave != nil {
		return s.failSave
	}
	s.saved = append(s.saved, m)
	s.log = append(s.log, fmt.Sprintf("save epoch=%d target=%s", m.Epoch, m.TargetPrimary))
	return nil
}

func (s *simCluster) Route(_ context.Context, m plan.Memory) error {
	s.log = append(s.log, "route "+m.TargetPrimary)
	return nil
}

func (s *simCluster) Run(_ context.Context, a plan.Action, m plan.Memory) error {
	if n := len(s.saved); n == 0 || s.saved[n-1].Epoch != m.Epoch || s.saved[n-1].TargetPrimary != m.TargetPrimary {
		s.unsaved++
	}
	s.log = append(s.log, "run "+a.String())
	if s.failRun != nil {
		return s.failRun
	}
	return s.sim.Apply([]plan.Action{a})
}

// env is one simulated cluster under the driver.
type env struct {
	t     *testing.T
	spec  plan.Spec
	sim   *pt.Sim
	c     *simCluster
	d     control.Driver
	mem   *control.Memory
	split bool // two writable primaries were seen
}

func newEnv(t *testing.T) *env {
	t.Helper()
	bound, err := plan.FenceTiming{SelfFence: selfFence, RequestTimeout: 200 * time.Millisecond,
		CheckInterval: 100 * time.Millisecond, StopTime: 500 * time.Millisecond, Drift: 0.001}.Bound()
	if err != nil {
		t.Fatal(err)
	}
	spec := pt.Spec("c-1", "c-2", "c-3")
	spec.SelfFenceBound, spec.CheckInterval = bound, time.Second
	e := &env{t: t, spec: spec, sim: pt.NewSim(t0, selfFence, spec.Instances...)}
	e.c = &simCluster{sim: e.sim}
	e.d = control.Driver{Observer: e.c, Store: e.c, Actuator: e.c, Now: func() time.Time { return e.sim.Now }}
	e.mem = control.Resume(plan.Memory{}, t0)
	return e
}

// step advances the clock by one tick, writes, and runs one driver step.
func (e *env) step() (control.Result, error) {
	e.sim.Now = e.sim.Now.Add(tick)
	e.sim.Write()
	res, err := e.d.Step(context.Background(), e.spec, e.mem)
	if len(e.sim.Writable()) > 1 {
		e.split = true
	}
	if res.Wait < 100*time.Millisecond || res.Wait > e.spec.CheckInterval {
		e.t.Errorf("wait %v outside [100ms, %v] (recheck %v)", res.Wait, e.spec.CheckInterval, res.RecheckAfter)
	}
	return res, err
}

// settle steps until c-1 is the healthy primary of a streaming cluster.
func (e *env) settle() {
	for i := 0; i < 40; i++ {
		if _, err := e.step(); err != nil {
			e.t.Fatal(err)
		}
		m := e.mem.Latest()
		if m.CurrentPrimary == "c-1" && e.sim.Node("c-2").Upstream == "c-1" && e.sim.Node("c-3").Upstream == "c-1" {
			return
		}
	}
	e.t.Fatalf("not settled: %+v", e.mem.Latest())
}

func (e *env) steps(n int) {
	for range n {
		if _, err := e.step(); err != nil {
			e.t.Fatal(err)
		}
	}
}

// index returns where want first appears in the log, or -1.
func (e *env) index(want string) int {
	for i, l := range e.c.log {
		if strings.HasPrefix(l, want) {
			return i
		}
	}
	return -1
}

func TestDriver(t *testing.T) {
	for _, tc := range []struct {
		name  string
		check func(t *testing.T, e *env)
	}{
		{"a healthy cluster costs no save", func(t *testing.T, e *env) {
			saves, seen := len(e.c.saved), e.mem.Latest().PrimaryLastSeen
			e.steps(100)
			if n := len(e.c.saved) - saves; n != 0 {
				t.Errorf("%d saves in 100 healthy steps, want 0", n)
			}
			if !e.mem.Latest().PrimaryLastSeen.After(seen) {
				t.Error("the primary's last answer is not kept between steps")
			}
		}},
		{"a failover is saved before it is acted on", func(t *testing.T, e *env) {
			e.sim.Node("c-1").Running = false
			e.steps(4)
			m := e.mem.Latest()
			if m.Epoch != 2 || m.TargetPrimary == "c-1" {
				t.Fatalf("no failover: %+v", m)
			}
			save, promote := e.index(fmt.Sprintf("save epoch=2 target=%s", m.TargetPrimary)), e.index("run promote "+m.TargetPrimary)
			if save < 0 || promote < save || e.index("route "+m.TargetPrimary) < save {
				t.Errorf("promotion not after its save:\n%s", strings.Join(e.c.log, "\n"))
			}
		}},
		{"a failed save runs nothing", func(t *testing.T, e *env) {
			e.sim.Node("c-1").Running = false
			e.c.failSave = errors.New("etcd down")
			before := len(e.c.log)
			for range 3 {
				if _, err := e.step(); err == nil {
					t.Fatal("a failed save was not reported")
				}
			}
			if len(e.c.log) != before || e.mem.Latest().Epoch != 1 {
				t.Fatalf("acted without saving: %q, %+v", e.c.log[before:], e.mem.Latest())
			}
			e.c.failSave = nil
			e.steps(2)
			if e.mem.Latest().Epoch != 2 {
				t.Errorf("no failover once the store is back: %+v", e.mem.Latest())
			}
		}},
		{"a failed action stops the rest", func(t *testing.T, e *env) {
			e.sim.Node("c-1").Running = false
			e.c.failRun = errors.New("no answer")
			before := len(e.c.log)
			res, err := e.step()
			if err != nil || res.Failed == nil {
				t.Fatalf("err %v, failed %v", err, res.Failed)
			}
			var runs int
			for _, l := range e.c.log[before:] {
				if strings.HasPrefix(l, "run ") {
					runs++
				}
			}
			if runs != 1 || len(res.Actions) < 2 {
				t.Errorf("%d actions run of %v after the first failed", runs, pt.Strings(res.Actions))
			}
		}},
		{"a restarted controller waits out the bound from its start", func(t *testing.T, e *env) {
			stored := e.c.saved[len(e.c.saved)-1] // last seen when it was saved
			e.steps(100)                          // 25 s of a healthy primary, unsaved
			e.sim.Node("c-1").Isolated = true
			if r := plan.Next(e.spec, stored, e.sim.Observe(), e.sim.Now); r.Memory.Epoch == 1 {
				t.Fatal("the stored last answer alone does not look old enough: the test proves nothing")
			}
			start := e.sim.Now
			e.mem = control.Resume(stored, start)
			for e.mem.Latest().Epoch == 1 && e.sim.Now.Sub(start) < time.Minute {
				e.steps(1)
			}
			if took := e.sim.Now.Sub(start); took < e.spec.SelfFenceBound || e.mem.Latest().Epoch != 2 {
				t.Errorf("promoted after %v (epoch %d), want after the bound %v", took, e.mem.Latest().Epoch, e.spec.SelfFenceBound)
			}
		}},
		{"a switchover set between steps is saved first", func(t *testing.T, e *env) {
			m := e.mem.Latest()
			m.Switchover = plan.Switchover{ID: "s1", To: "c-2"}
			e.mem.Set(m)
			before := len(e.c.saved)
			e.steps(1)
			if len(e.c.saved) == before || e.c.saved[before].Switchover.ID != "s1" {
				t.Fatalf("the request was not saved: %+v", e.c.saved[before:])
			}
			e.steps(20)
			if m := e.mem.Latest(); m.CurrentPrimary != "c-2" {
				t.Errorf("no switchover: %+v", m)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.settle()
			tc.check(t, e)
			if e.split {
				t.Error("two writable primaries")
			}
			if e.c.unsaved > 0 {
				t.Errorf("%d actions run under a memory the store did not hold", e.c.unsaved)
			}
		})
	}
}

// A store round trip (JSON, another time zone, no monotonic reading) is
// not a change; a new epoch is.
func TestMemoryHolds(t *testing.T) {
	now := time.Now()
	m := plan.Memory{Epoch: 3, TargetPrimary: "c-2", CurrentPrimary: "c-2", PrimaryLastSeen: now,
		Diverged: map[string]time.Time{"c-1": now}}
	mem := control.Resume(m, now)
	trip := m
	trip.Diverged = map[string]time.Time{"c-1": now.UTC().Round(0)}
	trip.PrimaryLastSeen, trip.PrimaryLastLSN = now.Add(time.Hour), 99
	if !mem.Holds(trip) {
		t.Error("a round trip or a new last answer counted as a change")
	}
	trip.Epoch++
	if mem.Holds(trip) {
		t.Error("a new epoch did not count as a change")
	}
}
