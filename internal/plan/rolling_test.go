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

// TestRollingRestartWaitsForManifest: a replica counts as updated only
// once it reports the manifest the runtime gave it (Spec.Manifests)
// loaded, with no restart pending. On Kubernetes each pod's kubelet
// refreshes its config Secret at its own moment: a replica that has not
// read the new manifest yet reports nothing pending, and before this
// check the update switched over to it while it ran the old settings.
func TestRollingRestartWaitsForManifest(t *testing.T) {
	const old, cur = "0ld0ld0ld0ld0ld0ld", "c0ffeec0ffeec0ffee"
	runs := func(s plan.InstanceStatus, manifest string, pending bool) plan.InstanceStatus {
		s.Manifest, s.PendingRestart = manifest, pending
		return s
	}
	restarting := func(s plan.InstanceStatus) plan.InstanceStatus {
		s.Restarting, s.PostmasterRunning, s.StreamingFrom, s.Manifest = true, false, "", ""
		return s
	}
	spec := three()
	spec.Manifests = map[string]string{"c-1": cur, "c-2": cur, "c-3": cur}
	waitC3 := hold("primary c-1 needs a restart for new settings: waiting for replica c-3 to load its new manifest (it runs 0ld0ld0ld0ld, the current one is c0ffeec0ffee)")
	steps := []struct {
		name string
		obs  []plan.InstanceStatus
		want []string
	}{{
		name: "the primary read it first, no replica yet: nothing moves",
		obs:  []plan.InstanceStatus{runs(pt.Primary("c-1", 1, l5), cur, true), runs(pt.Replica("c-2", "c-1", l5), old, false), runs(pt.Replica("c-3", "c-1", l5), old, false)},
		want: []string{hold("primary c-1 needs a restart for new settings: waiting for replica c-2 to load its new manifest (it runs 0ld0ld0ld0ld, the current one is c0ffeec0ffee)")},
	}, {
		name: "c-2 read it: c-2 restarts, c-3 still has the old one",
		obs:  []plan.InstanceStatus{runs(pt.Primary("c-1", 1, l5), cur, true), runs(pt.Replica("c-2", "c-1", l5), cur, true), runs(pt.Replica("c-3", "c-1", l5), old, false)},
		want: []string{"restart c-2"},
	}, {
		name: "while c-2 restarts: nothing else",
		obs:  []plan.InstanceStatus{runs(pt.Primary("c-1", 1, l5), cur, true), restarting(pt.Replica("c-2", "c-1", l5)), runs(pt.Replica("c-3", "c-1", l5), old, false)},
		want: []string{},
	}, {
		name: "c-2 updated, c-3 on the old manifest with nothing pending: not updated, no switchover",
		obs:  []plan.InstanceStatus{runs(pt.Primary("c-1", 1, l5), cur, true), runs(pt.Replica("c-2", "c-1", l9), cur, false), runs(pt.Replica("c-3", "c-1", l5), old, false)},
		want: []string{waitC3},
	}, {
		name: "c-3 loaded it, its restart pending: c-3 restarts",
		obs:  []plan.InstanceStatus{runs(pt.Primary("c-1", 1, l5), cur, true), runs(pt.Replica("c-2", "c-1", l9), cur, false), runs(pt.Replica("c-3", "c-1", l5), cur, true)},
		want: []string{"restart c-3"},
	}, {
		name: "c-3 back with the current manifest but its restart still pending (restarted too early): again",
		obs:  []plan.InstanceStatus{runs(pt.Primary("c-1", 1, l5), cur, true), runs(pt.Replica("c-2", "c-1", l9), cur, false), runs(pt.Replica("c-3", "c-1", l5), cur, true)},
		want: []string{"restart c-3"},
	}, {
		name: "every replica updated: switch over to the most advanced",
		obs:  []plan.InstanceStatus{runs(pt.Primary("c-1", 1, l9), cur, true), runs(pt.Replica("c-2", "c-1", l9), cur, false), runs(pt.Replica("c-3", "c-1", l5), cur, false)},
		want: []string{"demote c-1"},
	}}
	mem := pt.Steady("c-1", 1, t0)
	now := t0
	for _, st := range steps {
		now = now.Add(time.Second)
		r := plan.Next(spec, mem, st.obs, now)
		if got := pt.Strings(r.Actions); !reflect.DeepEqual(got, st.want) {
			t.Fatalf("%s:\n got  %q\n want %q", st.name, got, st.want)
		}
		mem = r.Memory
	}
	if mem.Switchover.To != "c-2" {
		t.Fatalf("switchover in memory: %+v", mem.Switchover)
	}

	// Every way of finishing the primary waits the same way.
	obs := []plan.InstanceStatus{runs(pt.Primary("c-1", 1, l5), cur, true), runs(pt.Replica("c-2", "c-1", l5), cur, false), runs(pt.Replica("c-3", "c-1", l5), old, false)}
	for _, c := range []struct {
		name   string
		mutate func(*plan.Spec)
	}{
		{"switchover", func(*plan.Spec) {}},
		{"in place", func(s *plan.Spec) { s.RestartPrimaryInPlace = true }},
		{"supervised", func(s *plan.Spec) { s.SupervisedPrimaryUpdate = true }},
	} {
		s := spec
		c.mutate(&s)
		r := plan.Next(s, pt.Steady("c-1", 1, t0), obs, t0.Add(time.Second))
		if got := pt.Strings(r.Actions); !reflect.DeepEqual(got, []string{waitC3}) {
			t.Errorf("%s: got %q, want %q", c.name, got, waitC3)
		}
	}
	// A user's restart (no manifest change) waits for it too, and a
	// manifest nobody needs a restart for costs nothing.
	user, err := plan.RequestRestart(spec, pt.Steady("c-1", 1, t0), "c-1")
	if err != nil {
		t.Fatal(err)
	}
	quiet := []plan.InstanceStatus{runs(pt.Primary("c-1", 1, l5), cur, false), runs(pt.Replica("c-2", "c-1", l5), cur, false), runs(pt.Replica("c-3", "c-1", l5), old, false)}
	if got := pt.Strings(plan.Next(spec, user, quiet, t0.Add(time.Second)).Actions); !reflect.DeepEqual(got, []string{waitC3}) {
		t.Errorf("user's restart of the primary: got %q", got)
	}
	if got := pt.Strings(plan.Next(spec, pt.Steady("c-1", 1, t0), quiet, t0.Add(time.Second)).Actions); len(got) != 0 {
		t.Errorf("nothing pending: got %q", got)
	}
	// A spec without manifests (a runtime that gives none) judges by
	// PendingRestart alone.
	if got := pt.Strings(plan.Next(three(), pt.Steady("c-1", 1, t0), obs, t0.Add(time.Second)).Actions); !reflect.DeepEqual(got, []string{"demote c-1"}) {
		t.Errorf("no manifests in the spec: got %q", got)
	}
}

