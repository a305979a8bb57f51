package kube_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/plan/plantest"
)

// simHarness is a Cluster on the real API server whose instances a
// plantest.Sim plays (no kubelet runs here), reconciled by the real
// reconciler on a clock the test moves.
type simHarness struct {
	t   *testing.T
	c   *v1.Cluster
	si  *simInstances
	sim *plantest.Sim
	r   *kube.ClusterReconciler

	mu    sync.Mutex
	clock time.Time
}

// simStart is where the harness's clock starts unless a test needs the
// API server's own time.
var simStart = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

// newSimHarness creates c and its simulated instances (c.Name-1...); wrap
// may put another InstanceClient around them (nil: the simulation itself).
func newSimHarness(t *testing.T, c *v1.Cluster, wrap func(*simInstances) kube.InstanceClient) *simHarness {
	t.Helper()
	createCluster(t, c)
	var names []string
	for i := 1; i <= c.Spec.Instances; i++ {
		names = append(names, fmt.Sprintf("%s-%d", c.Name, i))
	}
	h := &simHarness{t: t, c: c, clock: simStart}
	h.sim = plantest.NewSim(h.clock, kube.DefaultTiming().SelfFence, names...)
	h.si = &simInstances{sim: h.sim}
	var ic kube.InstanceClient = h.si
	if wrap != nil {
		ic = wrap(h.si)
	}
	h.r = newReconciler(ic, h.now)
	return h
}

func (h *simHarness) now() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.clock
}

// advance moves the clock; the simulated instances replicate and fence
// themselves as that much time passing makes them.
func (h *simHarness) advance(d time.Duration) {
	h.mu.Lock()
	h.clock = h.clock.Add(d)
	h.mu.Unlock()
	h.si.mu.Lock()
	defer h.si.mu.Unlock()
	h.sim.Now = h.now()
	h.sim.Step()
}

// get reads the Cluster as the API server holds it.
func (h *simHarness) get() v1.Cluster {
	h.t.Helper()
	var cur v1.Cluster
	if err := admin.Get(ctxFor(h.t), client.ObjectKeyFromObject(h.c), &cur); err != nil {
		h.t.Fatal(err)
	}
	return cur
}

// round reconciles the stored Cluster once, moves the clock a second and
// has the clients write once.
func (h *simHarness) round() {
	h.t.Helper()
	cur := h.get()
	reconcileOnce(h.t, h.r, &cur)
	h.advance(time.Second)
	h.si.mu.Lock()
	h.sim.Write()
	h.si.mu.Unlock()
}

// until runs rounds until ok holds of the stored Cluster, at most 40.
func (h *simHarness) until(what string, ok func(v1.Cluster) bool) {
	h.t.Helper()
	for i := 0; ; i++ {
		h.round()
		cur := h.get()
		if ok(cur) {
			return
		}
		if i > 40 {
			h.t.Fatalf("%s: not after %d rounds: %+v", what, i, cur.Status)
		}
	}
}
