package kube

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube/build"
)

// The operator's permissions, generated into config/rbac/role.yaml. Each
// is needed by the code beside it: the Cluster and its status; the objects
// a Cluster owns; finalizers, because setting blockOwnerDeletion on an
// owner reference requires update on the owner's finalizers; events.
//
// +kubebuilder:rbac:groups=postgresql.pgward.io,resources=clusters,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=postgresql.pgward.io,resources=clusters/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=postgresql.pgward.io,resources=clusters/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets;services;persistentvolumeclaims;serviceaccounts,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles;rolebindings,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// ClusterReconciler reconciles Clusters. Set the exported fields, then use
// SetupWithManager (or call Reconcile directly, as the tests do).
type ClusterReconciler struct {
	// Client reads (from the manager's cache of pgward's own objects) and
	// writes.
	Client client.Client
	// APIReader reads directly from the API server: secrets the user names
	// in a spec carry no pgward label and so are not in the cache.
	APIReader client.Reader
	// Instances reaches the instance managers.
	Instances InstanceClient
	// Recorder publishes the planner's events on the Cluster (optional).
	Recorder events.EventRecorder
	// Options shape the objects (image, namespace of the operator, ...).
	Options build.Options
	// Timing drives observation and the planner.
	Timing Timing
	// Now and Rand default to the wall clock and crypto/rand; tests pin them.
	Now  func() time.Time
	Rand io.Reader

	mu   sync.Mutex
	acks map[string]map[string]uint64 // cluster -> instance -> last RequestID
	mems map[string]clusterMemory     // cluster -> planner memory between reconciles
	said map[string]time.Time         // deduplicates repeated events and logs
	// outdated: cluster -> instances whose pods run outdated images (images.go)
	outdated map[string]map[string]bool
	// imageErrs: cluster -> why its catalog entry does not resolve (images.go)
	imageErrs map[string]string
	// volumeSizes: cluster -> its PVCs' sizes as last seen (resize.go)
	volumeSizes map[string][]claimSize
	// leases is what the operator last read of each cluster's primary
	// Lease, and since when (lease.go).
	leases map[string]leaseView
	// selfFences is the self-fencing time each instance manager last
	// reported (ha.go:primarySelfFence).
	selfFences map[string]map[string]time.Duration
	// wakeups watches the instances and enqueues their Cluster when one
	// changes (instancewatch.go); nil when Instances cannot watch.
	wakeups *wakeups
	// leaves: cluster -> secret -> its certificate parsed and checked
	// (pki.go:verifiedLeaf).
	leaves map[string]map[string]*leafMemo
	// pace stretches the periodic checks under load (pace.go); nil when
	// the reconciler is driven by hand (tests).
	pace *pacer
	// indexed: Client reads from a cache indexed by clusterIndex
	// (SetupWithManager).
	indexed bool
	// powerFenced is when each pod ("namespace/name") was deleted by the
	// power fence (lease.go).
	powerFenced map[string]time.Time
	// manifests: cluster -> instance -> digest of the manifest its config
	// Secret was last written with (reload.go).
	manifests map[string]map[string]string
	// unanswered: cluster -> instance -> did not answer the last status
	// request (Timing.RetryTimeout).
	unanswered map[string]map[string]bool
	// leaseEvents: Lease ("namespace/name") -> the version the watch
	// last delivered, and when (lease.go:recordLease).
	leaseEvents map[string]leaseEvent
}

var _ reconcile.Reconciler = (*ClusterReconciler)(nil)

// Status phases.
const (
	PhaseInvalid     = "Invalid spec"
	PhaseError       = "Reconcile error"
	PhaseSettingUp   = "Setting up primary"
	PhaseWaiting     = "Waiting for instances"
	PhaseHealthy     = "Cluster in healthy state"
	PhaseFailingOver = "Failing over"
	PhaseDegraded    = "Degraded"
)

// ConditionReady is the condition type that sums the cluster up.
const ConditionReady = "Ready"

