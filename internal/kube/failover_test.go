package kube_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/kube/build"
	"github.com/pgward/pgward/internal/plan"
	"github.com/pgward/pgward/internal/plan/plantest"
)

// simInstances answers for the instance managers with plantest.Sim, a
// deterministic model of a cluster that executes the planner's actions:
// no kubelet runs in these tests, so there are no real instances to ask.
// Everything else (the reconciler, the API server, the Services, the
// labels, the persisted memory) is real.
type simInstances struct {
	mu  sync.Mutex
	sim *plantest.Sim
	id  uint64
	// onCommand runs before each command is applied.
	onCommand func(in kube.Instance, cmd instanceapi.Command)
	// stale names the instances whose kubelet has not refreshed their
	// config Secret yet: they report the manifest given here. The others
	// report the one their Secret holds (a kubelet that refreshes at once,
	// a manager that loads it at once).
	stale map[string]string
	// pending names the instances that report a restart pending until a
	// restart command reaches them.
	pending map[string]bool
}

// manifestOf is the hex SHA-256 of in's manifest in its config Secret, as
// the instance manager would report it once loaded ("" without one).
func manifestOf(in kube.Instance) string {
	ns, _, _ := strings.Cut(in.Cluster, "/")
	var sec corev1.Secret
	if err := admin.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: build.InstanceConfigSecretName(in.Name)}, &sec); err != nil {
		return ""
	}
	sum := sha256.Sum256(sec.Data[build.ClusterKeyJSON])
	return hex.EncodeToString(sum[:])
}

func (s *simInstances) Status(_ context.Context, in kube.Instance, _ uint64) (*instanceapi.Status, error) {
	mounted := manifestOf(in)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.sim.Observe() {
		if st.Name != in.Name {
			continue
		}
		if !st.Reachable {
			return nil, errors.New("no answer")
		}
		s.id++
		w := toWire(st, s.id)
		if w.PostmasterRunning {
			w.ManifestSHA256 = mounted
			if m, ok := s.stale[in.Name]; ok {
				w.ManifestSHA256 = m
			}
			w.PendingRestart = s.pending[in.Name]
		}
		return w, nil
	}
	return nil, fmt.Errorf("no instance %s", in.Name)
}

