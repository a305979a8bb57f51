package kube_test

import (
	"context"
	"maps"
	"sync/atomic"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/plan/plantest"
)

// countingInstances counts status requests to one cluster's instances
// (the manager also reconciles the other tests' Clusters).
type countingInstances struct {
	*simInstances
	cluster string
	polls   atomic.Int64
}

func (c *countingInstances) Status(ctx context.Context, in kube.Instance, ack uint64) (*instanceapi.Status, error) {
	if in.Cluster == c.cluster {
		c.polls.Add(1)
	}
	return c.simInstances.Status(ctx, in, ack)
}

// TestHealthyClusterIsPolledAtItsInterval runs the operator's manager on a
// healthy (simulated) cluster and checks that it observes the instances
// about every CheckInterval, and writes nothing while doing so: neither
// the Cluster (its status) nor any object it owns changes.
func TestHealthyClusterIsPolledAtItsInterval(t *testing.T) {
	ns := newNamespace(t, false)
	c := sampleCluster(t, ns)
	c.Name = "steady"
	sim := plantest.NewSim(time.Now(), kube.DefaultTiming().SelfFence, "steady-1", "steady-2", "steady-3")
	counter := &countingInstances{simInstances: &simInstances{sim: sim}, cluster: client.ObjectKeyFromObject(c).String()}

	cfg := kube.DefaultConfig()
	cfg.Namespace = operatorNamespace
	cfg.Build.OperatorNamespace = operatorNamespace
	cfg.MetricsAddr, cfg.ProbeAddr = "0", "0"
	cfg.LeaderElect, cfg.Webhooks = false, false
	cfg.Instances = counter
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- kube.Run(ctx, opCfg, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("operator: %v", err)
		}
	})
	createCluster(t, c)

	deadline := time.Now().Add(60 * time.Second)
	for {
		var got v1.Cluster
		if err := admin.Get(ctxFor(t), client.ObjectKeyFromObject(c), &got); err != nil {
			t.Fatal(err)
		}
		if got.Status.Phase == kube.PhaseHealthy {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not healthy: %+v", got.Status)
		}
		sim.Write()
		time.Sleep(100 * time.Millisecond)
	}
	settle(t, client.ObjectKeyFromObject(c))
	before := snapshot(t, ns)
	start := counter.polls.Load()
	const window = 6 * time.Second
	time.Sleep(window)
	polls := counter.polls.Load() - start
	if after := snapshot(t, ns); !maps.Equal(before, after) {
		t.Errorf("a healthy cluster's objects were written while it was observed:\n before %v\n after  %v", before, after)
	}
	// Three instances every CheckInterval (2 s), plus slack for an event.
	limit := int64(3 * (window/kube.DefaultTiming().CheckInterval + 2))
	t.Logf("%d status requests in %v", polls, window)
	if polls > limit {
		t.Errorf("%d status requests in %v, want at most %d: the reconciler spins", polls, window, limit)
	}
	if polls == 0 {
		t.Error("the healthy cluster was not observed at all")
	}
}

// settle waits until the Cluster's status has not changed for two check
// intervals (the sync standbys and conditions of a new cluster settle just
// after it first turns healthy).
func settle(t *testing.T, key client.ObjectKey) {
	t.Helper()
	last, since := "", time.Now()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var c v1.Cluster
		if err := admin.Get(ctxFor(t), key, &c); err != nil {
			t.Fatal(err)
		}
		if c.ResourceVersion != last {
			last, since = c.ResourceVersion, time.Now()
		}
		if time.Since(since) > 2*kube.DefaultTiming().CheckInterval {
			return
		}
	}
	t.Fatalf("%s keeps changing", key)
}

// TestHealthyClusterWritesNothing reconciles a healthy (simulated) cluster
// once per check interval, with WAL moving on the primary, and checks that
// not one of these observations writes the Cluster or anything it owns:
// the planner's memory moves (its primary's last answer and position) but
// is saved only on transitions. A restarted operator (a new reconciler)
// writes nothing either.
func TestHealthyClusterWritesNothing(t *testing.T) {
	ns := newNamespace(t, false)
	c := sampleCluster(t, ns)
	c.Name = "quiet"
	createCluster(t, c)
	clock := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	sim := plantest.NewSim(clock, kube.DefaultTiming().SelfFence, "quiet-1", "quiet-2", "quiet-3")
	r := newReconciler(&simInstances{sim: sim}, now)
	tickOnce := func(r *kube.ClusterReconciler) {
		reconcileOnce(t, r, c)
		clock = clock.Add(kube.DefaultTiming().CheckInterval)
		sim.Now = clock
		sim.Write()
	}
	for i := 0; ; i++ {
		tickOnce(r)
		var got v1.Cluster
		if err := admin.Get(ctxFor(t), client.ObjectKeyFromObject(c), &got); err != nil {
			t.Fatal(err)
		}
		if got.Status.Phase == kube.PhaseHealthy && i > 5 {
			break
		}
		if i > 30 {
			t.Fatalf("not healthy: %+v", got.Status)
		}
	}
	before := snapshot(t, ns)
	const ticks = 30
	for range ticks {
		tickOnce(r)
	}
	after := snapshot(t, ns)
	if !maps.Equal(before, after) {
		t.Errorf("%d observations of a healthy cluster wrote:\n before %v\n after  %v", ticks, before, after)
	}
	restarted := newReconciler(&simInstances{sim: sim}, now)
	for range 5 {
		tickOnce(restarted)
	}
	if again := snapshot(t, ns); !maps.Equal(after, again) {
		t.Errorf("a restarted operator wrote to a healthy cluster:\n before %v\n after  %v", after, again)
	}
}
