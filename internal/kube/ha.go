package kube

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/control"
	"github.com/pgward/pgward/internal/instance"
	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/kube/build"
	"github.com/pgward/pgward/internal/plan"
)

// Timing is the operator's side of the self-fencing argument (see
// plan.FenceTiming) and how often it looks at each cluster.
type Timing struct {
	// RequestTimeout bounds one status request.
	RequestTimeout time.Duration
	// SelfFence is how long a primary accepts writes without a completed
	// exchange with the operator and without a stored renewal of the
	// cluster's Lease; the pods get it in their config. The Lease carries
	// the primary through an operator restart or leader change of any
	// length, and the exchanges through an API server outage, so it need
	// only outlast a few failed renewals.
	SelfFence time.Duration
	// LeaseRenew is how often the primary renews the cluster's Lease, and
	// LeaseTimeout bounds one renewal (read and update). Neither enters
	// the bound (plan.FenceTiming, step 8): they decide how many renewals
	// may fail in a row before a primary the operator cannot reach fences
	// itself, and what a healthy cluster costs etcd (one write per
	// LeaseRenew).
	LeaseRenew   time.Duration
	LeaseTimeout time.Duration
	// StopTime bounds an instance's immediate shutdown once it fences.
	StopTime time.Duration
	// ClockStep is the largest forward jump of the operator's clock during
	// one bound. Every interval the argument measures is between two
	// readings of one operator process (clock: Go's monotonic clock, which
	// NTP may slew, within Drift, but never steps), and a new process, a
	// restart or a new leader, trusts no stored time (control.Resume): so 0.
	// between two reconciles, including a move of leadership to another
	// node whose clock differs.
	ClockStep time.Duration
	// Drift is the largest relative clock-rate error.
	Drift float64
	// CheckInterval is the longest a cluster goes unobserved.
	CheckInterval time.Duration
	// TransitionInterval is how soon a cluster that is changing (a
	// switchover, a promotion, actions just sent) is observed again; its
	// instances' wake-ups (instancewatch.go) usually come sooner.
	TransitionInterval time.Duration
	// UnreachableTimeout is how long the primary may not answer before it
	// counts as unhealthy.
	UnreachableTimeout time.Duration
	// RetryTimeout bounds the status request to an instance that did not
	// answer the previous one (at most RequestTimeout). A frozen or cut-off
	// primary would otherwise hold every step up for the whole
	// RequestTimeout, the step that promotes its successor included. A
	// shorter wait only makes an answer count less often, never more
	// (plan.FenceTiming, step 1), so it cannot weaken the bound; the first
	// answer puts the instance back on RequestTimeout.
	RetryTimeout time.Duration
	// RouteWait is how long a switchover keeps the primary running while
	// its target's pod is not Ready (plan.Spec.RouteWait; zero: the
	// planner's default). The readiness probe runs every 2 s, so a pod
	// whose manager answers is Ready within about that.
	RouteWait time.Duration
}

// DefaultTiming suits Kubernetes. The primary renews its Lease every
// second, so a 3 s self-fencing window survives two failed renewals in a
// row while the operator is away, and any operator restart while the API
// server answers; an unreachable primary is replaced after the derived
// bound, (1 + 3·1.0001 + 0.1 + 1)/0.9999 ≈ 5.1 s (it was ~35 s with the
// 30 s window that had to ride out an operator restart before the Lease,
// and ~9.1 s with a 4 s window, 2 s requests and a 2 s allowance for wall
// clock steps, which the monotonic clock made unnecessary). A status
// answer takes milliseconds on a healthy pod (the manager answers from a
// background sample), and a Lease read or update tens of milliseconds on a
// loaded API server, so 1 s requests leave a wide margin. A cluster's
// spec.primaryLease replaces SelfFence and the bound (promotionBound).
func DefaultTiming() Timing {
	return Timing{
		RequestTimeout:     time.Second,
		SelfFence:          3 * time.Second,
		LeaseRenew:         time.Second,
		LeaseTimeout:       2 * time.Second,
		StopTime:           time.Second,
		ClockStep:          0,
		Drift:              1e-4,
		CheckInterval:      2 * time.Second,
		TransitionInterval: 250 * time.Millisecond,
		UnreachableTimeout: 5 * time.Second,
		RetryTimeout:       500 * time.Millisecond,
		RouteWait:          plan.DefaultRouteWait,
	}
}

