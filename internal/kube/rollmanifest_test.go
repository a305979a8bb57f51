package kube_test

import (
	"slices"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/kube"
)

// TestRollingUpdateWaitsForManifest: the operator's rolling update moves
// on from a replica only once it reports the manifest the operator wrote
// into its config Secret. Here the primary's kubelet refreshes first (as
// seen on real pods): it reports the new manifest with a restart pending
// while both replicas still report the old one with nothing pending.
// Without the check the operator switched over to such a replica at once;
// with it, it restarts each replica once it has loaded the new manifest,
// and switches over only then.
func TestRollingUpdateWaitsForManifest(t *testing.T) {
	ns := newNamespace(t, true)
	c := sampleCluster(t, ns)
	c.Name = "rollm"
	h := newSimHarness(t, c, nil)
	var mu sync.Mutex
	var cmds []string
	h.si.onCommand = func(in kube.Instance, cmd instanceapi.Command) {
		mu.Lock()
		defer mu.Unlock()
		cmds = append(cmds, cmd.Kind+" "+in.Name)
	}
	took := func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := slices.DeleteFunc(slices.Clone(cmds), func(s string) bool {
			return s != "restart rollm-1" && s != "restart rollm-2" && s != "restart rollm-3" && s != "demote rollm-1"
		})
		cmds = nil
		return out
	}
	h.until("healthy", func(c v1.Cluster) bool { return c.Status.CurrentPrimary == "rollm-1" && c.Status.ReadyInstances == 3 })
	in := func(name string) kube.Instance { return kube.Instance{Cluster: ns + "/rollm", Name: name} }
	old := manifestOf(in("rollm-2"))
	if old == "" {
		t.Fatal("no manifest in rollm-2's config Secret")
	}
	took()

	// A parameter that needs a restart.
	cur := h.get()
	cur.Spec.PostgresConfiguration.Parameters["shared_buffers"] = "64MB"
	if err := admin.Update(ctxFor(t), &cur); err != nil {
		t.Fatal(err)
	}
	h.si.mu.Lock()
	h.si.stale = map[string]string{"rollm-2": old, "rollm-3": old}
	h.si.pending = map[string]bool{"rollm-1": true}
	h.si.mu.Unlock()
	for range 5 {
		h.round()
	}
	if manifestOf(in("rollm-1")) == old {
		t.Fatal("the operator did not write the new manifest")
	}
	// Each pod carries the digest of its Secret's manifest, so that its
	// kubelet refreshes the volume at once rather than at its next
	// periodic sync (a minute or more on real pods).
	for _, name := range []string{"rollm-1", "rollm-2", "rollm-3"} {
		var pod corev1.Pod
		if err := admin.Get(ctxFor(t), types.NamespacedName{Namespace: ns, Name: name}, &pod); err != nil {
			t.Fatal(err)
		}
		if got, want := pod.Annotations[kube.ManifestAnnotation], manifestOf(in(name)); got != want {
			t.Errorf("pod %s: annotation %s is %q, want its config Secret's manifest %q", name, kube.ManifestAnnotation, got, want)
		}
	}
	if got := took(); len(got) != 0 || h.get().Status.CurrentPrimary != "rollm-1" {
		t.Fatalf("moved on while no replica had loaded the new manifest: %q, primary %s", got, h.get().Status.CurrentPrimary)
	}

	// rollm-3's kubelet refreshes: it loads the manifest, a restart pending.
	h.si.mu.Lock()
	delete(h.si.stale, "rollm-3")
	h.si.pending["rollm-3"] = true
	h.si.mu.Unlock()
	for range 5 {
		h.round()
	}
	if got := took(); !slices.Equal(got, []string{"restart rollm-3"}) || h.get().Status.CurrentPrimary != "rollm-1" {
		t.Fatalf("with rollm-3 updated and rollm-2 on the old manifest: %q, primary %s; want only rollm-3 restarted", got, h.get().Status.CurrentPrimary)
	}

	// rollm-2's: restarted, then the switchover.
	h.si.mu.Lock()
	delete(h.si.stale, "rollm-2")
	h.si.pending["rollm-2"] = true
	h.si.mu.Unlock()
	h.until("switched over", func(c v1.Cluster) bool {
		return c.Status.CurrentPrimary != "rollm-1" && c.Status.CurrentPrimary != "" && c.Status.ReadyInstances == 3
	})
	if got := took(); !slices.Equal(got, []string{"restart rollm-2", "demote rollm-1"}) {
		t.Fatalf("after rollm-2 loaded it: %q, want its restart, then the switchover", got)
	}
	if lost := h.sim.Lost(h.get().Status.CurrentPrimary); len(lost) > 0 {
		t.Errorf("writes lost: %v", lost)
	}
}
