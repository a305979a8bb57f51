package kube_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instance"
	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/plan"
	"github.com/pgward/pgward/internal/plan/plantest"
)

// TestPrimaryLease runs the primary Lease against the real API server: the
// operator creates it held by the primary; the pods' ServiceAccount (a
// real token) may get and update that one Lease and nothing else; the
// instance manager's own renewer renews it; while it does, the operator
// never replaces the primary that stopped answering it (an operator cut
// off from a pod, or restarted), however long; once renewals stop, it
// replaces it after the bound, having deleted its pod (grace period 0)
// and moved the Lease, after which the old primary can renew no more.
func TestPrimaryLease(t *testing.T) {
	ns := newNamespace(t, true)
	ctx := ctxFor(t)
	c := sampleCluster(t, ns)
	c.Name = "pl"
	createCluster(t, c)

	var mu sync.Mutex
	// The operator's clock starts at the real time, so pods the API
	// server stamped count as older than the bound as it advances.
	clock := time.Now().UTC()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	timing := kube.DefaultTiming()
	sim := plantest.NewSim(clock, timing.SelfFence, "pl-1", "pl-2", "pl-3")
	advance := func(d time.Duration) {
		mu.Lock()
		clock = clock.Add(d)
		mu.Unlock()
		sim.Now = now()
		sim.Step()
	}
	var promotions []string
	instances := &simInstances{sim: sim, onCommand: func(in kube.Instance, cmd instanceapi.Command) {
		if cmd.Kind == instanceapi.CommandPromote {
			promotions = append(promotions, in.Name)
		}
	}}
	r := newReconciler(instances, now)
	status := func() v1.ClusterStatus {
		var got v1.Cluster
		if err := admin.Get(ctx, client.ObjectKeyFromObject(c), &got); err != nil {
			t.Fatal(err)
		}
		return got.Status
	}
	for i := 0; ; i++ {
		reconcileOnce(t, r, c)
		advance(time.Second)
		sim.Write()
		if st := status(); st.CurrentPrimary == "pl-1" && st.ReadyInstances == 3 && st.Phase == kube.PhaseHealthy {
			break
		}
		if i > 30 {
			t.Fatalf("cluster not healthy after %d rounds: %+v", i, status())
		}
	}

	// The Lease: made by the operator, held by the primary, owned by the
	// Cluster (deleted with it).
	leaseKey := types.NamespacedName{Namespace: ns, Name: "pl"}
	lease := func() coordinationv1.Lease {
		var l coordinationv1.Lease
		if err := admin.Get(ctx, leaseKey, &l); err != nil {
			t.Fatalf("reading the lease: %v", err)
		}
		return l
	}
	if l := lease(); l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != "pl-1" ||
		len(l.OwnerReferences) != 1 || l.OwnerReferences[0].Name != "pl" || l.Spec.LeaseDurationSeconds == nil || *l.Spec.LeaseDurationSeconds < 5 {
		t.Fatalf("lease %+v %+v", l.ObjectMeta, l.Spec)
	}

	// The pods' identity, with a real token as the kubelet projects it.
	pods := kubernetes.NewForConfigOrDie(adminCfg)
	tr, err := pods.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "pl", &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: new(int64(600))},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("requesting a token for the pods' ServiceAccount: %v", err)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(tr.Status.Token), 0o600); err != nil {
		t.Fatal(err)
	}
	podCfg := &rest.Config{Host: adminCfg.Host, BearerToken: tr.Status.Token, TLSClientConfig: rest.TLSClientConfig{CAData: adminCfg.CAData}}
	podClient, err := client.New(podCfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	// What the Role allows: get and update of this Lease. Nothing else:
	// not create, patch or delete, and no other Lease of the namespace.
	other := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pl-other"}}
	if err := admin.Create(ctx, other); err != nil {
		t.Fatal(err)
	}
	own := lease()
	if err := podClient.Update(ctx, own.DeepCopy()); err != nil {
		t.Errorf("the pods cannot update their Lease: %v", err)
	}
	forbidden := map[string]error{
		"get another lease":    podClient.Get(ctx, client.ObjectKeyFromObject(other), &coordinationv1.Lease{}),
		"update another lease": podClient.Update(ctx, other.DeepCopy()),
		"create a lease":       podClient.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pl-new"}}),
		"delete its lease":     podClient.Delete(ctx, &own),
		"patch its lease": podClient.Patch(ctx, &own,
			client.RawPatch(types.MergePatchType, []byte(`{"spec":{"holderIdentity":"pl-2"}}`))),
		"list leases": podClient.List(ctx, &coordinationv1.LeaseList{}, client.InNamespace(ns)),
	}
	for what, err := range forbidden {
		if !apierrors.IsForbidden(err) {
			t.Errorf("the pods may %s: %v", what, err)
		}
	}

	renewer := func(holder string) instance.LeaseRenewer {
		rn, err := instance.NewLeaseClient(adminCfg.Host, adminCfg.CAData, tokenFile, ns, "pl", holder)
		if err != nil {
			t.Fatal(err)
		}
		return rn
	}
	primary := renewer("pl-1")
	if err := renewer("pl-2").Renew(ctx); !errors.Is(err, instance.ErrNotHolder) {
		t.Errorf("a replica renewed the primary's lease: %v", err)
	}

	// pl-1 stops answering the operator (cut off from it, or the operator
	// restarted and cannot reach it) but keeps renewing through the API
	// server: no failover for four times the bound.
	podBefore := podOrNil(t, ns, "pl-1")
	var lastSeen, promotedAt time.Time
	sim.Node("pl-1").Isolated = true
	for range 8 {
		before := lease().ResourceVersion
		if err := primary.Renew(ctx); err != nil {
			t.Fatalf("renewing: %v", err)
		}
		if lease().ResourceVersion == before {
			t.Fatal("a renewal did not change the lease")
		}
		lastSeen = now() // the operator's read of this renewal
		reconcileOnce(t, r, c)
		advance(5 * time.Second)
	}
	if len(promotions) != 0 || status().TargetPrimary != "pl-1" {
		t.Fatalf("promoted %v while pl-1 renewed its lease (status %+v)", promotions, status())
	}

	// Renewals stop: the bound passes, pl-1's pod is deleted, the Lease
	// moves, a replica is promoted.
	for i := 0; len(promotions) == 0; i++ {
		promotedAt = now()
		reconcileOnce(t, r, c)
		advance(time.Second)
		if i > 30 {
			t.Fatalf("no failover %v after the last renewal: %+v", now().Sub(lastSeen), status())
		}
	}
	bound, err := timingBound(timing)
	if err != nil {
		t.Fatal(err)
	}
	if waited := promotedAt.Sub(lastSeen); waited < bound || waited > bound+2*time.Second {
		t.Errorf("promoted %v after the last renewal seen, want just past the bound %v", waited, bound)
	}
	to := promotions[0]
	if l := lease(); l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != to {
		t.Errorf("lease holder %v after promoting %s", l.Spec.HolderIdentity, to)
	}
	if p := podOrNil(t, ns, "pl-1"); p != nil {
		t.Errorf("the silent primary's pod was not deleted, or was recreated at once (UID %s, before %s)", p.UID, podBefore.UID)
	}
	// Recreated once the kubelet has surely killed the old containers.
	for range 12 {
		reconcileOnce(t, r, c)
		advance(time.Second)
	}
	if p := podOrNil(t, ns, "pl-1"); p == nil || p.UID == podBefore.UID {
		t.Errorf("pl-1's pod not recreated 12 s after the power fence: %v", p)
	}
	if err := primary.Renew(ctx); !errors.Is(err, instance.ErrNotHolder) {
		t.Errorf("the old primary renewed after the takeover: %v", err)
	}
}