// fenceBound is the planner's SelfFenceBound for t with the operator's
// own self-fencing time (plan.FenceTiming).
func (t Timing) fenceBound() (time.Duration, error) {
	bound, err := t.fence(t.SelfFence).Bound()
	if err != nil {
		return 0, fmt.Errorf("self-fencing timing: %w", err)
	}
	return bound, nil
}

// LegacySelfFence is what instance managers that do not report their
// self-fencing time (older than the primary Lease) were started with.
const LegacySelfFence = 30 * time.Second

// clusterSelfFence is the self-fencing time cluster c's pods are started
// with: spec.primaryLease.renewDeadlineSeconds, else the operator's.
func (t Timing) clusterSelfFence(c *v1.Cluster) time.Duration {
	if _, d := c.Spec.PrimaryLeaseTimes(); d > 0 {
		return d
	}
	return t.SelfFence
}

// fence is t's side of plan.FenceTiming for a primary that self-fences
// after selfFence: the same for the direct contact and the Lease, whose
// read RequestTimeout also bounds.
func (t Timing) fence(selfFence time.Duration) plan.FenceTiming {
	return plan.FenceTiming{
		SelfFence: selfFence, RequestTimeout: t.RequestTimeout, CheckInterval: instance.FenceCheckInterval,
		StopTime: t.StopTime, ClockStep: t.ClockStep, Drift: t.Drift,
	}
}

// promotionBound is how long c's primary, started with self-fencing time
// selfFence, must have been silent before another instance is promoted:
// spec.primaryLease.leaseDurationSeconds, else the derived bound, and
// never less than the derived bound. checkClusterFence keeps the first
// from being shorter for the self-fencing time c's pods get, so the derived
// bound wins only while a pod started with a longer one still runs (its
// manager reads its config at start).
func (t Timing) promotionBound(c *v1.Cluster, selfFence time.Duration) (time.Duration, error) {
	bound, err := t.fence(selfFence).Bound()
	if err != nil {
		return 0, fmt.Errorf("self-fencing timing: %w", err)
	}
	if d, _ := c.Spec.PrimaryLeaseTimes(); d > bound {
		return d, nil
	}
	return bound, nil
}

// checkClusterFence refuses a spec.primaryLease whose duration is shorter
// than the bound this operator's timings derive for its renew deadline
// (plan.FenceTiming.LeaseBound). api/v1's LeaseMarginSeconds makes that
// impossible with the timings Run accepts (CheckPrimaryLeaseRange): this
// is the same rule on the values themselves, naming the field.
func (t Timing) checkClusterFence(c *v1.Cluster) error {
	d, _ := c.Spec.PrimaryLeaseTimes()
	if _, err := t.fence(t.clusterSelfFence(c)).LeaseBound(d); err != nil {
		return fmt.Errorf("spec.primaryLease.leaseDurationSeconds: %w", err)
	}
	return nil
}

// CheckPrimaryLeaseRange reports whether every spec.primaryLease that
// api/v1 accepts is safe with t: for every renew deadline in range, the
// derived bound is at most the deadline plus v1.LeaseMarginSeconds, the
// least leaseDurationSeconds accepted for it. Run refuses timings that fail
// it.
func (t Timing) CheckPrimaryLeaseRange() error {
	for s := int64(v1.MinRenewDeadlineSeconds); s <= v1.MaxRenewDeadlineSeconds; s++ {
		t.SelfFence = time.Duration(s) * time.Second
		bound, err := t.fenceBound()
		if err != nil {
			return err
		}
		if least := time.Duration(s+v1.LeaseMarginSeconds) * time.Second; bound > least {
			return fmt.Errorf("with a renew deadline of %ds the bound is %s, more than the %s spec.primaryLease may set: shorten the request timeout or the stop time",
				s, bound.Round(time.Millisecond), least)
		}
	}
	return nil
}

