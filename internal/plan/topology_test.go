package plan_test

import (
	"testing"
	"time"

	"github.com/pgward/pgward/internal/plan"
	pt "github.com/pgward/pgward/internal/plan/plantest"
)

func onTimeline(s plan.InstanceStatus, tl uint32) plan.InstanceStatus {
	s.Timeline = tl
	return s
}

func TestNextReplicas(t *testing.T) {
	steady2 := pt.Steady("c-2", 2, t0)
	diverged := steady2
	diverged.Diverged = map[string]time.Time{"c-1": t0}
	runCases(t, []nextCase{{
		name: "two instances claim primary: the target at the current epoch stays, the other is fenced and rejoined",
		spec: three(), mem: steady2, at: time.Second,
		obs: []plan.InstanceStatus{
			pt.Primary("c-1", 1, l9), onTimeline(pt.Primary("c-2", 2, l5), 2), onTimeline(pt.Replica("c-3", "c-2", l5), 2),
		},
		want:  []string{"fence c-1", "rejoin c-1 from=c-2"},
		epoch: 2, target: "c-2", event: plan.ReasonSplitBrain,
	}, {
		name: "two instances claim primary while the target is down: the other is fenced, nobody promoted",
		spec: three(), mem: plan.Memory{Epoch: 2, TargetPrimary: "c-2", CurrentPrimary: "c-1", PrimaryLastSeen: t0}, at: time.Second,
		obs: []plan.InstanceStatus{
			pt.Primary("c-1", 1, l9), pt.Replica("c-2", "", l5), pt.Replica("c-3", "", l5),
		},
		want:  []string{"fence c-1", hold("not promoting c-2 while c-1 may accept writes")},
		epoch: 2,
	}, {
		name: "replica on an older timeline, not streaming: repointed first",
		spec: three(), mem: steady2, at: time.Second,
		obs: []plan.InstanceStatus{
			onTimeline(pt.Replica("c-1", "", l9), 1), onTimeline(pt.Primary("c-2", 2, l5), 2), onTimeline(pt.Replica("c-3", "c-2", l5), 2),
		},
		want: []string{"follow c-1 from=c-2"},
		checkFn: func(t *testing.T, r plan.Ready) {
			if got := r.Memory.Diverged["c-1"]; got != t0.Add(time.Second) {
				t.Errorf("diverged since %v", got)
			}
		},
	}, {
		name: "replica still on an older timeline after the grace: rewound",
		spec: three(), mem: diverged, at: 6 * time.Second,
		obs: []plan.InstanceStatus{
			onTimeline(pt.Replica("c-1", "", l9), 1), onTimeline(pt.Primary("c-2", 2, l5), 2), onTimeline(pt.Replica("c-3", "c-2", l5), 2),
		},
		want: []string{"rejoin c-1 from=c-2"}, event: plan.ReasonRejoin,
	}, {
		name: "replica that caught up with the timeline switch is forgotten",
		spec: three(), mem: diverged, at: 6 * time.Second,
		obs: []plan.InstanceStatus{
			onTimeline(pt.Replica("c-1", "c-2", l5), 2), onTimeline(pt.Primary("c-2", 2, l5), 2), onTimeline(pt.Replica("c-3", "c-2", l5), 2),
		},
		checkFn: func(t *testing.T, r plan.Ready) {
			if r.Memory.Diverged != nil {
				t.Errorf("diverged %v", r.Memory.Diverged)
			}
		},
	}, {
		name: "fenced old primary back after a failover: rejoined",
		spec: three(), mem: steady2, at: time.Second,
		obs: []plan.InstanceStatus{
			{Name: "c-1", Reachable: true, Fenced: true, Role: plan.RolePrimary, Epoch: 1, Timeline: 1, CurrentLSN: l9},
			onTimeline(pt.Primary("c-2", 2, l5), 2), onTimeline(pt.Replica("c-3", "c-2", l5), 2),
		},
		want: []string{"rejoin c-1 from=c-2"},
	}, {
		name: "replica lost its data: recreated; stopped replica: restarted by follow",
		spec: three(), mem: pt.Steady("c-1", 1, t0), at: time.Second,
		obs:  []plan.InstanceStatus{pt.Primary("c-1", 1, l5), pt.Empty("c-2"), pt.Dead(pt.Replica("c-3", "c-1", l5))},
		want: []string{"recreate c-2 from=c-1", "follow c-3 from=c-1"},
	}, {
		name: "replica fenced by an operator: left alone",
		spec: three(), mem: pt.Steady("c-1", 1, t0), at: time.Second,
		obs: []plan.InstanceStatus{
			pt.Primary("c-1", 1, l5), pt.Replica("c-2", "c-1", l5),
			{Name: "c-3", Reachable: true, Fenced: true, Role: plan.RoleReplica, Timeline: 1},
		},
	}})
}