func (s *simInstances) Command(_ context.Context, in kube.Instance, cmd instanceapi.Command) error {
	if s.onCommand != nil {
		s.onCommand(in, cmd)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cmd.Kind == instanceapi.CommandRestart || cmd.Kind == instanceapi.CommandDemote {
		// Its start after either runs what it has loaded.
		delete(s.pending, in.Name)
	}
	a := plan.Action{Instance: in.Name, Epoch: cmd.Epoch, SyncStandbys: cmd.SyncStandbys}
	if cmd.Primary != nil {
		a.Primary = cmd.Primary.Name
	}
	kinds := map[string]plan.ActionKind{
		instanceapi.CommandBootstrap: plan.ActionBootstrap, instanceapi.CommandPromote: plan.ActionPromote,
		instanceapi.CommandFollow: plan.ActionFollow, instanceapi.CommandFence: plan.ActionFence,
		instanceapi.CommandStart: plan.ActionStart, instanceapi.CommandDemote: plan.ActionDemote,
		instanceapi.CommandRejoin: plan.ActionRejoin, instanceapi.CommandRecreate: plan.ActionRecreate,
		instanceapi.CommandSetSyncStandbys: plan.ActionSetSyncStandbys, instanceapi.CommandRestart: plan.ActionRestart,
	}
	k, ok := kinds[cmd.Kind]
	if !ok {
		return fmt.Errorf("unknown command %q", cmd.Kind)
	}
	a.Kind = k
	return s.sim.Apply([]plan.Action{a})
}

// toWire is what an instance manager would answer for st.
func toWire(st plan.InstanceStatus, id uint64) *instanceapi.Status {
	lsn := func(l plan.LSN) string {
		if l == 0 {
			return ""
		}
		return l.String()
	}
	role := string(st.Role)
	if role == "" {
		role = instanceapi.RoleUnknown
	}
	return &instanceapi.Status{
		Name: st.Name, Role: role, PostmasterRunning: st.PostmasterRunning, Ready: st.PostmasterRunning,
		Empty: st.Empty, Fenced: st.Fenced, Epoch: st.Epoch, Timeline: st.Timeline,
		CurrentLSN: lsn(st.CurrentLSN), ReceivedLSN: lsn(st.ReceivedLSN), ReplayedLSN: lsn(st.ReplayedLSN),
		StreamingFrom: st.StreamingFrom, SyncStandbyNames: st.SyncStandbyNames, RequestID: id,
		Phase: "running", SelfFence: new(kube.DefaultTiming().SelfFence),
	}
}

// TestSimulatedFailover bootstraps a three-instance cluster through the
// real reconciler, lets ha-2 fall behind, takes the primary away, and
// checks that the operator promotes the most advanced replica (ha-3),
// persisted that decision before sending the promotion, and relabelled the
// pods so that the read-write Service selects ha-3 alone.
func TestSimulatedFailover(t *testing.T) {
	ns := newNamespace(t, true)
	ctx := ctxFor(t)
	c := sampleCluster(t, ns)
	c.Name = "ha"
	createCluster(t, c)

	var mu sync.Mutex
	clock := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	sim := plantest.NewSim(clock, kube.DefaultTiming().SelfFence, "ha-1", "ha-2", "ha-3")
	advance := func(d time.Duration) {
		mu.Lock()
		clock = clock.Add(d)
		mu.Unlock()
		sim.Now = now()
		sim.Step()
	}
	type promotion struct {
		to                      string
		epoch                   uint64
		persistedTarget, stored string
	}
	var promotions []promotion
	instances := &simInstances{sim: sim}
	instances.onCommand = func(in kube.Instance, cmd instanceapi.Command) {
		if cmd.Kind != instanceapi.CommandPromote {
			return
		}
		// What the API server holds when the promotion is sent.
		var stored v1.Cluster
		if err := admin.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "ha"}, &stored); err != nil {
			t.Errorf("reading the cluster: %v", err)
		}
		mem := string(stored.Status.PlannerMemory.Raw)
		promotions = append(promotions, promotion{in.Name, cmd.Epoch, stored.Status.TargetPrimary, mem})
	}
	r := newReconciler(instances, now)
	status := func() v1.ClusterStatus {
		var got v1.Cluster
		if err := admin.Get(ctx, client.ObjectKeyFromObject(c), &got); err != nil {
			t.Fatal(err)
		}
		return got.Status
	}

	// Bootstrap: ha-1 is initdb'd, the others cloned; writes flow.
	for i := 0; ; i++ {
		reconcileOnce(t, r, c)
		advance(time.Second)
		sim.Write()
		st := status()
		if st.CurrentPrimary == "ha-1" && st.ReadyInstances == 3 && st.Phase == kube.PhaseHealthy {
			break
		}
		if i > 30 {
			t.Fatalf("cluster not healthy after %d rounds: %+v", i, st)
		}
	}
	if st := status(); st.TargetPrimary != "ha-1" || st.TimelineID != 1 {
		t.Fatalf("after bootstrap: %+v", st)
	}
	assertRW(t, ns, "ha", "ha-1")

	// ha-2 misses some writes; then the primary drops off the network.
	sim.Node("ha-2").Isolated = true
	for range 3 {
		sim.Write()
	}
	sim.Node("ha-1").Isolated = true
	sim.Node("ha-2").Isolated = false
	advance(time.Second)

	for i := 0; ; i++ {
		reconcileOnce(t, r, c)
		advance(5 * time.Second)
		if st := status(); st.CurrentPrimary == "ha-3" {
			break
		}
		if i > 40 {
			t.Fatalf("no failover after %d rounds: %+v", i, status())
		}
	}
	st := status()
	t.Logf("after failover: %s; promotions %+v", st.Phase, promotions)
	if st.TargetPrimary != "ha-3" || st.TimelineID != 2 {
		t.Errorf("after failover: target %s timeline %d, want ha-3 on timeline 2", st.TargetPrimary, st.TimelineID)
	}
	if len(promotions) == 0 || promotions[0].to != "ha-3" || promotions[0].epoch != 2 {
		t.Fatalf("promotions %+v, want ha-3 at epoch 2", promotions)
	}
	// The decision was durable before it was acted on.
	if p := promotions[0]; p.persistedTarget != "ha-3" {
		t.Errorf("when ha-3 was promoted the stored target was %q (memory %s)", p.persistedTarget, p.stored)
	}
	// And counted once on the operator's metrics endpoint.
	if v := operatorMetrics(t)["pgward_operator_failovers_total{cluster=ha,namespace="+ns+"}"]; v != 1 {
		t.Errorf("pgward_operator_failovers_total = %v, want 1", v)
	}
	assertRW(t, ns, "ha", "ha-3")
	if lost := sim.Lost("ha-3"); len(lost) > 0 {
		t.Logf("asynchronous replication lost acknowledged writes %v (expected without sync replicas)", lost)
	}
	// The old primary comes back: it is rejoined as a replica, never left
	// writable beside ha-3.
	sim.Node("ha-1").Isolated = false
	for i := 0; ; i++ {
		reconcileOnce(t, r, c)
		advance(time.Second)
		if w := sim.Writable(); len(w) != 1 || w[0] != "ha-3" {
			t.Fatalf("writable instances %v", w)
		}
		if st := status(); st.ReadyInstances == 3 && st.Phase == kube.PhaseHealthy {
			break
		}
		if i > 40 {
			t.Fatalf("old primary not rejoined: %+v", status())
		}
	}
	assertRW(t, ns, "ha", "ha-3")
}