// primarySelfFence is the self-fencing time the bound must cover for
// target: what its manager last reported to this operator, but never less
// than the cluster's own setting. A manager that has not answered since
// the operator started, or that does not report it, counts as
// LegacySelfFence: its pod may predate this operator's settings (an
// upgrade, a changed --self-fence or spec.primaryLease), and its config is
// read only at start.
func (r *ClusterReconciler) primarySelfFence(c *v1.Cluster, target string) time.Duration {
	key := client.ObjectKeyFromObject(c).String()
	r.mu.Lock()
	reported, ok := r.selfFences[key][target]
	r.mu.Unlock()
	if !ok {
		reported = LegacySelfFence
	}
	return max(reported, r.Timing.clusterSelfFence(c))
}

// planSpec is the planner's view of the cluster whose primary should be
// target.
func (r *ClusterReconciler) planSpec(c *v1.Cluster, target string) (plan.Spec, error) {
	t := r.Timing
	if err := t.checkClusterFence(c); err != nil {
		return plan.Spec{}, err
	}
	bound, err := t.promotionBound(c, r.primarySelfFence(c, target))
	if err != nil {
		return plan.Spec{}, err
	}
	spec, err := plan.SpecFromCluster(c, build.InstanceNames(c))
	if err != nil {
		return spec, fmt.Errorf("planner spec: %w", err)
	}
	spec.SelfFenceBound = bound
	spec.UnreachableTimeout = t.UnreachableTimeout
	spec.CheckInterval = t.CheckInterval
	spec.TransitionInterval = t.TransitionInterval
	spec.RouteWait = t.RouteWait
	return spec, spec.Validate()
}

// loadMemory reads the planner's Memory from the Cluster's status.
func loadMemory(c *v1.Cluster) (plan.Memory, error) {
	var m plan.Memory
	if c.Status.PlannerMemory == nil || len(c.Status.PlannerMemory.Raw) == 0 {
		return m, nil
	}
	if err := json.Unmarshal(c.Status.PlannerMemory.Raw, &m); err != nil {
		return m, fmt.Errorf("cluster %s: status.plannerMemory: %w", c.Name, err)
	}
	return m, nil
}

// targetOf is the instance that should be primary: the planner's target,
// or, before the planner has chosen, the first instance (which bootstraps).
func targetOf(c *v1.Cluster, mem plan.Memory) string {
	if mem.TargetPrimary != "" {
		return mem.TargetPrimary
	}
	return build.InstanceName(c, 1)
}

// observation is one instance's answer, kept in wire form for the status.
type observation struct {
	plan plan.InstanceStatus
	wire *instanceapi.Status
}

// memory returns the planner memory to go on from. The operator keeps
// each cluster's latest memory between reconciles (control.Memory says why
// it saves only transitions); it starts again from the status, as after a
// restart, when the status holds anything else: a new Cluster of the same
// name, or a memory another writer left.
func (r *ClusterReconciler) memory(ctx context.Context, c *v1.Cluster) (*control.Memory, error) {
	stored, err := loadMemory(c)
	if err != nil {
		return nil, err
	}
	key := client.ObjectKeyFromObject(c)
	r.mu.Lock()
	e, ok := r.mems[key.String()]
	r.mu.Unlock()
	if ok && e.uid == c.UID && !e.mem.Holds(stored) && r.APIReader != nil {
		// The cache may not have seen this operator's last write yet (a
		// pod event can start a reconcile before the status event
		// arrives): the API server says which it is.
		var fresh v1.Cluster
		if err := r.APIReader.Get(ctx, key, &fresh); err != nil {
			return nil, fmt.Errorf("reading cluster %s: %w", key, err)
		}
		if stored, err = loadMemory(&fresh); err != nil {
			return nil, err
		}
	}
	if ok && e.uid == c.UID && e.mem.Holds(stored) {
		return e.mem, nil
	}
	m := control.Resume(stored, r.clock())
	r.mu.Lock()
	if r.mems == nil {
		r.mems = map[string]clusterMemory{}
	}
	r.mems[key.String()] = clusterMemory{uid: c.UID, mem: m}
	r.mu.Unlock()
	return m, nil
}