func TestNextBootstrap(t *testing.T) {
	runCases(t, []nextCase{{
		name: "brand new cluster: the first instance bootstraps",
		spec: three(), at: 0,
		obs:   []plan.InstanceStatus{pt.Empty("c-1"), pt.Empty("c-2"), pt.Empty("c-3")},
		want:  []string{`bootstrap c-1 epoch=1 sync=""`},
		epoch: 1, target: "c-1", event: plan.ReasonBootstrap,
	}, {
		name: "brand new cluster with required sync: bootstraps with writes waiting for a standby",
		spec: syncSpec(1, 2), at: 0,
		obs:  []plan.InstanceStatus{pt.Empty("c-1"), pt.Empty("c-2"), pt.Empty("c-3")},
		want: []string{`bootstrap c-1 epoch=1 sync="ANY 1 (\"c-2\",\"c-3\")"`},
	}, {
		name: "an instance missing: no bootstrap",
		spec: three(),
		obs:  []plan.InstanceStatus{pt.Empty("c-1"), pt.Empty("c-2")},
		want: []string{hold("bootstrap waits until every instance answers (c-3 does not)")},
	}, {
		name: "bootstrap done: recorded, replicas cloned",
		spec: three(), mem: plan.Memory{Epoch: 1, TargetPrimary: "c-1", PrimaryLastSeen: t0}, at: time.Second,
		obs:    []plan.InstanceStatus{pt.Primary("c-1", 1, pt.Base), pt.Empty("c-2"), pt.Empty("c-3")},
		want:   []string{"recreate c-2 from=c-1", "recreate c-3 from=c-1"},
		target: "c-1", event: plan.ReasonPrimaryReady,
		checkFn: func(t *testing.T, r plan.Ready) {
			if r.Memory.CurrentPrimary != "c-1" {
				t.Errorf("current %q", r.Memory.CurrentPrimary)
			}
		},
	}, {
		name: "lost memory, one primary: adopted",
		spec: three(),
		obs:  []plan.InstanceStatus{pt.Replica("c-1", "c-2", l5), pt.Primary("c-2", 4, l5), pt.Replica("c-3", "c-2", l5)},
		want: nil, epoch: 4, target: "c-2", event: plan.ReasonAdopted,
	}, {
		name: "lost memory, two primaries: refuse to guess",
		spec: three(),
		obs:  []plan.InstanceStatus{pt.Primary("c-1", 3, l5), pt.Primary("c-2", 4, l5), pt.Replica("c-3", "c-2", l5)},
		want: []string{hold("memory is empty and no single primary at the highest epoch can be adopted (2 accept writes): refusing to guess")},
	}, {
		name: "invalid spec: hold",
		spec: pt.Spec("c-1", "c-1"),
		want: []string{hold(`invalid spec: instance "c-1" listed twice`)},
	}})
}