// Reconcile brings one Cluster's objects to the desired state, observes its
// instances, runs the planner and records the outcome in the status.
func (r *ClusterReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	logger := log.FromContext(ctx)
	start := time.Now()
	var c v1.Cluster
	if err := r.Client.Get(ctx, req.NamespacedName, &c); err != nil {
		if apierrors.IsNotFound(err) {
			// Its objects go with it (owner references); only our
			// in-memory state for it remains to drop.
			r.forget(req.String())
			forgetMetrics(req.NamespacedName)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, fmt.Errorf("reading cluster %s: %w", req, err)
	}
	if !c.DeletionTimestamp.IsZero() {
		return reconcile.Result{}, nil
	}
	desired := c.DeepCopy()
	v1.SetDefaults(desired)
	if errs := ValidateForKubernetes(desired); len(errs) > 0 {
		// The webhook refuses such a spec; one that got in anyway (webhook
		// bypassed, or written before it was installed) is reported, not
		// retried: nothing changes until the spec does.
		return reconcile.Result{}, r.setCondition(ctx, &c, PhaseInvalid, metav1.ConditionFalse, "InvalidSpec", errs.ToAggregate().Error())
	}
	res, err := r.reconcile(ctx, &c, desired)
	if r.pace != nil {
		r.pace.observe(req.String(), time.Since(start))
		if res.RequeueAfter >= r.Timing.CheckInterval {
			d, moved := r.pace.interval(res.RequeueAfter)
			if moved {
				logger.Info("periodic checks stretched: more Clusters than the workers can check every interval", "interval", d.String(), "base", res.RequeueAfter.String())
			}
			res.RequeueAfter = d
		}
	}
	logger.V(1).Info("reconciled", "duration", time.Since(start).Seconds(), "requeueAfter", res.RequeueAfter.Seconds(), "error", err != nil)
	if err != nil {
		if apierrors.IsConflict(err) {
			// Someone (another reconcile, a user) changed an object since
			// it was read: start over from the new state.
			return reconcile.Result{Requeue: true}, nil //nolint:staticcheck // an immediate, rate-limited retry is what a conflict needs
		}
		if serr := r.setCondition(ctx, &c, PhaseError, metav1.ConditionFalse, "ReconcileError", err.Error()); serr != nil {
			err = errors.Join(err, serr)
		}
		return reconcile.Result{}, err
	}
	return res, nil
}

// ValidateForKubernetes is v1's validation plus what only Kubernetes needs:
// a volume size for the PVCs.
func ValidateForKubernetes(c *v1.Cluster) field.ErrorList {
	errs := c.Validate()
	if c.Spec.StorageConfiguration.Size == "" {
		errs = append(errs, field.Required(field.NewPath("spec", "storage", "size"),
			"each instance needs a persistent volume on Kubernetes, e.g. 1Gi"))
	}
	errs = append(errs, tablespacesForKubernetes(c)...)
	errs = append(errs, walStorageForKubernetes(c)...)
	return errs
}

func (r *ClusterReconciler) reconcile(ctx context.Context, c, desired *v1.Cluster) (reconcile.Result, error) {
	if err := r.resolveRecoveryBackup(ctx, desired); err != nil {
		return reconcile.Result{}, err
	}
	if err := r.resolvePodSelectors(ctx, desired); err != nil {
		return reconcile.Result{}, err
	}
	tlsm, err := r.ensurePKI(ctx, desired)
	if err != nil {
		return reconcile.Result{}, fmt.Errorf("certificates: %w", err)
	}
	if err := r.ensureCredentials(ctx, desired, tlsm); err != nil {
		return reconcile.Result{}, fmt.Errorf("credentials: %w", err)
	}
	if err := r.ensureBackupSecrets(ctx, desired); err != nil {
		return reconcile.Result{}, fmt.Errorf("backup: %w", err)
	}
	mon, err := r.ensureMonitoring(ctx, c, desired)
	if err != nil {
		return reconcile.Result{}, fmt.Errorf("monitoring: %w", err)
	}
	mem, err := r.memory(ctx, c)
	if err != nil {
		return reconcile.Result{}, err
	}
	if err := r.ensureClusterObjects(ctx, desired, targetOf(desired, mem.Latest())); err != nil {
		return reconcile.Result{}, err
	}
	pods, err := r.ensureInstances(ctx, desired, targetOf(desired, mem.Latest()), mon)
	if err != nil {
		return reconcile.Result{}, err
	}
	return r.drive(ctx, c, desired, mem, pods, tlsm)
}

// ensureClusterObjects makes the per-cluster objects: Services, RBAC,
// PodDisruptionBudgets and (when asked for) NetworkPolicies, deleting those
// the spec no longer calls for. primary is the planner's target primary,
// which the read-write Service selects.
func (r *ClusterReconciler) ensureClusterObjects(ctx context.Context, c *v1.Cluster, primary string) error {
	for _, s := range build.Services(c, primary) {
		if _, err := ensure(ctx, r.Client, c, s, mutateService); err != nil {
			return err
		}
	}
	if err := r.ensureManagedServices(ctx, c); err != nil {
		return err
	}
	if _, err := ensure(ctx, r.Client, c, build.ServiceAccount(c), func(cur, want *corev1.ServiceAccount) {
		cur.AutomountServiceAccountToken = want.AutomountServiceAccountToken
	}); err != nil {
		return err
	}
	if _, err := ensure(ctx, r.Client, c, build.Role(c), func(cur, want *rbacv1.Role) {
		cur.Rules = want.Rules
	}); err != nil {
		return err
	}
	if _, err := ensure(ctx, r.Client, c, build.RoleBinding(c), func(cur, want *rbacv1.RoleBinding) {
		cur.Subjects = want.Subjects // the roleRef cannot change, and never does
	}); err != nil {
		return err
	}
	// Before the budget it is replaced by, so that the name is free when
	// another Cluster's primary budget needs it.
	if err := deleteOwned(ctx, r.Client, c, &policyv1.PodDisruptionBudget{ObjectMeta: objectKey(c, build.LegacyReplicaPDBName(c))}); err != nil {
		return err
	}
	pdbs := build.PodDisruptionBudgets(c)
	for _, p := range pdbs {
		if _, err := ensure(ctx, r.Client, c, p, func(cur, want *policyv1.PodDisruptionBudget) {
			cur.Spec = want.Spec
		}); err != nil {
			return err
		}
	}
	if len(pdbs) == 1 {
		if err := deleteOwned(ctx, r.Client, c, &policyv1.PodDisruptionBudget{ObjectMeta: objectKey(c, build.ReplicaPDBName(c))}); err != nil {
			return err
		}
	}
	if len(pdbs) == 0 { // spec.enablePDB: false
		if err := deleteOwned(ctx, r.Client, c, &policyv1.PodDisruptionBudget{ObjectMeta: objectKey(c, build.PrimaryPDBName(c))}); err != nil {
			return err
		}
		if err := deleteOwned(ctx, r.Client, c, &policyv1.PodDisruptionBudget{ObjectMeta: objectKey(c, build.ReplicaPDBName(c))}); err != nil {
			return err
		}
	}
	nps := build.NetworkPolicies(c, r.Options)
	for _, np := range nps {
		if _, err := ensure(ctx, r.Client, c, np, func(cur, want *networkingv1.NetworkPolicy) {
			cur.Spec = want.Spec
		}); err != nil {
			return err
		}
	}
	if len(nps) == 0 {
		for _, name := range []string{build.PostgresPolicyName(c), build.StatusPolicyName(c), build.MetricsPolicyName(c)} {
			if err := deleteOwned(ctx, r.Client, c, &networkingv1.NetworkPolicy{ObjectMeta: objectKey(c, name)}); err != nil {
				return err
			}
		}
	}
	return nil
}

// mutateService sets what pgward manages of a Service, leaving what the API
// server allocates (cluster IPs, defaults) alone.
func mutateService(cur, want *corev1.Service) {
	cur.Spec.Selector = want.Spec.Selector
	cur.Spec.Type = want.Spec.Type
	if !servicePortsEqual(cur.Spec.Ports, want.Spec.Ports) {
		cur.Spec.Ports = want.Spec.Ports
	}
}

func servicePortsEqual(a, b []corev1.ServicePort) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || a[i].Port != b[i].Port || a[i].Protocol != b[i].Protocol || a[i].TargetPort != b[i].TargetPort {
			return false
		}
	}
	return true
}