// clusterMemory is a Cluster's planner memory, for the Cluster of that UID.
type clusterMemory struct {
	uid types.UID
	mem *control.Memory
}

// drive runs one step of the planner loop (control.Driver) on the
// Kubernetes adapter, then publishes the planner's events and the status.
func (r *ClusterReconciler) drive(ctx context.Context, c, desired *v1.Cluster, mem *control.Memory, pods map[string]*corev1.Pod, tlsm *tlsMaterial) (reconcile.Result, error) {
	spec, err := r.planSpec(desired, targetOf(desired, mem.Latest()))
	if err != nil {
		return reconcile.Result{}, err
	}
	if spec.SyncDomains, err = r.syncDomains(ctx, desired, pods); err != nil {
		return reconcile.Result{}, err
	}
	spec.Manifests = r.manifestsOf(desired)
	h := &haRound{r: r, c: c, desired: desired, pods: pods, tlsm: tlsm, mem: mem}
	d := control.Driver{Observer: h, Store: h, Actuator: h, Now: r.clock}
	taken := takeSwitchover(c, mem)
	restart := takeRestart(ctx, c, spec, mem)
	res, err := d.Step(ctx, spec, mem)
	if err != nil {
		return reconcile.Result{}, err
	}
	r.publish(ctx, c, res.Ready)
	r.publishSwitchover(c, res.SwitchoverOutcome)
	if res.Failed != nil {
		log.FromContext(ctx).Info("action failed; retrying after the next observation", "error", res.Failed.Error())
	}
	r.requestReloads(ctx, c, h.obs, pods, tlsm)
	if err := r.releaseHibernatedPods(ctx, spec, res.Memory, h.obs, pods); err != nil {
		return reconcile.Result{}, err
	}
	if err := r.updateStatus(ctx, c, desired, res.Ready, h.obs, pods); err != nil {
		return reconcile.Result{}, err
	}
	// The request is in the saved memory now (the step saves a changed
	// memory before acting): the annotation can go. Last, as it changes
	// the Cluster's resourceVersion.
	if taken {
		if err := r.clearSwitchoverAnnotation(ctx, c); err != nil {
			return reconcile.Result{}, err
		}
	}
	if restart && !taken {
		// Not in the same reconcile as a switchover's removal (its patch
		// changed the resourceVersion): the next one removes it.
		if err := r.clearRestartAnnotation(ctx, c); err != nil {
			return reconcile.Result{}, err
		}
	}
	wait := res.Wait
	if !h.wakeAt.IsZero() {
		if until := h.wakeAt.Sub(r.clock()); until > 0 && (wait <= 0 || until < wait) {
			wait = max(until, 100*time.Millisecond)
		}
	}
	return reconcile.Result{RequeueAfter: wait}, nil
}

// haRound is the Kubernetes adapter of one reconcile to control.Driver:
// it observes the pods' status ports, keeps the memory in the Cluster's
// status, moves the primary label and sends commands.
type haRound struct {
	r          *ClusterReconciler
	c, desired *v1.Cluster
	pods       map[string]*corev1.Pod
	tlsm       *tlsMaterial
	mem        *control.Memory
	obs        []observation // the last Observe, for the status
	// wakeAt is when a silent primary will have fenced itself
	// (fenceSelfFenced): the next step should come no later.
	wakeAt time.Time
}

func (h *haRound) Observe(ctx context.Context, names []string) []plan.InstanceStatus {
	// The Lease is read beside the status requests, not after them: an
	// unreachable primary's request takes the whole RequestTimeout, and a
	// read sent that much later would push LeaseSeen, and the failover,
	// back by as much (plan.FenceTiming, step 6, needs only its send time).
	type leaseSeen struct {
		holder string
		seen   time.Time
	}
	leaseDone := make(chan leaseSeen, 1)
	go func() {
		holder, seen := h.r.observeLease(ctx, h.desired, targetOf(h.desired, h.mem.Latest()))
		leaseDone <- leaseSeen{holder, seen}
	}()
	h.obs = h.r.observe(ctx, h.desired, names, h.pods, h.tlsm)
	l := <-leaseDone
	holder, seen := l.holder, l.seen
	for i := range h.obs {
		if h.obs[i].plan.Name == holder {
			h.obs[i].plan.LeaseSeen = seen
		}
	}
	out := make([]plan.InstanceStatus, 0, len(h.obs))
	for _, o := range h.obs {
		out = append(out, o.plan)
	}
	return out
}