func TestNextSync(t *testing.T) {
	both := anyOf(2, "c-2", "c-3")
	steady := withSync(pt.Steady("c-1", 1, t0), both)
	primary := func(sync string) plan.InstanceStatus {
		s := pt.Primary("c-1", 1, l5)
		s.SyncStandbyNames = sync
		return s
	}
	runCases(t, []nextCase{{
		name: "sync standby lost: the names shrink to the streaming replicas",
		spec: syncSpec(1, 2), mem: steady, at: time.Second,
		obs:   []plan.InstanceStatus{primary(both.String()), pt.Replica("c-2", "c-1", l5), pt.Unreachable("c-3")},
		want:  []string{`set-sync-standbys c-1 sync="ANY 1 (\"c-2\")"`},
		event: plan.ReasonSyncStandbys,
		checkFn: func(t *testing.T, r plan.Ready) {
			if len(r.Memory.SyncStandbys) != 2 {
				t.Errorf("history %v: the old value must stay until covered", r.Memory.SyncStandbys)
			}
		},
	}, {
		name: "new value applied and covered: the old one is forgotten",
		spec: syncSpec(1, 2), mem: withSync(pt.Steady("c-1", 1, t0), both, anyOf(1, "c-2")), at: time.Second,
		obs: []plan.InstanceStatus{primary(anyOf(1, "c-2").String()), pt.Replica("c-2", "c-1", l5), pt.Unreachable("c-3")},
		checkFn: func(t *testing.T, r plan.Ready) {
			if len(r.Memory.SyncStandbys) != 1 || r.Memory.SyncStandbys[0].String() != `ANY 1 ("c-2")` {
				t.Errorf("history %v", r.Memory.SyncStandbys)
			}
		},
	}, {
		name: "new value applied but not covered: both kept",
		spec: syncSpec(1, 2), mem: withSync(pt.Steady("c-1", 1, t0), both, anyOf(1, "c-2")), at: time.Second,
		obs: []plan.InstanceStatus{primary(anyOf(1, "c-2").String()), pt.Replica("c-2", "c-1", l4), pt.Unreachable("c-3")},
		checkFn: func(t *testing.T, r plan.Ready) {
			if len(r.Memory.SyncStandbys) != 2 || r.Memory.SyncCoverLSN != l5 {
				t.Errorf("history %v cover %v", r.Memory.SyncStandbys, r.Memory.SyncCoverLSN)
			}
		},
	}, {
		name: "requested value not applied yet: requested again",
		spec: syncSpec(1, 2), mem: withSync(pt.Steady("c-1", 1, t0), both, anyOf(1, "c-2")), at: time.Second,
		obs:  []plan.InstanceStatus{primary(both.String()), pt.Replica("c-2", "c-1", l5), pt.Unreachable("c-3")},
		want: []string{`set-sync-standbys c-1 sync="ANY 1 (\"c-2\")"`},
	}, {
		name: "fewer streaming replicas than minSyncReplicas: the names stay, writes wait",
		spec: syncSpec(2, 2), mem: steady, at: time.Second,
		obs: []plan.InstanceStatus{primary(both.String()), pt.Replica("c-2", "c-1", l5), pt.Unreachable("c-3")},
	}, {
		name: "asynchronous primary under a sync spec: names set",
		spec: syncSpec(1, 1), mem: withSync(pt.Steady("c-1", 1, t0), plan.SyncConfig{}), at: time.Second,
		obs:  []plan.InstanceStatus{primary(""), pt.Replica("c-2", "c-1", l5), pt.Replica("c-3", "c-1", l5)},
		want: []string{`set-sync-standbys c-1 sync="ANY 1 (\"c-2\",\"c-3\")"`},
	}, {
		name: "only the synchronous standby is promoted, even if another is ahead",
		spec: syncSpec(1, 1), mem: withSync(pt.Steady("c-1", 1, t0), anyOf(1, "c-2")), at: time.Second,
		obs:   []plan.InstanceStatus{pt.Dead(primary(`ANY 1 ("c-2")`)), pt.Replica("c-2", "", l4), pt.Replica("c-3", "", l5)},
		want:  []string{"fence c-1", `promote c-2 epoch=2 sync="ANY 1 (\"c-3\")"`, "follow c-3 from=c-2"},
		epoch: 2, target: "c-2",
	}, {
		name: "synchronous standby unavailable: hold rather than lose an acknowledged commit; restart the old primary",
		spec: syncSpec(1, 1), mem: withSync(pt.Steady("c-1", 1, t0), anyOf(1, "c-2")), at: time.Second,
		obs:  []plan.InstanceStatus{pt.Dead(primary(`ANY 1 ("c-2")`)), pt.Unreachable("c-2"), pt.Replica("c-3", "", l5)},
		want: []string{hold(`not promoting: under "ANY 1 (\"c-2\")" a commit is acknowledged once 1 standbys have it, so 1 of them must be ready to find the latest one; 0 are`), "start c-1"},
	}, {
		name: "quorum of one among two: both must answer to find the latest commit",
		spec: syncSpec(1, 1), mem: withSync(pt.Steady("c-1", 1, t0), anyOf(1, "c-2", "c-3")), at: time.Second,
		obs:  []plan.InstanceStatus{pt.Dead(primary("")), pt.Unreachable("c-2"), pt.Replica("c-3", "", l5)},
		want: []string{hold(`not promoting: under "ANY 1 (\"c-2\",\"c-3\")" a commit is acknowledged once 1 standbys have it, so 2 of them must be ready to find the latest one; 1 are`), "start c-1"},
	}, {
		name: "a change in flight: both values must be satisfied",
		spec: syncSpec(1, 2), mem: withSync(pt.Steady("c-1", 1, t0), both, anyOf(1, "c-2")), at: time.Second,
		obs:   []plan.InstanceStatus{pt.Dead(primary("")), pt.Replica("c-2", "", l4), pt.Replica("c-3", "", l5)},
		want:  []string{"fence c-1", `promote c-3 epoch=2 sync="ANY 1 (\"c-2\")"`, "follow c-2 from=c-3"},
		epoch: 2,
	}, {
		name: "preferred sync without failoverQuorum: the most advanced replica is promoted, with a warning",
		spec: syncSpec(0, 1), mem: withSync(pt.Steady("c-1", 1, t0), anyOf(1, "c-2", "c-3")), at: time.Second,
		obs:   []plan.InstanceStatus{pt.Dead(primary("")), pt.Unreachable("c-2"), pt.Replica("c-3", "", l5)},
		want:  []string{"fence c-1", `promote c-3 epoch=2 sync=""`},
		epoch: 2, target: "c-3",
	}, {
		name: "preferred sync with failoverQuorum: hold until enough standbys answer",
		spec: quorumSpec(), mem: withSync(pt.Steady("c-1", 1, t0), anyOf(1, "c-2", "c-3")), at: time.Second,
		obs:  []plan.InstanceStatus{pt.Dead(primary("")), pt.Unreachable("c-2"), pt.Replica("c-3", "", l5)},
		want: []string{hold(`not promoting: under "ANY 1 (\"c-2\",\"c-3\")" a commit is acknowledged once 1 standbys have it, so 2 of them must be ready to find the latest one; 1 are`), "start c-1"},
	}, {
		name: "preferred sync with failoverQuorum: both answer, the most advanced is promoted",
		spec: quorumSpec(), mem: withSync(pt.Steady("c-1", 1, t0), anyOf(1, "c-2", "c-3")), at: time.Second,
		obs:   []plan.InstanceStatus{pt.Dead(primary("")), pt.Replica("c-2", "", l4), pt.Replica("c-3", "", l5)},
		want:  []string{"fence c-1", `promote c-3 epoch=2 sync="ANY 1 (\"c-2\")"`, "follow c-2 from=c-3"},
		epoch: 2, target: "c-3",
	}, {
		name: "required sync but nothing ever recorded: hold",
		spec: syncSpec(1, 1), mem: pt.Steady("c-1", 1, t0), at: time.Second,
		obs:  []plan.InstanceStatus{pt.Dead(primary("")), pt.Replica("c-2", "", l4), pt.Replica("c-3", "", l5)},
		want: []string{hold("not promoting: no synchronous_standby_names was ever recorded for the primary, so no replica is known to hold its acknowledged commits"), "start c-1"},
	}})
}