// TestRollingRestartOldManager: an instance manager older than the
// manifest field reports none. It is not counted as running the current
// manifest (or the update would go on as before the field, switching
// over to a replica with the old settings): its replica holds the
// primary's restart, saying why, until a restart brings a current manager
// (on Kubernetes an operator upgrade outdates its pod's images, so it
// reports PendingRestart and its restart recreates it).
func TestRollingRestartOldManager(t *testing.T) {
	const cur = "c0ffeec0ffeec0ffee"
	spec := three()
	spec.Manifests = map[string]string{"c-1": cur, "c-2": cur, "c-3": cur}
	primary := pt.Primary("c-1", 1, l5)
	primary.PendingRestart = true
	oldC2 := pt.Replica("c-2", "c-1", l5) // no Manifest: an old manager
	c3 := pt.Replica("c-3", "c-1", l5)
	c3.Manifest = cur
	r := plan.Next(spec, pt.Steady("c-1", 1, t0), []plan.InstanceStatus{primary, oldC2, c3}, t0.Add(time.Second))
	want := hold("primary c-1 needs a restart for new settings: waiting for replica c-2 to report the manifest it runs (its instance manager is older than this controller: restart it with the current version)")
	if got := pt.Strings(r.Actions); !reflect.DeepEqual(got, []string{want}) {
		t.Fatalf("old manager, nothing pending:\n got  %q\n want %q", got, want)
	}
	// Outdated (its pod's images changed): restarted like any pending one.
	oldC2.PendingRestart = true
	r = plan.Next(spec, pt.Steady("c-1", 1, t0), []plan.InstanceStatus{primary, oldC2, c3}, t0.Add(time.Second))
	if got := pt.Strings(r.Actions); !reflect.DeepEqual(got, []string{"restart c-2"}) {
		t.Fatalf("old manager, outdated: got %q", got)
	}
	// Back with a current manager: updated, the update goes on.
	newC2 := pt.Replica("c-2", "c-1", l9)
	newC2.Manifest = cur
	r = plan.Next(spec, pt.Steady("c-1", 1, t0), []plan.InstanceStatus{primary, newC2, c3}, t0.Add(2*time.Second))
	if got := pt.Strings(r.Actions); !reflect.DeepEqual(got, []string{"demote c-1"}) || r.Memory.Switchover.To != "c-2" {
		t.Fatalf("current manager: got %q, switchover %+v", got, r.Memory.Switchover)
	}
}
