package kube_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/kube/build"
	"github.com/pgward/pgward/internal/plan/plantest"
)

// watchingSim is simInstances that also answers watches
// (kube.InstanceWatcher) from the simulated instance's digest, as the
// instance manager's /pg/watch does.
type watchingSim struct {
	*simInstances
	watches atomic.Int64
}

func (w *watchingSim) digest(name string) (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, st := range w.sim.Observe() {
		if st.Name == name {
			if !st.Reachable {
				return "", errors.New("no answer")
			}
			return toWire(st, 0).Digest(), nil
		}
	}
	return "", fmt.Errorf("no instance %s", name)
}

func (w *watchingSim) Watch(ctx context.Context, in kube.Instance, since string) (string, error) {
	w.watches.Add(1)
	deadline := time.Now().Add(instanceapi.WatchWait)
	for {
		d, err := w.digest(in.Name)
		if err != nil || d != since || time.Now().After(deadline) {
			return d, err
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestWakeupsFailOverBeforeTheNextCheck runs the operator's manager on the
// real API server with a check interval of a minute: the primary's
// postmaster dies, and the instance's watch wakes the Cluster, which fails
// over (a promotion and its follow-up steps, each observed again within
// the transition interval) in seconds. Without the wake-ups nothing would
// look at the cluster for up to a minute.
func TestWakeupsFailOverBeforeTheNextCheck(t *testing.T) {
	ns := newNamespace(t, false)
	c := sampleCluster(t, ns)
	c.Name = "wk"
	sim := &watchingSim{simInstances: &simInstances{sim: plantest.NewSim(time.Now(), kube.DefaultTiming().SelfFence, "wk-1", "wk-2", "wk-3")}}

	cfg := runSlowOperator(t, sim)
	ctx := context.Background()
	createCluster(t, c)

	status := func() v1.ClusterStatus {
		var got v1.Cluster
		if err := admin.Get(ctx, client.ObjectKeyFromObject(c), &got); err != nil {
			t.Fatal(err)
		}
		return got.Status
	}
	// No kubelet: give the pods the addresses a kubelet would, so that the
	// operator has something to watch.
	giveIPs := func() {
		var pods corev1.PodList
		if err := admin.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{build.ClusterLabel: c.Name}); err != nil {
			t.Fatal(err)
		}
		for i := range pods.Items {
			p := &pods.Items[i]
			if p.Status.PodIP == "" {
				p.Status.PodIP = fmt.Sprintf("10.244.0.%d", 10+i)
				if err := admin.Status().Update(ctx, p); err != nil {
					t.Logf("pod %s: %v", p.Name, err)
				}
			}
		}
	}
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		giveIPs()
		sim.mu.Lock()
		sim.sim.Write()
		sim.mu.Unlock()
		if st := status(); st.Phase == kube.PhaseHealthy && st.CurrentPrimary == "wk-1" && st.ReadyInstances == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not healthy: %+v", status())
		}
	}
	time.Sleep(time.Second) // settled: the next periodic check is a minute away
	sim.mu.Lock()
	sim.sim.Node("wk-1").Running = false // the postmaster dies; its manager answers
	sim.mu.Unlock()
	killed := time.Now()
	for ; ; time.Sleep(50 * time.Millisecond) {
		if st := status(); st.CurrentPrimary != "" && st.CurrentPrimary != "wk-1" {
			break
		}
		if time.Since(killed) > 20*time.Second {
			t.Fatalf("no failover %s after the primary's postmaster died: %+v", time.Since(killed), status())
		}
	}
	t.Logf("failed over %s after the postmaster died (check interval %s); %d watch requests", time.Since(killed).Round(time.Millisecond), cfg.Timing.CheckInterval, sim.watches.Load())
	assertRW(t, ns, "wk", status().CurrentPrimary)
}

// TestWakeupsWhenInstancesStartAnswering: a new Cluster whose instances do
// not answer yet is held, and looked at only every CheckInterval (here a
// minute) rather than every TransitionInterval; when its instances start
// answering, their watches wake it and it bootstraps at once. Without the
// wake on a first answer it would wait for the next check.
func TestWakeupsWhenInstancesStartAnswering(t *testing.T) {
	ns := newNamespace(t, false)
	c := sampleCluster(t, ns)
	c.Name = "wa"
	sim := &watchingSim{simInstances: &simInstances{sim: plantest.NewSim(time.Now(), kube.DefaultTiming().SelfFence, "wa-1", "wa-2", "wa-3")}}
	for _, n := range []string{"wa-1", "wa-2", "wa-3"} {
		sim.sim.Node(n).Isolated = true
	}
	cfg := runSlowOperator(t, sim)
	ctx := context.Background()
	createCluster(t, c)
	var pods corev1.PodList
	for deadline := time.Now().Add(30 * time.Second); len(pods.Items) < 3; time.Sleep(100 * time.Millisecond) {
		if err := admin.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{build.ClusterLabel: c.Name}); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d pods", len(pods.Items))
		}
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		p.Status.PodIP = fmt.Sprintf("10.244.1.%d", 10+i)
		if err := admin.Status().Update(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	// The pod events are handled and every watch has failed at least once
	// by now; nothing else will look for a minute.
	for before := sim.watches.Load(); sim.watches.Load() < before+6; {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	sim.mu.Lock()
	for _, n := range []string{"wa-1", "wa-2", "wa-3"} {
		sim.sim.Node(n).Isolated = false
	}
	sim.mu.Unlock()
	answered := time.Now()
	for ; ; time.Sleep(100 * time.Millisecond) {
		var got v1.Cluster
		if err := admin.Get(ctx, client.ObjectKeyFromObject(c), &got); err != nil {
			t.Fatal(err)
		}
		if got.Status.CurrentPrimary == "wa-1" {
			break
		}
		if time.Since(answered) > 20*time.Second {
			t.Fatalf("not bootstrapped %s after its instances started answering (check interval %s): %+v", time.Since(answered), cfg.Timing.CheckInterval, got.Status)
		}
		sim.mu.Lock()
		sim.sim.Write()
		sim.mu.Unlock()
	}
	t.Logf("bootstrapped %s after the instances started answering", time.Since(answered).Round(time.Millisecond))
}

// runSlowOperator runs the operator's manager against sim with a check
// interval of a minute, so that anything sooner is a wake-up; it stops when
// the test ends.
func runSlowOperator(t *testing.T, sim kube.InstanceClient) kube.Config {
	t.Helper()
	cfg := kube.DefaultConfig()
	cfg.Namespace = operatorNamespace
	cfg.Build.OperatorNamespace = operatorNamespace
	cfg.MetricsAddr, cfg.ProbeAddr = "0", "0"
	cfg.LeaderElect, cfg.Webhooks = false, false
	cfg.Timing.CheckInterval = time.Minute
	cfg.Instances = sim
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- kube.Run(ctx, opCfg, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("operator: %v", err)
		}
	})
	return cfg
}
