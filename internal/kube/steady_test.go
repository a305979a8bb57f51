package kube_test

import (
	"context"
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
// about every CheckInterval: the planner's memory changes at every
// observation, and the status write that persists it must not trigger the
// next reconcile at once.
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
	start := counter.polls.Load()
	const window = 6 * time.Second
	time.Sleep(window)
	polls := counter.polls.Load() - start
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
