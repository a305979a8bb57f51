package kube_test

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/plan/plantest"
)

// TestPrimaryLeaseSettings runs a Cluster with spec.primaryLease
// (leaseDurationSeconds 20, renewDeadlineSeconds 12) against the real API
// server: the pods' configuration carries the 12 s self-fencing time, the
// Lease says 20 s, and a primary that goes silent is replaced 20 s after
// its last contact, not at the default ~5.1 s; its pod is deleted (power
// fence) only once it has surely fenced itself (contact + 1 s request
// timeout + 12 s·(1+1e-4) + 0.1 s check + 1 s stop ≈ 14.1 s), before the
// promotion.
func TestPrimaryLeaseSettings(t *testing.T) {
	ns := newNamespace(t, false)
	ctx := ctxFor(t)
	c := sampleCluster(t, ns)
	c.Name = "ps"
	c.Spec.PrimaryLease = &v1.PrimaryLeaseConfiguration{LeaseDurationSeconds: new(int32(20)), RenewDeadlineSeconds: new(int32(12))}
	createCluster(t, c)

	var mu sync.Mutex
	// The operator's clock starts a minute ahead of the API server's, so
	// that the pods it stamps count as older than the bound (a pod younger
	// than that is a replacement, which neither fence touches).
	clock := time.Now().UTC().Add(time.Minute)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	sim := plantest.NewSim(clock, 12*time.Second, "ps-1", "ps-2", "ps-3")
	advance := func(d time.Duration) {
		mu.Lock()
		clock = clock.Add(d)
		mu.Unlock()
		sim.Now = now()
		sim.Step()
	}
	var promotedAt time.Time
	instances := &simInstances{sim: sim, onCommand: func(in kube.Instance, cmd instanceapi.Command) {
		if cmd.Kind == instanceapi.CommandPromote && promotedAt.IsZero() && in.Name != "ps-1" {
			promotedAt = now()
		}
	}}
	r := newReconciler(instances, now)
	healthy := func() bool {
		var got v1.Cluster
		if err := admin.Get(ctx, client.ObjectKeyFromObject(c), &got); err != nil {
			t.Fatal(err)
		}
		return got.Status.CurrentPrimary == "ps-1" && got.Status.ReadyInstances == 3 && got.Status.Phase == kube.PhaseHealthy
	}
	var lastContact time.Time // the last status request the primary answered
	for i := 0; !healthy(); i++ {
		lastContact = now()
		reconcileOnce(t, r, c)
		advance(time.Second)
		sim.Write()
		if i > 30 {
			t.Fatal("cluster not healthy")
		}
	}

	// The pods' self-fencing time is the renew deadline.
	for _, n := range []string{"ps-1", "ps-2", "ps-3"} {
		var s corev1.Secret
		if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: n + "-config"}, &s); err != nil {
			t.Fatal(err)
		}
		var cfg instanceapi.Config
		if err := json.Unmarshal(s.Data["config.json"], &cfg); err != nil {
			t.Fatalf("%s config: %v", n, err)
		}
		if cfg.SelfFence != 12*time.Second {
			t.Errorf("%s starts with self-fence %v, want the 12 s renew deadline", n, cfg.SelfFence)
		}
	}
	var l coordinationv1.Lease
	if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: "ps"}, &l); err != nil {
		t.Fatal(err)
	}
	if l.Spec.LeaseDurationSeconds == nil || *l.Spec.LeaseDurationSeconds != 20 {
		t.Errorf("lease says %v s, want 20", l.Spec.LeaseDurationSeconds)
	}

	// ps-1 goes silent: no answer, no renewal. Steps of 500 ms.
	sim.Node("ps-1").Isolated = true
	var deletedAt time.Time
	for i := 0; promotedAt.IsZero(); i++ {
		reconcileOnce(t, r, c)
		if deletedAt.IsZero() && podOrNil(t, ns, "ps-1") == nil {
			deletedAt = now()
		}
		advance(500 * time.Millisecond)
		if i > 120 {
			t.Fatal("no promotion 60 s after the primary went silent")
		}
	}
	waited := promotedAt.Sub(lastContact)
	if waited < 20*time.Second || waited > 21*time.Second {
		t.Errorf("promoted %v after the last contact, want just past leaseDurationSeconds (20 s)", waited)
	}
	fencedBy := time.Second + time.Duration(float64(12*time.Second)*(1+1e-4)) + 100*time.Millisecond + time.Second
	switch {
	case deletedAt.IsZero():
		t.Error("the silent primary's pod was never deleted")
	case deletedAt.Sub(lastContact) < fencedBy:
		t.Errorf("pod deleted %v after the last contact, before the primary had surely fenced itself (%v)", deletedAt.Sub(lastContact), fencedBy)
	case deletedAt.After(promotedAt) || deletedAt.Sub(lastContact) > fencedBy+time.Second:
		t.Errorf("pod deleted %v after the last contact, want soon after %v and before the promotion (%v)",
			deletedAt.Sub(lastContact), fencedBy, waited)
	}
}

// TestPrimaryLeaseRefusedByTheOperator: an operator whose timings need a
// longer lease than the Cluster sets refuses the spec, naming the field,
// rather than promote too early.
func TestPrimaryLeaseRefusedByTheOperator(t *testing.T) {
	ns := newNamespace(t, false)
	c := sampleCluster(t, ns)
	c.Name = "pr"
	c.Spec.PrimaryLease = &v1.PrimaryLeaseConfiguration{LeaseDurationSeconds: new(int32(6)), RenewDeadlineSeconds: new(int32(3))}
	createCluster(t, c)
	sim := plantest.NewSim(time.Now(), 3*time.Second, "pr-1", "pr-2", "pr-3")
	r := newReconciler(&simInstances{sim: sim}, time.Now)
	r.Timing.RequestTimeout = 2 * time.Second // bound for 3 s: ~6.1 s > 6 s
	var got v1.Cluster
	for range 3 {
		_, _ = r.Reconcile(ctxFor(t), reconcile.Request{NamespacedName: client.ObjectKeyFromObject(c)})
	}
	if err := admin.Get(ctxFor(t), client.ObjectKeyFromObject(c), &got); err != nil {
		t.Fatal(err)
	}
	msg := ""
	for _, cond := range got.Status.Conditions {
		msg += cond.Message
	}
	if !strings.Contains(msg, "spec.primaryLease.leaseDurationSeconds") {
		t.Errorf("status does not name spec.primaryLease.leaseDurationSeconds: phase %q, conditions %q", got.Status.Phase, msg)
	}
	if err := r.Timing.CheckPrimaryLeaseRange(); err == nil {
		t.Error("CheckPrimaryLeaseRange accepted 2 s requests, whose bound the 3 s margin does not cover")
	}
	if err := kube.DefaultTiming().CheckPrimaryLeaseRange(); err != nil {
		t.Errorf("the default timings do not cover every accepted spec.primaryLease: %v", err)
	}
}