func (h *haRound) Observed(ctx context.Context, obs []plan.InstanceStatus) {
	if err := h.fenceSelfFenced(ctx, obs); err != nil {
		// The promotion deletes the pod again before it runs (beforePromote).
		log.FromContext(ctx).Info("power fence", "error", err.Error())
	}
	if err := h.r.advanceCARotation(ctx, h.desired, h.obs); err != nil {
		// The next observation tries again; nothing else depends on it.
		log.FromContext(ctx).Info("CA rotation", "error", err.Error())
	}
}

func (h *haRound) Save(ctx context.Context, m plan.Memory) error {
	return h.r.persistMemory(ctx, h.c, m)
}

func (h *haRound) Route(ctx context.Context, m plan.Memory) error {
	target := targetOf(h.desired, m)
	// The Service first, in one update: the pods' role labels then move the
	// read-only Service and the PodDisruptionBudgets, whose EndpointSlice
	// changes must not reach kube-proxy before the read-write one (it
	// applies a change that comes within its minimum sync period of the
	// last one only after that period).
	if err := h.r.routeService(ctx, h.desired, target); err != nil {
		return err
	}
	return h.r.relabel(ctx, h.pods, target)
}

func (h *haRound) Run(ctx context.Context, a plan.Action, m plan.Memory) error {
	if a.Kind == plan.ActionPromote {
		if err := h.beforePromote(ctx, a, m); err != nil {
			return err
		}
	}
	return h.r.execute(ctx, h.desired, m, a, h.pods, h.tlsm)
}

// fenceSelfFenced deletes the pod of a silent target primary (grace
// period 0) as soon as the primary has surely stopped accepting writes by
// its own timer (plan.FenceTiming, steps 1-3 and 8: its last contact plus
// RequestTimeout, its self-fencing time stretched by drift, the check
// interval and the time to stop), and wakes the next step then. With the
// default timings that is the bound itself (a nanosecond before); with a
// spec.primaryLease.leaseDurationSeconds longer than the derived bound it
// is earlier, and the kubelet, which kills a deleted pod's processes only
// after its minimum grace period (2 s), has killed them (and released the
// client connections they held) by the promotion. It costs no
// availability: a primary this silent has fenced itself already.
// Single-instance clusters have no self-fencing: never.
func (h *haRound) fenceSelfFenced(ctx context.Context, obs []plan.InstanceStatus) error {
	m := h.mem.Latest()
	target := m.TargetPrimary
	if target == "" || m.PrimaryLastSeen.IsZero() || len(build.InstanceNames(h.desired)) < 2 {
		return nil
	}
	var st plan.InstanceStatus
	for _, o := range obs {
		if o.Name == target {
			st = o
		}
	}
	pod := h.pods[target]
	if st.Name != target || st.Reachable || pod == nil || !pod.DeletionTimestamp.IsZero() {
		return nil
	}
	r := h.r
	last := m.PrimaryLastSeen
	if st.LeaseSeen.After(last) {
		last = st.LeaseSeen
	}
	sf := r.primarySelfFence(h.desired, target)
	t := r.Timing.fence(sf)
	fencedBy := last.Add(t.RequestTimeout + time.Duration(float64(sf)*(1+t.Drift)) + t.CheckInterval + t.StopTime)
	now := r.clock()
	if now.Before(fencedBy) {
		h.wakeAt = fencedBy
		return nil
	}
	bound, err := r.Timing.promotionBound(h.desired, sf)
	if err != nil {
		return err
	}
	// A pod created within the bound is a replacement the operator made
	// after an earlier power fence: it starts PostgreSQL only when told.
	if now.Sub(pod.CreationTimestamp.Time) < bound {
		return nil
	}
	if err := r.powerFence(ctx, pod); err != nil {
		return err
	}
	// Gone from the API at once (grace period 0): this step neither
	// relabels nor fences it again.
	delete(h.pods, target)
	return nil
}

