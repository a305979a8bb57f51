package plan_test

import (
	"testing"

	"github.com/pgward/pgward/internal/plan"
	pt "github.com/pgward/pgward/internal/plan/plantest"
)

func replicaSpec() plan.Spec {
	s := three()
	s.ReplicaCluster = true
	return s
}

// head is a replica cluster's designated primary at epoch: a standby of
// the source (streaming from no instance of the cluster).
func head(name string, epoch uint64, lsn plan.LSN) plan.InstanceStatus {
	s := pt.Replica(name, "", lsn)
	s.Designated, s.Epoch = true, epoch
	return s
}

// TestReplicaCluster covers the designated primary of a replica cluster:
// it is the cluster's head although it is a standby, its failure makes
// another instance the designated primary (never a writable primary), and
// turning the replica mode off promotes it in place at a new epoch.
func TestReplicaCluster(t *testing.T) {
	steady := pt.Steady("c-1", 1, t0)
	runCases(t, []nextCase{
		{
			name: "bootstrap makes the first instance the designated primary",
			spec: replicaSpec(),
			obs:  []plan.InstanceStatus{pt.Empty("c-1"), pt.Empty("c-2"), pt.Empty("c-3")},
			want: []string{`bootstrap c-1 epoch=1 sync="" designated`},
		},
		{
			name:  "a bootstrapped designated primary is the head: its replicas are cloned from it",
			spec:  replicaSpec(),
			mem:   plan.Memory{Epoch: 1, TargetPrimary: "c-1", PrimaryLastSeen: t0},
			obs:   []plan.InstanceStatus{head("c-1", 1, l5), pt.Empty("c-2"), pt.Empty("c-3")},
			want:  []string{"recreate c-2 from=c-1", "recreate c-3 from=c-1"},
			event: plan.ReasonPrimaryReady,
			checkFn: func(t *testing.T, r plan.Ready) {
				if r.Memory.CurrentPrimary != "c-1" {
					t.Errorf("current primary %q", r.Memory.CurrentPrimary)
				}
			},
		},
		{
			name:  "memory lost: the one designated primary at the highest epoch is adopted",
			spec:  replicaSpec(),
			obs:   []plan.InstanceStatus{head("c-1", 3, l5), pt.Replica("c-2", "c-1", l5), pt.Replica("c-3", "c-1", l5)},
			event: plan.ReasonAdopted,
			epoch: 3, target: "c-1",
		},
		{
			name: "memory lost: two designated primaries, no guess",
			spec: replicaSpec(),
			obs:  []plan.InstanceStatus{head("c-1", 3, l5), head("c-2", 3, l5), pt.Replica("c-3", "c-1", l5)},
			want: []string{`hold reason="memory is empty and no single primary at the highest epoch can be adopted (2 accept writes): refusing to guess"`},
		},
		{
			name: "steady: replicas cascade from the designated primary, nothing to do",
			spec: replicaSpec(),
			mem:  steady,
			obs:  []plan.InstanceStatus{head("c-1", 1, l5), pt.Replica("c-2", "c-1", l5), pt.Replica("c-3", "c-1", l5)},
		},
		{
			name: "a replica streaming from elsewhere is repointed to the designated primary",
			spec: replicaSpec(),
			mem:  steady,
			obs:  []plan.InstanceStatus{head("c-1", 1, l5), pt.Replica("c-2", "", l5), pt.Replica("c-3", "c-1", l5)},
			want: []string{"follow c-2 from=c-1"},
		},
		{
			name: "a standby that is not designated is not the head yet: it is designated again",
			spec: replicaSpec(),
			mem:  plan.Memory{Epoch: 2, TargetPrimary: "c-2", CurrentPrimary: "c-1", PrimaryLastSeen: t0},
			obs:  []plan.InstanceStatus{pt.Dead(head("c-1", 1, l5)), pt.Replica("c-2", "", l5), pt.Replica("c-3", "", l5)},
			want: []string{"fence c-1", `promote c-2 epoch=2 sync="" designated`, "follow c-3 from=c-2"},
		},
		{
			name:   "failover: the dead designated primary is replaced by the most advanced replica, as designated primary",
			spec:   replicaSpec(),
			mem:    steady,
			obs:    []plan.InstanceStatus{pt.Dead(head("c-1", 1, l9)), pt.Replica("c-2", "", l4), pt.Replica("c-3", "", l5)},
			want:   []string{"fence c-1", `promote c-3 epoch=2 sync="" designated`, "follow c-2 from=c-3"},
			epoch:  2,
			target: "c-3",
			event:  plan.ReasonFailover,
		},
		{
			name: "the old designated primary, fenced by the failover, follows the new one",
			spec: replicaSpec(),
			mem:  pt.Steady("c-3", 2, t0),
			obs: func() []plan.InstanceStatus {
				old := pt.Dead(head("c-1", 1, l5))
				old.Fenced = true
				return []plan.InstanceStatus{old, pt.Replica("c-2", "c-3", l5), head("c-3", 2, l5)}
			}(),
			want:  []string{"follow c-1 from=c-3"},
			event: plan.ReasonRejoin,
		},
		{
			name:  "a writable instance in a replica cluster is fenced",
			spec:  replicaSpec(),
			mem:   steady,
			obs:   []plan.InstanceStatus{head("c-1", 1, l5), pt.Primary("c-2", 1, l9), pt.Replica("c-3", "c-1", l5)},
			want:  []string{"fence c-2", "rejoin c-2 from=c-1"},
			event: plan.ReasonSplitBrain,
		},
		{
			name: "a designated primary that needs a restart is restarted in place, never switched over",
			spec: replicaSpec(),
			mem:  steady,
			obs: func() []plan.InstanceStatus {
				h := head("c-1", 1, l5)
				h.PendingRestart = true
				return []plan.InstanceStatus{h, pt.Replica("c-2", "c-1", l5), pt.Replica("c-3", "c-1", l5)}
			}(),
			want: []string{"restart c-1"},
		},
		{
			name: "a switchover request in a replica cluster is refused",
			spec: replicaSpec(),
			mem: func() plan.Memory {
				m := steady
				m.Switchover = plan.Switchover{ID: "x", To: "c-2"}
				return m
			}(),
			obs: []plan.InstanceStatus{head("c-1", 1, l5), pt.Replica("c-2", "c-1", l5), pt.Replica("c-3", "c-1", l5)},
			checkFn: func(t *testing.T, r plan.Ready) {
				if r.SwitchoverOutcome == nil || r.SwitchoverOutcome.Result != plan.SwitchoverRefused {
					t.Errorf("outcome %+v, want refused", r.SwitchoverOutcome)
				}
			},
		},
		{
			name:   "promotion: replica mode off promotes the designated primary in place at a new epoch",
			spec:   three(),
			mem:    steady,
			obs:    []plan.InstanceStatus{head("c-1", 1, l5), pt.Replica("c-2", "c-1", l5), pt.Replica("c-3", "c-1", l5)},
			want:   []string{`promote c-1 epoch=2 sync=""`},
			epoch:  2,
			target: "c-1",
			event:  plan.ReasonReplicaPromoted,
		},
		{
			name:  "promotion in flight: reissued at the same epoch, never decided twice",
			spec:  three(),
			mem:   pt.Steady("c-1", 2, t0),
			obs:   []plan.InstanceStatus{head("c-1", 1, l5), pt.Replica("c-2", "c-1", l5), pt.Replica("c-3", "c-1", l5)},
			want:  []string{`promote c-1 epoch=2 sync=""`},
			epoch: 2,
		},
		{
			name: "promotion in flight: the instance took the epoch and is leaving recovery; no failover",
			spec: three(),
			mem:  pt.Steady("c-1", 2, t0),
			obs: func() []plan.InstanceStatus {
				r := pt.Replica("c-1", "", l5)
				r.Epoch = 2
				return []plan.InstanceStatus{r, pt.Replica("c-2", "c-1", l5), pt.Replica("c-3", "c-1", l5)}
			}(),
			want:  []string{`promote c-1 epoch=2 sync=""`},
			epoch: 2,
		},
		{
			name:  "promotion waits while another instance may accept writes",
			spec:  three(),
			mem:   steady,
			obs:   []plan.InstanceStatus{head("c-1", 1, l5), pt.Primary("c-2", 1, l5), pt.Replica("c-3", "c-1", l5)},
			want:  []string{"fence c-2", `hold reason="not promoting the replica cluster's designated primary c-1 while c-2 may accept writes"`},
			epoch: 1,
		},
		{
			name: "promoted: the new primary is healthy at its epoch, replicas follow it",
			spec: three(),
			mem:  pt.Steady("c-1", 2, t0),
			obs: func() []plan.InstanceStatus {
				p := pt.Primary("c-1", 2, l9)
				p.Timeline = 2
				return []plan.InstanceStatus{p, pt.Replica("c-2", "c-1", l9), pt.Replica("c-3", "c-1", l9)}
			}(),
			checkFn: func(t *testing.T, r plan.Ready) {
				for _, a := range r.Actions {
					if a.Kind != plan.ActionHold {
						t.Errorf("unexpected action %s", a)
					}
				}
			},
		},
	})
}

// TestReplicaClusterSpec: a replica cluster refuses synchronous
// replication (nothing to wait for on a cluster without writes), and the
// replica mode comes from the Cluster.
func TestReplicaClusterSpec(t *testing.T) {
	s := replicaSpec()
	s.MaxSyncReplicas = 1
	if err := s.Validate(); err == nil {
		t.Error("a replica cluster with synchronous replication validated")
	}
	r := plan.Next(s, plan.Memory{}, nil, t0)
	if len(r.Actions) != 1 || r.Actions[0].Kind != plan.ActionHold {
		t.Errorf("actions %v, want a hold", r.Actions)
	}

}
