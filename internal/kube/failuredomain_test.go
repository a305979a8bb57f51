package kube_test

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/plan/plantest"
)

// TestSyncStandbysInAnotherFailureDomain: with CloudNativePG's
// syncReplicaElectionConstraint (node labels) and
// synchronous.podFailureDomainKeys (pod labels), the operator reads the
// labels of each pod's node (with the operator's own RBAC) and of the
// pod, and the primary's synchronous_standby_names lists only instances
// in another domain. The pods are bound to Node objects of the real API
// server (no kubelet runs); the instances are plantest.Sim's.
func TestSyncStandbysInAnotherFailureDomain(t *testing.T) {
	ns := newNamespace(t, true)
	ctx := ctxFor(t)
	zone := map[string]string{"fd-a1": "a", "fd-a2": "a", "fd-b": "b"}
	for n, z := range zone {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n, Labels: map[string]string{"az": z}}}
		if err := admin.Create(ctx, node); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = admin.Delete(ctx, node) })
	}

	run := func(t *testing.T, name string, mutate func(c *v1.Cluster), place func(pod *corev1.Pod, i int), want string) {
		c := sampleCluster(t, ns)
		c.Name = name
		mutate(c)
		if errs := c.Validate(); len(errs) > 0 {
			t.Fatal(errs.ToAggregate())
		}
		createCluster(t, c)
		clock := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
		names := []string{name + "-1", name + "-2", name + "-3"}
		sim := plantest.NewSim(clock, kube.DefaultTiming().SelfFence, names...)
		r := newReconciler(&simInstances{sim: sim}, func() time.Time { return clock })
		placed := false
		for i := 0; ; i++ {
			reconcileOnce(t, r, c)
			if !placed {
				placed = bindPods(t, ns, names, place)
			}
			clock = clock.Add(time.Second)
			sim.Now = clock
			sim.Step()
			sim.Write()
			if got := sim.Node(name + "-1").Sync; placed && got == want {
				return
			}
			if i > 40 {
				t.Fatalf("after %d rounds the primary runs with synchronous_standby_names %q, want %q", i, sim.Node(name+"-1").Sync, want)
			}
		}
	}
	t.Run("node labels", func(t *testing.T) {
		nodes := []string{"fd-a1", "fd-a2", "fd-b"}
		run(t, "fdn", func(c *v1.Cluster) {
			c.Spec.MinSyncReplicas, c.Spec.MaxSyncReplicas = 1, 1
			c.Spec.PostgresConfiguration.SyncReplicaElectionConstraint = &v1.SyncReplicaElectionConstraints{
				Enabled: true, NodeLabelsAntiAffinity: []string{"az"},
			}
		}, func(pod *corev1.Pod, i int) { pod.Spec.NodeName = nodes[i] }, `ANY 1 ("fdn-3")`)
	})
	t.Run("pod labels", func(t *testing.T) {
		// The same nodes; the pods' own labels say the second is the
		// other domain (as Kubernetes' topology labels on pods would).
		run(t, "fdp", func(c *v1.Cluster) {
			c.Spec.PostgresConfiguration.Synchronous = &v1.SynchronousReplicaConfiguration{
				Method: "first", Number: 1, PodFailureDomainKeys: []string{"topology.kubernetes.io/zone"},
			}
		}, func(pod *corev1.Pod, i int) {
			pod.Spec.NodeName = "fd-a1"
			pod.Labels["topology.kubernetes.io/zone"] = map[bool]string{true: "z2", false: "z1"}[i == 1]
		}, `FIRST 1 ("fdp-2")`)
	})
}

// bindPods labels each instance's pod and binds it to a node once all the
// pods exist, as the scheduler would; it reports whether it did.
func bindPods(t *testing.T, ns string, names []string, place func(pod *corev1.Pod, i int)) bool {
	t.Helper()
	ctx := ctxFor(t)
	pods := make([]*corev1.Pod, len(names))
	for i, n := range names {
		var pod corev1.Pod
		if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: n}, &pod); err != nil {
			return false
		}
		pods[i] = &pod
	}
	for i, pod := range pods {
		want := pod.DeepCopy()
		place(want, i)
		node := want.Spec.NodeName
		want.Spec.NodeName = ""
		if err := admin.Patch(ctx, want, client.MergeFrom(pod)); err != nil {
			t.Fatal(err)
		}
		binding := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: ns},
			Target: corev1.ObjectReference{Kind: "Node", Name: node}}
		if err := admin.SubResource("binding").Create(ctx, want, binding); err != nil {
			t.Fatal(err)
		}
	}
	return true
}