// observe asks every instance for its status, in parallel, each within
// RequestTimeout. ObservedAt is when the request was sent, as
// plan.FenceTiming requires; an instance without a pod, or that does not
// answer, is unreachable. A terminating pod is asked too: the instance
// manager of a deleted primary stops PostgreSQL and stays to say so
// (instance.LeaveWindow), which lets the planner promote at once, as after
// a crash, rather than after the self-fencing bound it must wait out for a
// silent primary.
func (r *ClusterReconciler) observe(ctx context.Context, c *v1.Cluster, names []string, pods map[string]*corev1.Pod, tlsm *tlsMaterial) []observation {
	key := client.ObjectKeyFromObject(c).String()
	out := make([]observation, len(names))
	ids := make([]uint64, len(names))
	done := make(chan struct{}, len(names))
	var watched []Instance
	r.mu.Lock()
	acks := map[string]uint64{}
	for k, v := range r.acks[key] {
		acks[k] = v
	}
	unanswered := map[string]bool{}
	for k, v := range r.unanswered[key] {
		unanswered[k] = v
	}
	r.mu.Unlock()
	for i, name := range names {
		sent := r.clock()
		out[i] = observation{plan: control.Unreachable(name, sent)}
		pod := pods[name]
		if !askTerminating(pod) {
			done <- struct{}{}
			continue
		}
		in := r.instanceFor(c, pod, tlsm)
		watched = append(watched, in)
		timeout := r.Timing.RequestTimeout
		if unanswered[name] && r.Timing.RetryTimeout > 0 {
			timeout = min(timeout, r.Timing.RetryTimeout)
		}
		go func() {
			defer func() { done <- struct{}{} }()
			rctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			st, err := r.Instances.Status(rctx, in, acks[name])
			if err != nil || st.Name != name {
				if !unanswered[name] {
					// Once per change from answering to silent: which
					// request went unanswered, and why, is what a slow
					// failover's timeline cannot tell otherwise (a deleted
					// primary's report of its stop missed once in 20
					// rounds on real pods, docs/benchmarks.md).
					log.FromContext(ctx).Info("instance stopped answering", "instance", name,
						"terminating", !pod.DeletionTimestamp.IsZero(), "timeout", timeout, "error", fmt.Sprint(err), "answeredAs", answeredAs(st))
				}
				return
			}
			out[i] = observation{plan: control.Observation(st, sent), wire: st}
			out[i].plan.Unroutable = podUnroutable(pod)
			if r.isOutdated(c, name) {
				// A new image is a restart the planner rolls like any
				// other: replicas one at a time, then the primary.
				out[i].plan.PendingRestart = true
			}
			ids[i] = st.RequestID
		}()
	}
	for range names {
		<-done
	}
	if r.wakeups != nil {
		r.wakeups.track(client.ObjectKeyFromObject(c), watched)
	}
	r.mu.Lock()
	if r.acks == nil {
		r.acks = map[string]map[string]uint64{}
	}
	if r.acks[key] == nil {
		r.acks[key] = map[string]uint64{}
	}
	if r.selfFences == nil {
		r.selfFences = map[string]map[string]time.Duration{}
	}
	if r.selfFences[key] == nil {
		r.selfFences[key] = map[string]time.Duration{}
	}
	if r.unanswered == nil {
		r.unanswered = map[string]map[string]bool{}
	}
	r.unanswered[key] = map[string]bool{}
	for i, o := range out {
		r.unanswered[key][o.plan.Name] = !o.plan.Reachable
		if o.plan.Reachable {
			r.acks[key][o.plan.Name] = ids[i]
			sf := LegacySelfFence
			if o.wire.SelfFence != nil {
				sf = *o.wire.SelfFence
			}
			r.selfFences[key][o.plan.Name] = sf
		}
	}
	r.mu.Unlock()
	return out
}

