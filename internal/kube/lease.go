package kube

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube/build"
	"github.com/pgward/pgward/internal/plan"
)

// The operator's side of the primary Lease (plan.FenceTiming, steps 5-8).
// The primary's instance manager renews the cluster's Lease through the API
// server; the operator never trusts the Lease's times, only the change of
// its resourceVersion, timed on its own clock.
//
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update

// leaseView is what the operator knows of one cluster's Lease.
type leaseView struct {
	uid   types.UID // the Cluster's: a new Cluster of the same name starts afresh
	lease *coordinationv1.Lease
	// seen is when the read that first returned lease's resourceVersion
	// was sent: LeaseSeen for its holder.
	seen time.Time
}

// observeLease reads the cluster's Lease, creating it held by target when
// there is none, and returns its holder and when the operator first saw
// its current version. The read is sent at the time returned for a new
// version (before the API server serves it), and bounded by
// RequestTimeout, as step 6 requires. An operator that just started has no
// history: its first read counts as a renewal seen now. When the Lease
// cannot be read, the target counts as having renewed now: the operator
// cannot tell, and the takeover (takeLease) needs a read anyway.
func (r *ClusterReconciler) observeLease(ctx context.Context, c *v1.Cluster, target string) (string, time.Time) {
	key := client.ObjectKeyFromObject(c).String()
	sent := r.clock()
	rctx, cancel := context.WithTimeout(ctx, r.Timing.RequestTimeout)
	defer cancel()
	var l coordinationv1.Lease
	err := r.APIReader.Get(rctx, types.NamespacedName{Namespace: c.Namespace, Name: build.LeaseName(c)}, &l)
	if apierrors.IsNotFound(err) {
		want := build.PrimaryLease(c, target, r.leaseSeconds(c), metav1.NewMicroTime(sent))
		if err = r.Client.Create(rctx, want); err == nil {
			l = *want
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.leases == nil {
		r.leases = map[string]leaseView{}
	}
	if err != nil {
		log.FromContext(ctx).Info("cannot read the primary lease; counting it as renewed now", "error", err.Error())
		r.leases[key] = leaseView{uid: c.UID, seen: sent}
		return target, sent
	}
	v := r.leases[key]
	if v.uid != c.UID || v.lease == nil || v.lease.ResourceVersion != l.ResourceVersion {
		seen := sent
		// The watch may have delivered this version earlier than the read
		// that returns it: its receipt is after the API server stored it,
		// so it bounds the renewal's send time as well (step 6), and
		// sooner: a renewal just after one check is otherwise seen only at
		// the next, up to CheckInterval later.
		if e, ok := r.leaseEvents[types.NamespacedName{Namespace: c.Namespace, Name: build.LeaseName(c)}.String()]; ok &&
			e.rv == l.ResourceVersion && e.at.Before(seen) {
			seen = e.at
		}
		v = leaseView{uid: c.UID, seen: seen}
	}
	v.lease = &l
	r.leases[key] = v
	return holderOf(&l), v.seen
}

// leaseEvent is when the operator's watch delivered a Lease's version.
type leaseEvent struct {
	rv string
	at time.Time
}

// recordLease notes when the watch delivered l's current version. It
// enqueues nothing: the Lease changes every second, and the next check
// reads it anyway (observeLease).
func (r *ClusterReconciler) recordLease(obj client.Object) {
	if _, ok := obj.(*coordinationv1.Lease); !ok || obj.GetLabels()[build.ClusterLabel] == "" {
		return
	}
	at := r.clock()
	key := client.ObjectKeyFromObject(obj).String()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.leaseEvents == nil {
		r.leaseEvents = map[string]leaseEvent{}
	}
	r.leaseEvents[key] = leaseEvent{rv: obj.GetResourceVersion(), at: at}
}

// leaseWatch is the handler of the Lease watch: it records, and enqueues
// nothing.
func (r *ClusterReconciler) leaseWatch() handler.EventHandler {
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, _ workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			r.recordLease(e.Object)
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, _ workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			r.recordLease(e.ObjectNew)
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, _ workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			r.mu.Lock()
			delete(r.leaseEvents, client.ObjectKeyFromObject(e.Object).String())
			r.mu.Unlock()
		},
	}
}

