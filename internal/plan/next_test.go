package plan_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/internal/plan"
	pt "github.com/pgward/pgward/internal/plan/plantest"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

const (
	l4 = pt.Base + 0x400
	l5 = pt.Base + 0x500
	l9 = pt.Base + 0x900
)

type nextCase struct {
	name string
	spec plan.Spec
	mem  plan.Memory
	obs  []plan.InstanceStatus
	at   time.Duration // now = t0 + at
	want []string      // Action.String() of every action, in order
	// Optional checks.
	epoch   uint64
	target  string
	event   string // an event reason that must appear
	hold    string // a substring of the Hold reason
	checkFn func(t *testing.T, r plan.Ready)
}

func three() plan.Spec { return pt.Spec("c-1", "c-2", "c-3") }

func syncSpec(lo, hi int) plan.Spec {
	s := three()
	s.MinSyncReplicas, s.MaxSyncReplicas = lo, hi
	return s
}

// quorumSpec is dataDurability "preferred" with failoverQuorum.
func quorumSpec() plan.Spec {
	s := syncSpec(0, 1)
	s.FailoverQuorum = true
	return s
}

func withSync(m plan.Memory, cs ...plan.SyncConfig) plan.Memory {
	m.SyncStandbys = cs
	return m
}

func anyOf(n int, names ...string) plan.SyncConfig {
	return plan.SyncConfig{Method: plan.SyncAny, Num: n, Names: names}
}

func runCases(t *testing.T, cases []nextCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := plan.Next(tc.spec, tc.mem, tc.obs, t0.Add(tc.at))
			check(t, tc, r)
		})
	}
}

func check(t *testing.T, tc nextCase, r plan.Ready) {
	t.Helper()
	if got := pt.Strings(r.Actions); len(got)+len(tc.want) > 0 && !reflect.DeepEqual(got, tc.want) {
		t.Errorf("actions:\n got  %q\n want %q", got, tc.want)
	}
	if tc.epoch != 0 && r.Memory.Epoch != tc.epoch {
		t.Errorf("epoch %d, want %d", r.Memory.Epoch, tc.epoch)
	}
	if tc.target != "" && r.Memory.TargetPrimary != tc.target {
		t.Errorf("target %q, want %q", r.Memory.TargetPrimary, tc.target)
	}
	if tc.event != "" && !hasEvent(r, tc.event) {
		t.Errorf("no %s event in %v", tc.event, r.Events)
	}
	if tc.hold != "" && !strings.Contains(holdReason(r), tc.hold) {
		t.Errorf("hold reason %q does not mention %q", holdReason(r), tc.hold)
	}
	if tc.checkFn != nil {
		tc.checkFn(t, r)
	}
}

func hasEvent(r plan.Ready, reason string) bool {
	for _, e := range r.Events {
		if e.Reason == reason {
			return true
		}
	}
	return false
}

func holdReason(r plan.Ready) string {
	for _, a := range r.Actions {
		if a.Kind == plan.ActionHold {
			return a.Reason
		}
	}
	return ""
}

func hold(reason string) string { return fmt.Sprintf("hold reason=%q", reason) }