// podUnroutable reports whether the pod has a Ready condition that is not
// True: the EndpointSlice controller then leaves it out of <c>-rw's ready
// endpoints, whatever its instance manager answers (the kubelet reports
// Ready up to a readiness period after the manager first answers, and a
// pod on a lost node goes Unknown). The planner holds a switchover to it
// for a bounded time (plan.Spec.RouteWait). A pod with no Ready condition
// at all is routable: no kubelet has reported on it (envtest), and a real
// pod answers only after its kubelet started it, which reports the
// condition first.
func podUnroutable(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status != corev1.ConditionTrue
		}
	}
	return false
}

// answeredAs is the name an instance's answer carried ("" for none).
func answeredAs(st *instanceapi.Status) string {
	if st == nil {
		return ""
	}
	return st.Name
}

// recreatingAnnotation marks a pod the operator deletes to recreate it
// (a new image): a restart the planner asked for, not a departure.
const recreatingAnnotation = "pgward.io/recreating"

// askTerminating reports whether observe asks pod's instance manager for
// its status: any existing pod, terminating or not, except one the
// operator is recreating for a restart in place. That one stays
// unreachable until its successor answers, as the planner expects of a
// restart (a primary seen stopped there would be failed over, against
// primaryUpdateMethod restart).
func askTerminating(pod *corev1.Pod) bool {
	if pod == nil {
		return false
	}
	return pod.DeletionTimestamp.IsZero() || pod.Annotations[recreatingAnnotation] == ""
}

func (r *ClusterReconciler) instanceFor(c *v1.Cluster, pod *corev1.Pod, tlsm *tlsMaterial) Instance {
	in := Instance{
		Cluster:    client.ObjectKeyFromObject(c).String(),
		Name:       pod.Name,
		ServerName: build.ServerName(c),
		TLS:        tlsm.client,
	}
	if ip := pod.Status.PodIP; ip != "" {
		in.Addr = net.JoinHostPort(ip, strconv.Itoa(build.StatusPort))
	}
	return in
}

// persistMemory writes the planner's Memory (and the primaries it names)
// to the status. The patch carries the resourceVersion the memory was
// read at: if anything else wrote the Cluster meanwhile, it fails and the
// decision is made again from fresh state.
func (r *ClusterReconciler) persistMemory(ctx context.Context, c *v1.Cluster, mem plan.Memory) error {
	raw, err := json.Marshal(mem)
	if err != nil {
		return fmt.Errorf("encoding planner memory: %w", err)
	}
	before := c.DeepCopy()
	c.Status.PlannerMemory = &runtime.RawExtension{Raw: raw}
	c.Status.TargetPrimary = targetOf(c, mem)
	c.Status.CurrentPrimary = mem.CurrentPrimary
	return r.Client.Status().Patch(ctx, c, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
}

// routeService points the read-write Service at target
// (build.PrimarySelector) if it selects another instance.
func (r *ClusterReconciler) routeService(ctx context.Context, c *v1.Cluster, target string) error {
	var svc corev1.Service
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: c.Namespace, Name: build.RWServiceName(c)}, &svc)
	if apierrors.IsNotFound(err) {
		// Just created by this reconcile (ensureClusterObjects), for the
		// same target; the cache has not seen it yet.
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the read-write Service: %w", err)
	}
	want := build.PrimarySelector(c, target)
	if maps.Equal(svc.Spec.Selector, want) {
		return nil
	}
	before := svc.DeepCopy()
	svc.Spec.Selector = want
	if err := r.Client.Patch(ctx, &svc, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("pointing Service %s at %s: %w", svc.Name, target, err)
	}
	log.FromContext(ctx).Info("read-write service moved", "to", target)
	return nil
}

