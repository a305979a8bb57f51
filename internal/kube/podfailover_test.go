package kube_test

import (
	"context"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/kube/build"
)

// TestDeletedPrimaryFailsOverAtOnce: the primary's pod is deleted and its
// instance manager, still in the terminating pod, reports postgres
// stopped (instance.LeaveWindow). The operator asks the terminating pod,
// so it fails over at once, as after a crash, instead of taking the
// silent pod for an unreachable primary and waiting out the unreachable
// timeout and the self-fencing bound (5 s and more). And it moves the
// primary label to the new primary before taking it from the old one, so
// that the read-write Service never has no endpoint (kube-proxy keeps the
// state of its first change for its minimum sync period: an empty Service
// left clients' connections unanswered on real pods).
func TestDeletedPrimaryFailsOverAtOnce(t *testing.T) {
	ns := newNamespace(t, true)
	ctx := ctxFor(t)
	c := sampleCluster(t, ns)
	c.Name = "del"
	h := newSimHarness(t, c, nil)
	h.until("healthy", func(cur v1.Cluster) bool {
		return cur.Status.CurrentPrimary == "del-1" && cur.Status.ReadyInstances == 3 && cur.Status.Phase == kube.PhaseHealthy
	})
	assertRW(t, ns, "del", "del-1")

	// The kubelet keeps a deleted pod while its container stops; here a
	// finalizer does.
	const hold = "test.pgward.io/hold"
	var pod corev1.Pod
	key := types.NamespacedName{Namespace: ns, Name: "del-1"}
	if err := admin.Get(ctx, key, &pod); err != nil {
		t.Fatal(err)
	}
	pod.Finalizers = append(pod.Finalizers, hold)
	if err := admin.Update(ctx, &pod); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		var p corev1.Pod
		if err := admin.Get(context.Background(), key, &p); err == nil {
			p.Finalizers = slices.DeleteFunc(p.Finalizers, func(f string) bool { return f == hold })
			_ = admin.Update(context.Background(), &p)
		}
	})

	// The role label's moves, in the API server's order.
	wc, err := client.NewWithWatch(adminCfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	w, err := wc.Watch(ctx, &corev1.PodList{}, client.InNamespace(ns), client.MatchingLabels{build.ClusterLabel: "del"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	type move struct{ pod, role string }
	moves := make(chan move, 100)
	go func() {
		last := map[string]string{}
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || ev.Type == watch.Deleted {
				continue
			}
			if role := p.Labels[build.RoleLabel]; role != last[p.Name] {
				if last[p.Name] != "" {
					moves <- move{p.Name, role}
				}
				last[p.Name] = role
			}
		}
		close(moves)
	}()

	if err := admin.Delete(ctx, &pod); err != nil {
		t.Fatal(err)
	}
	// Its manager stops postgres (a fast shutdown; under synchronous
	// replication the standbys have every acknowledged commit) and stays.
	h.si.mu.Lock()
	h.sim.Node("del-1").Running = false
	h.si.mu.Unlock()

	// One round is one reconcile and one simulated second: the new primary
	// within two, far below the 5 s an unreachable primary is waited for.
	for range 2 {
		h.round()
	}
	cur := h.get()
	if cur.Status.CurrentPrimary == "del-1" || cur.Status.CurrentPrimary == "" {
		t.Fatalf("two seconds after the primary's pod was deleted and reported postgres stopped, the primary is %q (target %q, phase %q): the terminating pod was not asked",
			cur.Status.CurrentPrimary, cur.Status.TargetPrimary, cur.Status.Phase)
	}
	newPrimary := cur.Status.CurrentPrimary
	t.Logf("failed over to %s; %s", newPrimary, cur.Status.Phase)

	// The label moves: the new primary gains the role before del-1 loses it.
	w.Stop()
	var got []move
	for m := range moves {
		got = append(got, m)
	}
	gained := slices.Index(got, move{newPrimary, build.RolePrimary})
	lost := slices.Index(got, move{"del-1", build.RoleReplica})
	if gained < 0 || lost < 0 || gained > lost {
		t.Errorf("role label moves %v: want %s labelled primary before del-1 labelled replica", got, newPrimary)
	}
}
