package plan_test

import (
	"testing"
	"time"

	"github.com/pgward/pgward/internal/plan"
	pt "github.com/pgward/pgward/internal/plan/plantest"
)

// TestSyncFailureDomains: with Spec.SyncDomains, synchronous standbys are
// chosen only among instances in another failure domain than the
// primary's; an unknown domain (the instance's or the primary's) is never
// shown to differ, and required durability with no eligible standby makes
// writes wait on a name no standby has.
func TestSyncFailureDomains(t *testing.T) {
	domains := func(lo, hi int, d map[string]string) plan.Spec {
		s := syncSpec(lo, hi)
		s.SyncDomains = d
		return s
	}
	primary := func(name, sync string) plan.InstanceStatus {
		s := pt.Primary(name, 1, l5)
		s.SyncStandbyNames = sync
		return s
	}
	azs := map[string]string{"c-1": "az=a", "c-2": "az=a", "c-3": "az=b"}
	async := withSync(pt.Steady("c-1", 1, t0), plan.SyncConfig{})
	runCases(t, []nextCase{{
		name: "no constraint: both streaming replicas",
		spec: syncSpec(1, 2), mem: async, at: time.Second,
		obs:  []plan.InstanceStatus{primary("c-1", ""), pt.Replica("c-2", "c-1", l5), pt.Replica("c-3", "c-1", l5)},
		want: []string{`set-sync-standbys c-1 sync="ANY 2 (\"c-2\",\"c-3\")"`},
	}, {
		name: "the replica in the primary's zone is left out",
		spec: domains(1, 2, azs), mem: async, at: time.Second,
		obs:  []plan.InstanceStatus{primary("c-1", ""), pt.Replica("c-2", "c-1", l5), pt.Replica("c-3", "c-1", l5)},
		want: []string{`set-sync-standbys c-1 sync="ANY 1 (\"c-3\")"`}, event: plan.ReasonSyncStandbys,
	}, {
		name: "the other zone's replica down under required durability: listed anyway, writes wait for it",
		spec: domains(1, 1, azs), mem: async, at: time.Second,
		obs:  []plan.InstanceStatus{primary("c-1", ""), pt.Replica("c-2", "c-1", l5), pt.Unreachable("c-3")},
		want: []string{`set-sync-standbys c-1 sync="ANY 1 (\"c-3\")"`},
	}, {
		name: "the other zone's replica down under preferred durability: asynchronous, never the same zone's",
		spec: domains(0, 1, azs), mem: withSync(pt.Steady("c-1", 1, t0), anyOf(1, "c-3")), at: time.Second,
		obs:  []plan.InstanceStatus{primary("c-1", `ANY 1 ("c-3")`), pt.Replica("c-2", "c-1", l5), pt.Unreachable("c-3")},
		want: []string{`set-sync-standbys c-1 sync=""`},
	}, {
		name: "every instance in the primary's zone, required durability: a name no standby has",
		spec: domains(1, 1, map[string]string{"c-1": "az=a", "c-2": "az=a", "c-3": "az=a"}), mem: async, at: time.Second,
		obs:  []plan.InstanceStatus{primary("c-1", ""), pt.Replica("c-2", "c-1", l5), pt.Replica("c-3", "c-1", l5)},
		want: []string{`set-sync-standbys c-1 sync="ANY 1 (\"` + plan.NoEligibleStandby + `\")"`},
	}, {
		name: "a replica of unknown domain is not eligible",
		spec: domains(1, 2, map[string]string{"c-1": "az=a", "c-3": "az=b"}), mem: async, at: time.Second,
		obs:  []plan.InstanceStatus{primary("c-1", ""), pt.Replica("c-2", "c-1", l5), pt.Replica("c-3", "c-1", l5)},
		want: []string{`set-sync-standbys c-1 sync="ANY 1 (\"c-3\")"`},
	}, {
		name: "the primary's domain unknown: none is shown to differ",
		spec: domains(0, 2, map[string]string{"c-2": "az=b", "c-3": "az=c"}), mem: withSync(pt.Steady("c-1", 1, t0), anyOf(1, "c-3")), at: time.Second,
		obs:  []plan.InstanceStatus{primary("c-1", `ANY 1 ("c-3")`), pt.Replica("c-2", "c-1", l5), pt.Replica("c-3", "c-1", l5)},
		want: []string{`set-sync-standbys c-1 sync=""`},
	}, {
		name: "after a failover to c-3 (zone b) both zone-a replicas are eligible",
		spec: domains(1, 1, azs), mem: withSync(pt.Steady("c-1", 1, t0), anyOf(1, "c-3")), at: time.Second,
		obs:   []plan.InstanceStatus{pt.Dead(primary("c-1", `ANY 1 ("c-3")`)), pt.Replica("c-2", "", l4), pt.Replica("c-3", "", l5)},
		want:  []string{"fence c-1", `promote c-3 epoch=2 sync="ANY 1 (\"c-2\")"`, "follow c-2 from=c-3"},
		epoch: 2, target: "c-3",
	}})
}

// TestFailureDomain: the same label values make the same domain, any
// difference another; a label missing differs from one set to "", and a
// value cannot pose as another key's.
func TestFailureDomain(t *testing.T) {
	keys := []string{"az", "rack"}
	d := func(pod, node map[string]string) string { return plan.FailureDomain([]string{"zone"}, keys, pod, node) }
	a := d(map[string]string{"zone": "1"}, map[string]string{"az": "a", "rack": "r1", "other": "x"})
	for _, tc := range []struct {
		name      string
		pod, node map[string]string
		same      bool
	}{
		{"other labels differ", map[string]string{"zone": "1", "x": "y"}, map[string]string{"az": "a", "rack": "r1"}, true},
		{"node label differs", map[string]string{"zone": "1"}, map[string]string{"az": "b", "rack": "r1"}, false},
		{"pod label differs", map[string]string{"zone": "2"}, map[string]string{"az": "a", "rack": "r1"}, false},
		{"node label missing", map[string]string{"zone": "1"}, map[string]string{"az": "a"}, false},
		{"empty rather than missing", map[string]string{"zone": "1"}, map[string]string{"az": "a", "rack": ""}, false},
		{"a value posing as the next key", map[string]string{"zone": "1"}, map[string]string{"az": `a";node "rack"="r1`}, false},
	} {
		if got := d(tc.pod, tc.node) == a; got != tc.same {
			t.Errorf("%s: same domain = %v, want %v", tc.name, got, tc.same)
		}
	}
	if d(nil, nil) != d(map[string]string{}, map[string]string{}) {
		t.Error("no labels at all must be one domain")
	}
}
