package kube

import (
	"context"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube/build"
	"github.com/pgward/pgward/internal/plan"
)

// TestTakeoverAllowed is step 7's rule for moving the Lease to the
// instance being promoted.
func TestTakeoverAllowed(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	const bound = 9 * time.Second
	up := plan.InstanceStatus{Name: "c-1", Reachable: true, PostmasterRunning: true, Role: plan.RolePrimary}
	fenced, stopped, replica, unknown := up, up, up, up
	fenced.Fenced, stopped.PostmasterRunning, replica.Role, unknown.Role = true, false, plan.RoleReplica, plan.RoleUnknown
	for _, c := range []struct {
		name    string
		holder  string
		seen    time.Duration // before now
		status  plan.InstanceStatus
		allowed bool
	}{
		{"already held by the new primary", "c-2", 0, up, true},
		{"no holder", "", 0, plan.InstanceStatus{Name: ""}, true},
		{"holder silent for the bound", "c-1", bound, plan.InstanceStatus{Name: "c-1"}, true},
		{"holder renewed within the bound, unreachable", "c-1", bound - time.Millisecond, plan.InstanceStatus{Name: "c-1"}, false},
		{"holder renewed within the bound, answering as a writable primary", "c-1", time.Second, up, false},
		{"holder renewed recently but reports itself fenced (switchover, fence)", "c-1", 0, fenced, true},
		{"holder renewed recently but reports postgres stopped", "c-1", 0, stopped, true},
		{"holder renewed recently but reports itself a replica", "c-1", 0, replica, true},
		{"holder renewed recently, running with its role unknown (it may be a primary)", "c-1", 0, unknown, false},
		{"another instance's status does not count", "c-1", 0, plan.InstanceStatus{Name: "c-3", Reachable: true, Fenced: true}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			why := takeoverAllowed(c.holder, "c-2", t0.Add(-c.seen), t0, bound, c.status)
			if (why == "") != c.allowed {
				t.Errorf("allowed %v (%q), want %v", why == "", why, c.allowed)
			}
		})
	}
}

// TestPrimarySelfFence: the bound covers what the primary's manager was
// started with, which an operator upgrade or a changed --self-fence does
// not change until its pod restarts.
func TestPrimarySelfFence(t *testing.T) {
	c := &v1.Cluster{}
	c.Namespace, c.Name = "ns", "c"
	for _, tc := range []struct {
		name     string
		reported map[string]time.Duration
		want     time.Duration
	}{
		{"nothing reported since the operator started: the legacy 30 s", nil, LegacySelfFence},
		{"another instance's report does not count", map[string]time.Duration{"c-2": 4 * time.Second}, LegacySelfFence},
		{"the primary reports the operator's 3 s", map[string]time.Duration{"c-1": 3 * time.Second}, 3 * time.Second},
		{"the primary was started with a longer one (an older --self-fence)", map[string]time.Duration{"c-1": 20 * time.Second}, 20 * time.Second},
		{"never less than the operator's own", map[string]time.Duration{"c-1": time.Second}, 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &ClusterReconciler{Timing: DefaultTiming()}
			if tc.reported != nil {
				r.selfFences = map[string]map[string]time.Duration{"ns/c": tc.reported}
			}
			if got := r.primarySelfFence(c, "c-1"); got != tc.want {
				t.Errorf("self-fence %v, want %v", got, tc.want)
			}
		})
	}
}

// TestLeaseSeenFromTheWatch: LeaseSeen is the earlier of the send time of
// the read that first returned a Lease version and the moment the watch
// delivered that same version (both come after the API server stored it);
// an event of another version, or one later than the read, changes
// nothing.
func TestLeaseSeenFromTheWatch(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := coordinationv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := &v1.Cluster{}
	c.Namespace, c.Name, c.UID = "ns", "c", "uid-1"
	base := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	cl := fake.NewClientBuilder().WithScheme(scheme).
		WithObjects(build.PrimaryLease(c, "c-1", 6, metav1.NewMicroTime(base))).Build()
	now := base
	r := &ClusterReconciler{Client: cl, APIReader: cl, Timing: DefaultTiming(), Now: func() time.Time { return now }}
	ctx := context.Background()
	at := func(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }
	renew := func() *coordinationv1.Lease {
		var l coordinationv1.Lease
		if err := cl.Get(ctx, types.NamespacedName{Namespace: "ns", Name: build.LeaseName(c)}, &l); err != nil {
			t.Fatal(err)
		}
		rt := metav1.NewMicroTime(now)
		l.Spec.RenewTime = &rt
		if err := cl.Update(ctx, &l); err != nil {
			t.Fatal(err)
		}
		return &l
	}
	seen := func() time.Time {
		holder, s := r.observeLease(ctx, c, "c-1")
		if holder != "c-1" {
			t.Fatalf("holder %q", holder)
		}
		return s
	}

	if got := seen(); !got.Equal(at(0)) {
		t.Fatalf("first read: seen %v, want its send time", got)
	}
	// A renewal at 300 ms, delivered by the watch at 350 ms, read at 2 s.
	now = at(300)
	l := renew()
	now = at(350)
	r.recordLease(l)
	now = at(2000)
	if got := seen(); !got.Equal(at(350)) {
		t.Errorf("seen %v, want the watch's delivery at 350 ms", got.Sub(base))
	}
	// Unchanged at the next read.
	now = at(4000)
	if got := seen(); !got.Equal(at(350)) {
		t.Errorf("unchanged lease: seen %v, want still 350 ms", got.Sub(base))
	}
	// A renewal the watch has not delivered yet: the read's send time.
	now = at(4500)
	renew()
	now = at(6000)
	if got := seen(); !got.Equal(at(6000)) {
		t.Errorf("undelivered version: seen %v, want the read at 6 s", got.Sub(base))
	}
	// An event of another version (an older one, delivered late) does not count.
	now = at(6500)
	old := l.DeepCopy()
	renew()
	r.recordLease(old)
	now = at(8000)
	if got := seen(); !got.Equal(at(8000)) {
		t.Errorf("event of another version: seen %v, want the read at 8 s", got.Sub(base))
	}
	// A Lease of no cluster (the operator's own leader election) is ignored.
	r.recordLease(&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: "pgward-system", Name: "pgward-operator.pgward.io"}})
	if _, ok := r.leaseEvents["pgward-system/pgward-operator.pgward.io"]; ok {
		t.Error("recorded a Lease without the cluster label")
	}
}