func holderOf(l *coordinationv1.Lease) string {
	if l == nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// leaseSeconds is the Lease's leaseDurationSeconds: the bound after which
// the operator may replace a silent holder of c's Lease started with c's
// settings (spec.primaryLease), rounded up. Informative only.
func (r *ClusterReconciler) leaseSeconds(c *v1.Cluster) int32 {
	bound, err := r.Timing.promotionBound(c, r.Timing.clusterSelfFence(c))
	if err != nil {
		return 0
	}
	return int32(min(math.Ceil(bound.Seconds()), math.MaxInt32))
}

// errLeaseHeld: the promotion must wait, the old primary may still renew.
var errLeaseHeld = errors.New("the primary lease is not free")

// takeoverAllowed is the pure rule of step 7 for moving the Lease from
// holder to the instance being promoted: it already holds it; or the
// current version has been unchanged for the whole bound (the holder
// renewed nothing since seen); or the holder's own instance manager
// reported it in this observation as unable to accept writes (fenced,
// stopped or in recovery, which it stays until the planner says
// otherwise; a running postgres whose role is unknown may be a primary).
// It returns why not, or "".
func takeoverAllowed(holder, to string, seen, now time.Time, bound time.Duration, holderStatus plan.InstanceStatus) string {
	switch {
	case holder == to:
		return ""
	case holder == "":
		return ""
	case now.Sub(seen) >= bound:
		return ""
	case holderStatus.Name == holder && holderStatus.Reachable &&
		(holderStatus.Fenced || !holderStatus.PostmasterRunning || holderStatus.Role == plan.RoleReplica):
		return ""
	}
	return fmt.Sprintf("%s renewed it %s ago, less than the bound %s", holder, now.Sub(seen).Round(time.Millisecond), bound)
}

// takeLease moves the Lease to the instance being promoted, before the
// promotion is sent, with an update conditioned on the version the
// operator last read: if the old holder renewed since, the update fails
// and nothing is promoted. After it, the old holder can renew no more (its
// update carries an older version, and its next read names another
// holder).
func (r *ClusterReconciler) takeLease(ctx context.Context, c *v1.Cluster, to string, bound time.Duration, holderStatus plan.InstanceStatus) error {
	key := client.ObjectKeyFromObject(c).String()
	r.mu.Lock()
	v := r.leases[key]
	r.mu.Unlock()
	if v.uid != c.UID || v.lease == nil {
		return fmt.Errorf("%w: not read yet", errLeaseHeld)
	}
	holder := holderOf(v.lease)
	if holder == to {
		return nil
	}
	now := r.clock()
	if why := takeoverAllowed(holder, to, v.seen, now, bound, holderStatus); why != "" {
		return fmt.Errorf("%w: %s", errLeaseHeld, why)
	}
	l := v.lease.DeepCopy()
	t := metav1.NewMicroTime(now)
	transitions := int32(1)
	if l.Spec.LeaseTransitions != nil {
		transitions = *l.Spec.LeaseTransitions + 1
	}
	l.Spec.HolderIdentity, l.Spec.AcquireTime, l.Spec.RenewTime, l.Spec.LeaseTransitions = &to, &t, &t, &transitions
	secs := r.leaseSeconds(c)
	l.Spec.LeaseDurationSeconds = &secs
	rctx, cancel := context.WithTimeout(ctx, r.Timing.RequestTimeout)
	defer cancel()
	// Update carries l's resourceVersion: the condition of step 7.
	if err := r.Client.Update(rctx, l); err != nil {
		if apierrors.IsConflict(err) {
			return fmt.Errorf("%w: it changed since it was read (%s renewed it)", errLeaseHeld, holder)
		}
		return fmt.Errorf("moving the primary lease to %s: %w", to, err)
	}
	r.mu.Lock()
	r.leases[key] = leaseView{uid: c.UID, lease: l, seen: now}
	r.mu.Unlock()
	log.FromContext(ctx).Info("primary lease moved", "from", holder, "to", to)
	return nil
}

// powerFence deletes the pod of a primary being replaced while it does not
// answer, with grace period 0: the kubelet then kills its containers (a
// frozen process is killed without running again; SIGKILL ends even a
// stopped one) instead of letting it wake and acknowledge writes until its
// own self-fencing check runs. The UID precondition keeps it from deleting
// a pod recreated since the observation.
//
// It runs before the Lease moves and the promotion is sent, and a failure
// stops them until the next step: the bound already makes the promotion
// safe when every clock and timeout holds as assumed, and killing first
// makes it safe also when one does not (a VM paused and resumed, a
// container frozen past its timer), at no cost in time, since the kill is
// asynchronous and the promotion follows at once.
func (r *ClusterReconciler) powerFence(ctx context.Context, pod *corev1.Pod) error {
	if pod == nil {
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, r.Timing.RequestTimeout)
	defer cancel()
	uid := pod.UID
	err := r.Client.Delete(rctx, pod, client.GracePeriodSeconds(0), client.Preconditions{UID: &uid})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting the silent primary's pod %s: %w", pod.Name, err)
	}
	key := client.ObjectKeyFromObject(pod).String()
	r.mu.Lock()
	if r.powerFenced == nil {
		r.powerFenced = map[string]time.Time{}
	}
	r.powerFenced[key] = r.now()
	r.mu.Unlock()
	log.FromContext(ctx).Info("fenced by power: deleted the silent primary's pod with grace period 0", "pod", pod.Name)
	return nil
}