func TestNextFailover(t *testing.T) {
	steady := pt.Steady("c-1", 1, t0)
	steady.PrimaryLastLSN = l5
	runCases(t, []nextCase{{
		name: "primary dead: most advanced replica promoted, old primary fenced",
		spec: three(), mem: steady, at: time.Second,
		obs: []plan.InstanceStatus{
			pt.Dead(pt.Primary("c-1", 1, l5)), pt.Replica("c-2", "", l4), pt.Replica("c-3", "", l5),
		},
		want:  []string{"fence c-1", `promote c-3 epoch=2 sync=""`, "follow c-2 from=c-3"},
		epoch: 2, target: "c-3", event: plan.ReasonFailover,
	}, {
		name: "equal received LSN: replayed LSN, then name decide",
		spec: three(), mem: steady, at: time.Second,
		obs: []plan.InstanceStatus{
			pt.Dead(pt.Primary("c-1", 1, l5)),
			{Name: "c-3", Reachable: true, PostmasterRunning: true, Role: plan.RoleReplica, Timeline: 1, ReceivedLSN: l5, ReplayedLSN: l4},
			{Name: "c-2", Reachable: true, PostmasterRunning: true, Role: plan.RoleReplica, Timeline: 1, ReceivedLSN: l5, ReplayedLSN: l4},
		},
		want: []string{"fence c-1", `promote c-2 epoch=2 sync=""`, "follow c-3 from=c-2"},
	}, {
		name: "primary silent for less than the unreachable timeout: hold",
		spec: three(), mem: steady, at: time.Second,
		obs:  []plan.InstanceStatus{pt.Unreachable("c-1"), pt.Replica("c-2", "", l5), pt.Replica("c-3", "", l5)},
		want: []string{hold("primary c-1 has not answered for 1s")},
		checkFn: func(t *testing.T, r plan.Ready) {
			if !r.Memory.PrimaryUnhealthySince.IsZero() {
				t.Error("counted unhealthy before the unreachable timeout")
			}
		},
	}, {
		name: "primary unreachable but maybe alive, within the self-fencing bound: hold",
		spec: three(), mem: steady, at: 9 * time.Second,
		obs:  []plan.InstanceStatus{pt.Unreachable("c-1"), pt.Replica("c-2", "", l5), pt.Replica("c-3", "", l4)},
		want: []string{hold("c-1 has not answered for 9s and may still accept writes until the self-fencing bound 10s has passed")},
		checkFn: func(t *testing.T, r plan.Ready) {
			if r.Memory.PrimaryUnhealthySince != t0.Add(9*time.Second) || r.Memory.Epoch != 1 {
				t.Errorf("memory %+v", r.Memory)
			}
		},
	}, {
		name: "primary unreachable past the self-fencing bound: promoted without fencing it",
		spec: three(), mem: steady, at: 10 * time.Second,
		obs:   []plan.InstanceStatus{pt.Unreachable("c-1"), pt.Replica("c-2", "", l5), pt.Replica("c-3", "", l4)},
		want:  []string{`promote c-2 epoch=2 sync=""`, "follow c-3 from=c-2"},
		epoch: 2, target: "c-2",
	}, {
		name: "no self-fencing bound configured: an unreachable primary blocks failover",
		spec: func() plan.Spec { s := three(); s.SelfFenceBound = 0; return s }(), mem: steady, at: time.Hour,
		obs:  []plan.InstanceStatus{pt.Unreachable("c-1"), pt.Replica("c-2", "", l5), pt.Replica("c-3", "", l4)},
		want: []string{hold("c-1 has not answered for 1h0m0s and may still accept writes; with no self-fencing bound it must be fenced or confirmed dead")},
	}, {
		name: "primary running but not primary (stuck recovery): fenced first, nobody promoted",
		spec: three(), mem: steady, at: time.Second,
		obs: []plan.InstanceStatus{
			{Name: "c-1", Reachable: true, PostmasterRunning: true, Role: plan.RoleUnknown, Epoch: 1, Timeline: 1},
			pt.Replica("c-2", "", l5), pt.Replica("c-3", "", l4),
		},
		want: []string{"fence c-1", hold("fencing c-1 (reports role unknown) before promoting another instance")},
	}, {
		name: "all replicas lagging: the most advanced is promoted and the loss window reported",
		spec: three(), mem: func() plan.Memory { m := steady; m.PrimaryLastLSN = l9; return m }(), at: time.Second,
		obs:   []plan.InstanceStatus{pt.Dead(pt.Primary("c-1", 1, l9)), pt.Replica("c-2", "", l4), pt.Replica("c-3", "", l5)},
		want:  []string{"fence c-1", `promote c-3 epoch=2 sync=""`, "follow c-2 from=c-3"},
		event: plan.ReasonDataLossRisk,
		checkFn: func(t *testing.T, r plan.Ready) {
			for _, e := range r.Events {
				if e.Reason == plan.ReasonDataLossRisk && !strings.Contains(e.Message, "1024 bytes") {
					t.Errorf("loss window not in %q", e.Message)
				}
			}
		},
	}, {
		name: "no replica ready: hold, restart what can safely run",
		spec: three(), mem: steady, at: time.Second,
		obs:  []plan.InstanceStatus{pt.Dead(pt.Primary("c-1", 1, l5)), pt.Unreachable("c-2"), pt.Dead(pt.Replica("c-3", "", l5))},
		want: []string{hold("no replica is ready to replace c-1"), "start c-3", "start c-1"},
	}, {
		name: "single instance, primary dead: restarted, never failed over",
		spec: pt.Spec("c-1"), mem: steady, at: time.Second,
		obs:  []plan.InstanceStatus{pt.Dead(pt.Primary("c-1", 1, l5))},
		want: []string{"start c-1", hold("single-instance cluster: no failover; waiting for c-1 to recover")},
	}, {
		name: "single instance, primary unreachable for long: hold",
		spec: pt.Spec("c-1"), mem: steady, at: time.Hour,
		obs:  []plan.InstanceStatus{pt.Unreachable("c-1")},
		want: []string{hold("single-instance cluster: no failover; waiting for c-1 to recover")},
	}, {
		name: "promotion decided but not seen done: reissued at the same epoch",
		spec: three(), at: 2 * time.Second,
		mem: plan.Memory{Epoch: 2, TargetPrimary: "c-3", CurrentPrimary: "c-1", PrimaryLastSeen: t0.Add(time.Second)},
		obs: []plan.InstanceStatus{
			pt.Dead(pt.Primary("c-1", 1, l5)), pt.Replica("c-2", "", l4), pt.Replica("c-3", "", l5),
		},
		want:  []string{"fence c-1", `promote c-3 epoch=2 sync=""`, "follow c-2 from=c-3"},
		epoch: 2,
	}, {
		name: "stale memory: an instance reports a newer epoch",
		spec: three(), mem: steady, at: time.Second,
		obs:  []plan.InstanceStatus{pt.Dead(pt.Primary("c-1", 1, l5)), pt.Primary("c-2", 3, l5), pt.Replica("c-3", "", l5)},
		want: []string{hold("c-2 reports epoch 3 but the persisted memory is at epoch 1: the memory is stale; refusing to act")},
	}})
}