// TestLeaseTakeoverRefusedAfterRenewal: a renewal that lands after the
// operator's last read of the Lease (the race of plan.FenceTiming's step
// 7: here, just before its update moving the Lease to the new primary)
// makes the takeover fail, and nothing is promoted; the operator then
// waits a whole bound from the read that saw that renewal.
func TestLeaseTakeoverRefusedAfterRenewal(t *testing.T) {
	ns := newNamespace(t, false)
	ctx := ctxFor(t)
	c := sampleCluster(t, ns)
	c.Name = "lr"
	createCluster(t, c)
	var mu sync.Mutex
	clock := time.Now().UTC()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	sim := plantest.NewSim(clock, kube.DefaultTiming().SelfFence, "lr-1", "lr-2", "lr-3")
	advance := func(d time.Duration) {
		mu.Lock()
		clock = clock.Add(d)
		mu.Unlock()
		sim.Now = now()
		sim.Step()
	}
	var promoted []string
	instances := &simInstances{sim: sim, onCommand: func(in kube.Instance, cmd instanceapi.Command) {
		if cmd.Kind == instanceapi.CommandPromote {
			promoted = append(promoted, in.Name)
		}
	}}
	r := newReconciler(instances, now)
	leaseKey := types.NamespacedName{Namespace: ns, Name: "lr"}
	var renewedAt time.Time
	r.Client = updateHook{Client: operator, before: func(obj client.Object) {
		moving, ok := obj.(*coordinationv1.Lease)
		if !ok || moving.Spec.HolderIdentity == nil || *moving.Spec.HolderIdentity == "lr-1" || !renewedAt.IsZero() {
			return
		}
		// The old primary's renewal, stored just before the takeover.
		var l coordinationv1.Lease
		if err := admin.Get(ctx, leaseKey, &l); err != nil {
			t.Error(err)
			return
		}
		rt := metav1.NewMicroTime(time.Now())
		l.Spec.RenewTime = &rt
		if err := admin.Update(ctx, &l); err != nil {
			t.Error(err)
		}
		renewedAt = now()
	}}
	for i := 0; ; i++ {
		reconcileOnce(t, r, c)
		advance(time.Second)
		sim.Write()
		var got v1.Cluster
		if err := admin.Get(ctx, client.ObjectKeyFromObject(c), &got); err != nil {
			t.Fatal(err)
		}
		if got.Status.Phase == kube.PhaseHealthy && got.Status.ReadyInstances == 3 {
			break
		}
		if i > 30 {
			t.Fatalf("not healthy: %+v", got.Status)
		}
	}
	sim.Node("lr-1").Isolated = true
	var promotedAt time.Time
	for i := 0; len(promoted) == 0; i++ {
		promotedAt = now()
		reconcileOnce(t, r, c)
		advance(time.Second)
		if i > 60 {
			t.Fatal("no promotion")
		}
	}
	if renewedAt.IsZero() {
		t.Fatal("the promotion step moved no Lease: the race was not staged")
	}
	bound, err := timingBound(kube.DefaultTiming())
	if err != nil {
		t.Fatal(err)
	}
	// The renewal was seen at the next read, one round (1s) later.
	if waited := promotedAt.Sub(renewedAt); waited < bound+time.Second {
		t.Errorf("promoted %v after a renewal landed, before the bound %v", waited, bound)
	}
	var l coordinationv1.Lease
	if err := admin.Get(ctx, leaseKey, &l); err != nil {
		t.Fatal(err)
	}
	if *l.Spec.HolderIdentity != promoted[0] {
		t.Errorf("lease held by %s, promoted %s", *l.Spec.HolderIdentity, promoted[0])
	}
}

// updateHook runs before before every Update.
type updateHook struct {
	client.Client
	before func(client.Object)
}

func (d updateHook) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	d.before(obj)
	return d.Client.Update(ctx, obj, opts...)
}

func timingBound(t kube.Timing) (time.Duration, error) {
	return plan.FenceTiming{
		SelfFence: t.SelfFence, RequestTimeout: t.RequestTimeout, CheckInterval: instance.FenceCheckInterval,
		StopTime: t.StopTime, ClockStep: t.ClockStep, Drift: t.Drift,
	}.Bound()
}

// podOrNil returns the pod, or nil once it is gone.
func podOrNil(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	var p corev1.Pod
	err := admin.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &p)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return &p
}
