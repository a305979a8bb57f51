package kube_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube"
)

// notes records the planner's events as the reconciler publishes them.
type notes struct {
	mu  sync.Mutex
	all []string
}

func (n *notes) Eventf(_, _ runtime.Object, kind, reason, _, note string, args ...any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.all = append(n.all, kind+" "+reason+": "+fmt.Sprintf(note, args...))
}

func (n *notes) find(s string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, e := range n.all {
		if strings.Contains(e, s) {
			return true
		}
	}
	return false
}

// setPodReady sets the pod's Ready condition as a kubelet would report it.
func setPodReady(t *testing.T, ns, name string, status corev1.ConditionStatus) {
	t.Helper()
	ctx := ctxFor(t)
	var pod corev1.Pod
	if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &pod); err != nil {
		t.Fatal(err)
	}
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}
	if err := admin.Status().Update(ctx, &pod); err != nil {
		t.Fatal(err)
	}
}

// TestSwitchoverWaitsForReadyPod: a switchover keeps the primary running
// while its target's pod is not Ready in the API (<c>-rw would route
// nowhere: on real pods the first switchover of a new cluster left clients
// hanging to their connect timeout, docs/benchmarks.md), goes on once the
// pod is Ready, and goes on anyway after Timing.RouteWait, with a Warning
// event, when it never becomes Ready.
func TestSwitchoverWaitsForReadyPod(t *testing.T) {
	ns := newNamespace(t, false)
	ctx := ctxFor(t)
	c := sampleCluster(t, ns)
	c.Name = "rw"
	h := newSimHarness(t, c, nil)
	ev := &notes{}
	h.r.Recorder = ev
	h.until("healthy", func(c v1.Cluster) bool { return c.Status.CurrentPrimary == "rw-1" && c.Status.ReadyInstances == 3 })
	for _, n := range []string{"rw-1", "rw-2", "rw-3"} {
		setPodReady(t, ns, n, corev1.ConditionTrue)
	}
	request := func(to string) chan error {
		done := make(chan error, 1)
		go func() { done <- kube.RequestSwitchover(ctx, admin, client.ObjectKeyFromObject(c), to, time.Minute) }()
		return done
	}
	rounds := func(to string) int {
		n := 0
		h.until("switched over to "+to, func(c v1.Cluster) bool { n++; return c.Status.CurrentPrimary == to })
		return n
	}

	// Not Ready: three rounds (3 s on the harness's clock) and the primary
	// still serves, never shut down.
	setPodReady(t, ns, "rw-3", corev1.ConditionFalse)
	done := request("rw-3")
	for i := 0; i < 3; i++ {
		h.round()
		if w := h.sim.Writable(); len(w) != 1 || w[0] != "rw-1" {
			t.Fatalf("round %d of the wait: writable %v, want rw-1 alone", i, w)
		}
	}
	if !ev.find("switchover to rw-3 waits up to 5s until clients can be routed to it") {
		t.Errorf("no event names the wait; events %q", ev.all)
	}
	if _, ok := h.get().Annotations[v1.SwitchoverAnnotation]; ok {
		t.Error("the request was not taken while it waits")
	}
	// Ready: on at once, well before the wait's bound.
	setPodReady(t, ns, "rw-3", corev1.ConditionTrue)
	if n := rounds("rw-3"); n > 3 {
		t.Errorf("switched over %d rounds after the pod became Ready", n)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if ev.find("goes ahead although clients cannot be routed") {
		t.Errorf("warned of a switchover without a route; events %q", ev.all)
	}
	if lost := h.sim.Lost("rw-3"); len(lost) > 0 {
		t.Errorf("writes lost: %v", lost)
	}
	assertRW(t, ns, "rw", "rw-3")

	// Never Ready: bounded by RouteWait (5 s, a round is 1 s), then on
	// with a warning.
	h.until("settled", func(c v1.Cluster) bool { return c.Status.ReadyInstances == 3 })
	setPodReady(t, ns, "rw-2", corev1.ConditionFalse)
	done = request("rw-2")
	n := rounds("rw-2")
	if n < 5 || n > 10 {
		t.Errorf("switched over to a never-Ready pod after %d rounds, want after the 5 s wait", n)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !ev.find("switchover to rw-2 goes ahead although clients cannot be routed to it yet") {
		t.Errorf("no warning that it went ahead; events %q", ev.all)
	}
	if lost := h.sim.Lost("rw-2"); len(lost) > 0 {
		t.Errorf("writes lost: %v", lost)
	}
}