func TestNextFailoverDelay(t *testing.T) {
	s := three()
	s.FailoverDelay = 30 * time.Second
	mem := pt.Steady("c-1", 1, t0)
	obs := []plan.InstanceStatus{pt.Dead(pt.Primary("c-1", 1, l5)), pt.Replica("c-2", "", l5), pt.Replica("c-3", "", l4)}

	r := plan.Next(s, mem, obs, t0)
	if got := pt.Kinds(r.Actions); !reflect.DeepEqual(got, []plan.ActionKind{plan.ActionHold}) || !hasEvent(r, plan.ReasonPrimaryUnhealthy) {
		t.Fatalf("at once: %v %v", pt.Strings(r.Actions), r.Events)
	}
	if r.Memory.PrimaryUnhealthySince != t0 {
		t.Fatalf("unhealthy since %v", r.Memory.PrimaryUnhealthySince)
	}
	r = plan.Next(s, r.Memory, obs, t0.Add(29*time.Second))
	if !strings.Contains(holdReason(r), "failoverDelay leaves 1s") || hasEvent(r, plan.ReasonPrimaryUnhealthy) {
		t.Fatalf("at 29s: %v %v", pt.Strings(r.Actions), r.Events)
	}
	r = plan.Next(s, r.Memory, obs, t0.Add(30*time.Second))
	if want := []string{"fence c-1", `promote c-2 epoch=2 sync=""`, "follow c-3 from=c-2"}; !reflect.DeepEqual(pt.Strings(r.Actions), want) {
		t.Fatalf("at 30s: %v", pt.Strings(r.Actions))
	}
}

func TestNextFlapping(t *testing.T) {
	s := three()
	s.FailoverDelay = 10 * time.Second
	healthy := []plan.InstanceStatus{pt.Primary("c-1", 1, l5), pt.Replica("c-2", "c-1", l5), pt.Replica("c-3", "c-1", l5)}
	down := []plan.InstanceStatus{pt.Dead(pt.Primary("c-1", 1, l5)), pt.Replica("c-2", "", l5), pt.Replica("c-3", "", l5)}

	mem := pt.Steady("c-1", 1, t0)
	r := plan.Next(s, mem, down, t0.Add(time.Second))
	r = plan.Next(s, r.Memory, healthy, t0.Add(8*time.Second))
	if !r.Memory.PrimaryUnhealthySince.IsZero() || !hasEvent(r, plan.ReasonPrimaryRecovered) || len(r.Actions) != 0 {
		t.Fatalf("recovery not recorded: %+v %v %v", r.Memory, r.Events, pt.Strings(r.Actions))
	}
	// Down again at 12s: the delay counts from 12s, not from 1s.
	r = plan.Next(s, r.Memory, down, t0.Add(12*time.Second))
	r = plan.Next(s, r.Memory, down, t0.Add(21*time.Second))
	if r.Memory.Epoch != 1 || !strings.Contains(holdReason(r), "failoverDelay leaves 1s") {
		t.Fatalf("flapping primary failed over early: %v", pt.Strings(r.Actions))
	}
	r = plan.Next(s, r.Memory, down, t0.Add(22*time.Second))
	if r.Memory.Epoch != 2 {
		t.Fatalf("no failover after the delay: %v", pt.Strings(r.Actions))
	}
}

func TestNextIdempotent(t *testing.T) {
	mem := pt.Steady("c-1", 1, t0)
	obs := []plan.InstanceStatus{pt.Dead(pt.Primary("c-1", 1, l5)), pt.Replica("c-2", "", l5), pt.Replica("c-3", "", l4)}
	first := plan.Next(three(), mem, obs, t0.Add(time.Second))
	again := plan.Next(three(), first.Memory, obs, t0.Add(time.Second))
	if first.Memory.Epoch != 2 || again.Memory.Epoch != 2 {
		t.Fatalf("epochs %d then %d, want 2 and 2", first.Memory.Epoch, again.Memory.Epoch)
	}
	if !reflect.DeepEqual(first.Actions, again.Actions) {
		t.Fatalf("actions differ:\n%v\n%v", pt.Strings(first.Actions), pt.Strings(again.Actions))
	}
	if !reflect.DeepEqual(first.Memory, again.Memory) {
		t.Fatalf("memory differs:\n%+v\n%+v", first.Memory, again.Memory)
	}
	if mem.Epoch != 1 || mem.TargetPrimary != "c-1" {
		t.Fatal("Next modified its input memory")
	}
}