// objectKey is the metadata naming an object of c's namespace.
func objectKey(c *v1.Cluster, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: c.Namespace, Name: name}
}

// now is the reconciler's clock in UTC without a monotonic reading, so that
// times survive the round trip through the status unchanged.
func (r *ClusterReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now().UTC().Round(0)
	}
	return time.Now().UTC().Round(0)
}

// clock is the reconciler's clock for the fencing argument (ha.go,
// lease.go): Go's monotonic reading kept, so that no step of the wall clock
// can shorten an interval measured between two of its readings (when the
// primary last answered or renewed, and now). Those intervals never span
// two processes: a restarted operator or a new leader trusts no stored
// time (control.Resume). Times it stamps lose the monotonic reading when
// written to the status, where nothing compares them. Tests pin it
// through Now, as now.
func (r *ClusterReconciler) clock() time.Time {
	if r.Now != nil {
		return r.Now().UTC().Round(0)
	}
	return time.Now()
}

func (r *ClusterReconciler) rand() io.Reader {
	if r.Rand != nil {
		return r.Rand
	}
	return rand.Reader
}

// forget drops what the reconciler remembers of a deleted cluster.
func (r *ClusterReconciler) forget(key string) {
	r.mu.Lock()
	delete(r.acks, key)
	delete(r.mems, key)
	delete(r.outdated, key)
	delete(r.imageErrs, key)
	delete(r.volumeSizes, key)
	delete(r.leases, key)
	delete(r.selfFences, key)
	delete(r.manifests, key)
	delete(r.unanswered, key)
	delete(r.leaves, key)
	r.mu.Unlock()
	if r.pace != nil {
		r.pace.forget(key)
	}
	if r.wakeups != nil {
		if ns, name, ok := strings.Cut(key, "/"); ok {
			r.wakeups.forget(types.NamespacedName{Namespace: ns, Name: name})
		}
	}
	if f, ok := r.Instances.(interface{ Forget(string) }); ok {
		f.Forget(key)
	}
}