// recreateAfter is how long after a power fence the pod is left away. A
// pod deleted with grace period 0 is gone from the API at once, but the
// kubelet kills its containers only after its minimum grace (2 s): a new
// pod of the same name, on the same volume, must not start PostgreSQL's
// data directory beside a process that may still run (neither PID nor
// shared-memory interlock crosses pods).
const recreateAfter = 10 * time.Second

// powerFencedRecently reports whether instance name's pod was deleted by
// powerFence less than recreateAfter ago.
func (r *ClusterReconciler) powerFencedRecently(c *v1.Cluster, name string) bool {
	key := types.NamespacedName{Namespace: c.Namespace, Name: name}.String()
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.powerFenced[key]
	if ok && r.now().Sub(at) >= recreateAfter {
		delete(r.powerFenced, key)
		return false
	}
	return ok
}

// beforePromote runs, on Kubernetes, what must precede sending a promotion
// to a.Instance: the power fence of the primaries it replaces that did not
// answer in this observation, then the move of the Lease. The old
// primaries are the memory's current primary and the Lease's holder.
func (h *haRound) beforePromote(ctx context.Context, a plan.Action, m plan.Memory) error {
	r := h.r
	bound, err := r.Timing.promotionBound(h.desired, r.primarySelfFence(h.desired, holderOrCurrent(h, m)))
	if err != nil {
		return err
	}
	key := client.ObjectKeyFromObject(h.desired).String()
	r.mu.Lock()
	holder := holderOf(r.leases[key].lease)
	r.mu.Unlock()
	now := r.now()
	for i, old := range []string{m.CurrentPrimary, holder} {
		if old == "" || old == a.Instance || h.status(old).Reachable || (i == 1 && old == m.CurrentPrimary) {
			continue
		}
		// A pod created within the bound is a replacement the operator made
		// after an earlier power fence: its instance manager starts
		// PostgreSQL only when told, so it has nothing to kill.
		if pod := h.pods[old]; pod != nil && now.Sub(pod.CreationTimestamp.Time) >= bound {
			if err := r.powerFence(ctx, pod); err != nil {
				return err
			}
		}
	}
	return r.takeLease(ctx, h.desired, a.Instance, bound, h.status(holder))
}

// status is name's observation in this round.
func (h *haRound) status(name string) plan.InstanceStatus {
	for _, o := range h.obs {
		if o.plan.Name == name {
			return o.plan
		}
	}
	return plan.InstanceStatus{Name: name}
}

// holderOrCurrent is the primary being replaced, whose self-fencing time
// the takeover's bound must cover: the Lease's holder, else the memory's
// current primary.
func holderOrCurrent(h *haRound, m plan.Memory) string {
	key := client.ObjectKeyFromObject(h.desired).String()
	h.r.mu.Lock()
	holder := holderOf(h.r.leases[key].lease)
	h.r.mu.Unlock()
	if holder != "" {
		return holder
	}
	return m.CurrentPrimary
}