// assertRW checks that the read-write Service selects exactly primary, and
// the read-only Service exactly the others.
func assertRW(t *testing.T, ns, cluster, primary string) {
	t.Helper()
	ctx := ctxFor(t)
	selected := func(svc string) []string {
		var s corev1.Service
		if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: svc}, &s); err != nil {
			t.Fatal(err)
		}
		var pods corev1.PodList
		if err := admin.List(ctx, &pods, client.InNamespace(ns),
			client.MatchingLabelsSelector{Selector: labels.SelectorFromSet(s.Spec.Selector)}); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, p := range pods.Items {
			names = append(names, p.Name)
		}
		return names
	}
	if got := selected(cluster + "-rw"); len(got) != 1 || got[0] != primary {
		t.Errorf("%s-rw selects %v, want [%s]", cluster, got, primary)
	}
	for _, p := range selected(cluster + "-ro") {
		if p == primary {
			t.Errorf("%s-ro selects the primary %s", cluster, primary)
		}
	}
	var pod corev1.Pod
	if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: primary}, &pod); err != nil {
		t.Fatal(err)
	}
	if pod.Labels[build.RoleLabel] != build.RolePrimary {
		t.Errorf("%s labels %v", primary, pod.Labels)
	}
}

// TestSwitchoverRequest: the pgward.io/switchover-to annotation (what
// `pgward promote` sets) makes the operator switch over to that instance
// through the planner, and is removed once taken.
func TestSwitchoverRequest(t *testing.T) {
	ns := newNamespace(t, false)
	ctx := ctxFor(t)
	c := sampleCluster(t, ns)
	c.Name = "sw"
	h := newSimHarness(t, c, nil)
	sim, get, until := h.sim, h.get, h.until
	until("healthy", func(c v1.Cluster) bool { return c.Status.CurrentPrimary == "sw-1" && c.Status.ReadyInstances == 3 })

	// What `pgward promote sw sw-3` does, without waiting (nothing
	// reconciles in the background here).
	done := make(chan error, 1)
	go func() {
		done <- kube.RequestSwitchover(ctx, admin, client.ObjectKeyFromObject(c), "sw-3", time.Minute)
	}()
	until("switched over", func(c v1.Cluster) bool { return c.Status.CurrentPrimary == "sw-3" && c.Status.ReadyInstances == 3 })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, ok := get().Annotations[v1.SwitchoverAnnotation]; ok {
		t.Error("the request annotation is still there")
	}
	if lost := sim.Lost("sw-3"); len(lost) > 0 {
		t.Errorf("writes lost in the switchover: %v", lost)
	}
	assertRW(t, ns, "sw", "sw-3")
	if v := operatorMetrics(t)["pgward_operator_switchovers_total{cluster=sw,namespace="+ns+",result=promoting}"]; v != 1 {
		t.Errorf("pgward_operator_switchovers_total{result=promoting} = %v, want 1", v)
	}
}