// relabel moves the primary role label to target (and the replica label to
// every other instance): the read-only Service, the PodDisruptionBudgets
// and the users' own selectors follow it (routeService moves the
// read-write Service, by instance name, in one change). The target is
// labelled first: kube-proxy applies an endpoint change at once but the
// next one only a second later (its minimum sync period), so the state
// after the first patch is what clients meet for that second. Target
// first, that is the new primary beside the old one (whose address answers
// or refuses at once when its postgres is down); old first, it was a
// Service without endpoints, whose connections went unanswered until
// their connect timeout on real pods (docs/benchmarks.md, kill -9 and pod
// deletion).
func (r *ClusterReconciler) relabel(ctx context.Context, pods map[string]*corev1.Pod, target string) error {
	names := make([]string, 0, len(pods))
	for name := range pods {
		names = append(names, name)
	}
	rank := func(name string) int {
		if name == target {
			return 0
		}
		return 1
	}
	slices.SortFunc(names, func(a, b string) int { return cmp.Or(cmp.Compare(rank(a), rank(b)), cmp.Compare(a, b)) })
	for _, name := range names {
		pod := pods[name]
		want := roleOf(name, target)
		if pod.Labels[build.RoleLabel] == want {
			continue
		}
		before := pod.DeepCopy()
		if pod.Labels == nil {
			pod.Labels = map[string]string{}
		}
		pod.Labels[build.RoleLabel] = want
		if err := r.Client.Patch(ctx, pod, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
			return fmt.Errorf("labelling pod %s %s: %w", name, want, err)
		}
	}
	return nil
}

// execute sends one action to its instance as a command.
func (r *ClusterReconciler) execute(ctx context.Context, c *v1.Cluster, mem plan.Memory, a plan.Action, pods map[string]*corev1.Pod, tlsm *tlsMaterial) error {
	pod := pods[a.Instance]
	if pod == nil {
		return fmt.Errorf("%s: no pod %s", a.Kind, a.Instance)
	}
	if a.Kind == plan.ActionRestart && r.isOutdated(c, a.Instance) {
		return r.recreatePod(ctx, pod)
	}
	var primary *instanceapi.Endpoint
	if a.Primary != "" {
		// Peers reach the primary through the read-write Service, which
		// relabel has already pointed at it.
		primary = &instanceapi.Endpoint{Name: a.Primary, Host: build.ServerName(c), Port: build.PostgresPort}
	}
	r.mu.Lock()
	ack := r.acks[client.ObjectKeyFromObject(c).String()][a.Instance]
	r.mu.Unlock()
	cmd, err := control.Command(a, mem.Epoch, ack, primary)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, r.Timing.RequestTimeout)
	defer cancel()
	if err := r.Instances.Command(rctx, r.instanceFor(c, pod, tlsm), cmd); err != nil {
		return err
	}
	log.FromContext(ctx).Info("action", "action", a.String())
	return nil
}

// publish records the planner's events on the Cluster, each at most once
// every ten minutes.
func (r *ClusterReconciler) publish(ctx context.Context, c *v1.Cluster, ready plan.Ready) {
	logger := log.FromContext(ctx)
	for _, e := range ready.Events {
		key := client.ObjectKeyFromObject(c).String() + " " + e.String()
		if !r.firstIn(key, 10*time.Minute) {
			continue
		}
		kind := corev1.EventTypeNormal
		if e.Warning {
			kind = corev1.EventTypeWarning
		}
		logger.Info("planner", "event", e.Reason, "message", e.Message)
		if e.Reason == plan.ReasonFailover {
			failoversTotal.WithLabelValues(c.Namespace, c.Name).Inc()
		}
		if r.Recorder != nil {
			r.Recorder.Eventf(c, nil, kind, e.Reason, "Plan", "%s", e.Message)
		}
	}
	for _, a := range ready.Actions {
		if a.Kind == plan.ActionHold && r.firstIn(client.ObjectKeyFromObject(c).String()+" hold", 30*time.Second) {
			logger.V(1).Info("planner holds", "reason", a.Reason)
		}
	}
}

// firstIn reports whether key was not seen in the last period, and marks it.
func (r *ClusterReconciler) firstIn(key string, period time.Duration) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if t, ok := r.said[key]; ok && now.Sub(t) < period {
		return false
	}
	if r.said == nil {
		r.said = map[string]time.Time{}
	}
	if len(r.said) > 10000 {
		for k, t := range r.said {
			if now.Sub(t) >= period {
				delete(r.said, k)
			}
		}
	}
	r.said[key] = now
	return true
}
