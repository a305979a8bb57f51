package kube

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/kube/build"
)

// +kubebuilder:rbac:groups=postgresql.pgward.io,resources=backups,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=postgresql.pgward.io,resources=backups/status,verbs=get;update;patch

// BackupClient starts and follows base backups on instance managers.
type BackupClient interface {
	Status(ctx context.Context, in Instance, ack uint64) (*instanceapi.Status, error)
	// StartBackup asks the instance (the primary) for a full base backup
	// and returns the run as it started; its status then shows the run.
	StartBackup(ctx context.Context, in Instance) (*instanceapi.BackupRun, error)
	// Backups lists the backups in the cluster's object store.
	Backups(ctx context.Context, in Instance) (*instanceapi.BackupList, error)
}

var _ BackupClient = (*MTLSInstances)(nil)

// StartBackup implements BackupClient.
func (m *MTLSInstances) StartBackup(ctx context.Context, in Instance) (*instanceapi.BackupRun, error) {
	c, err := m.client(in)
	if err != nil {
		return nil, err
	}
	run, err := c.StartBackup(ctx, in.Addr)
	if err != nil {
		return nil, fmt.Errorf("starting a backup on %s: %w", in.Name, err)
	}
	return run, nil
}

// Backups implements BackupClient.
func (m *MTLSInstances) Backups(ctx context.Context, in Instance) (*instanceapi.BackupList, error) {
	c, err := m.client(in)
	if err != nil {
		return nil, err
	}
	l, err := c.Backups(ctx, in.Addr)
	if err != nil {
		return nil, fmt.Errorf("listing backups through %s: %w", in.Name, err)
	}
	return l, nil
}

// BackupReconciler takes Backups: it asks the Cluster's primary for a base
// backup (the instance manager runs pgBackRest, as `pgward local backup`
// has it do) and follows the run in the instance's status until it ends.
// A Backup that ended is never looked at again.
type BackupReconciler struct {
	Client client.Client
	// APIReader reads the secrets the operator authenticates with.
	APIReader client.Reader
	Instances BackupClient
	// Poll is how often a running backup is looked at (default 5 s).
	Poll time.Duration
	Now  func() time.Time
	// Recorder publishes volume snapshot backups' events (optional).
	Recorder events.EventRecorder
}

func (r *BackupReconciler) poll() time.Duration {
	if r.Poll > 0 {
		return r.Poll
	}
	return 5 * time.Second
}

func (r *BackupReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now().UTC()
	}
	return time.Now().UTC()
}

// SetupWithManager registers the reconciler for Backups.
func (r *BackupReconciler) SetupWithManager(mgr ctrl.Manager, workers int) error {
	return ctrl.NewControllerManagedBy(mgr).
		// Status writes are its own; progress is polled (Poll).
		For(&v1.Backup{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: workers, SkipNameValidation: new(true)}).
		Named("backup").
		Complete(r)
}

// Reconcile implements reconcile.Reconciler.
func (r *BackupReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var b v1.Backup
	if err := r.Client.Get(ctx, req.NamespacedName, &b); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if controllerutil.ContainsFinalizer(&b, unfenceFinalizer) && (!b.DeletionTimestamp.IsZero() || b.Status.Phase == v1.BackupPhaseCompleted || b.Status.Phase == v1.BackupPhaseFailed) {
		// A volume snapshot Backup deleted (or ended) while its instance
		// is fenced: the fence goes first (volumesnapshot.go).
		return reconcile.Result{}, r.releaseFence(ctx, &b)
	}
	switch b.Status.Phase {
	case v1.BackupPhaseCompleted, v1.BackupPhaseFailed:
		return reconcile.Result{}, nil
	}
	if m := b.Spec.Method; m != "" && m != v1.BackupMethodBarmanObjectStore && m != v1.BackupMethodVolumeSnapshot {
		return r.fail(ctx, &b, fmt.Sprintf("method %q is not supported: pgward backs up to the cluster's barmanObjectStore only", m))
	}
	var c v1.Cluster
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: b.Namespace, Name: b.Spec.Cluster.Name}, &c); err != nil {
		if apierrors.IsNotFound(err) {
			// It may be created next: wait, and say so.
			return r.pending(ctx, &b, fmt.Sprintf("cluster %s does not exist", b.Spec.Cluster.Name))
		}
		return reconcile.Result{}, fmt.Errorf("reading cluster %s: %w", b.Spec.Cluster.Name, err)
	}
	if b.Spec.Method == v1.BackupMethodVolumeSnapshot {
		return r.snapshotBackup(ctx, &b, &c)
	}
	if c.Spec.Backup == nil || c.Spec.Backup.BarmanObjectStore == nil {
		return r.fail(ctx, &b, fmt.Sprintf("cluster %s has no spec.backup.barmanObjectStore", c.Name))
	}
	tlsm, err := r.clientTLS(ctx, &c)
	if err != nil {
		return r.pending(ctx, &b, err.Error())
	}
	if b.Status.Phase == v1.BackupPhaseRunning {
		return r.follow(ctx, &b, &c, tlsm)
	}
	return r.start(ctx, &b, &c, tlsm)
}

// start asks the current primary for the backup. Anything in the way (no
// primary yet, another backup running, the instance unreachable) keeps
// the Backup pending and is retried.
func (r *BackupReconciler) start(ctx context.Context, b *v1.Backup, c *v1.Cluster, tlsm *ClientTLS) (reconcile.Result, error) {
	primary := c.Status.CurrentPrimary
	if primary == "" {
		return r.pending(ctx, b, fmt.Sprintf("cluster %s has no primary yet", c.Name))
	}
	// One run at a time per cluster, as the operator sees them: an
	// instance reports only its latest run, so a Backup still Running
	// must see its run end before another starts, or it would find the
	// next one in its place and never learn how its own ended.
	if other, err := r.runningBackup(ctx, b, c); err != nil || other != "" {
		if err != nil {
			return reconcile.Result{}, err
		}
		return r.pending(ctx, b, fmt.Sprintf("backup %s of cluster %s is running", other, c.Name))
	}
	in, err := r.instance(ctx, c, primary, tlsm)
	if err != nil {
		return r.pending(ctx, b, err.Error())
	}
	run, err := r.Instances.StartBackup(ctx, in)
	if err != nil {
		return r.pending(ctx, b, err.Error())
	}
	// The run's own start time, on the instance's clock, identifies it
	// from now on: the instance manager reports only its latest run. (A
	// time read on the operator's clock, or a status read that may time
	// out under load, could fall in another second and fail the backup.)
	started := run.Started
	before := b.DeepCopy()
	b.Status.Phase = v1.BackupPhaseRunning
	b.Status.InstanceID = &v1.InstanceID{PodName: primary}
	b.Status.StartedAt = &metav1.Time{Time: started.Truncate(time.Second)}
	b.Status.Error = ""
	return reconcile.Result{RequeueAfter: r.poll()}, r.patchStatus(ctx, b, before)
}

// runningBackup names another Backup of c that is Running, read from the
// API server rather than the cache, which may not show a run that just
// started.
func (r *BackupReconciler) runningBackup(ctx context.Context, b *v1.Backup, c *v1.Cluster) (string, error) {
	var l v1.BackupList
	if err := r.APIReader.List(ctx, &l, client.InNamespace(c.Namespace)); err != nil {
		return "", fmt.Errorf("listing the backups of %s: %w", c.Name, err)
	}
	for _, o := range l.Items {
		if o.Name != b.Name && o.Spec.Cluster.Name == c.Name && o.Status.Phase == v1.BackupPhaseRunning {
			return o.Name, nil
		}
	}
	return "", nil
}

// follow reads the run's progress from the instance that took it.
func (r *BackupReconciler) follow(ctx context.Context, b *v1.Backup, c *v1.Cluster, tlsm *ClientTLS) (reconcile.Result, error) {
	var pod string
	if b.Status.InstanceID != nil {
		pod = b.Status.InstanceID.PodName
	}
	in, err := r.instance(ctx, c, pod, tlsm)
	if apierrors.IsNotFound(err) {
		return r.fail(ctx, b, fmt.Sprintf("instance %s is gone: the backup was interrupted", pod))
	}
	if err != nil {
		return reconcile.Result{RequeueAfter: r.poll()}, nil
	}
	st, err := r.Instances.Status(ctx, in, 0)
	if err != nil {
		// Unreachable for now; the run goes on in the instance.
		return reconcile.Result{RequeueAfter: r.poll()}, nil
	}
	run := st.Backup
	if run == nil || !sameSecond(run.Started, b.Status.StartedAt.Time) {
		return r.fail(ctx, b, fmt.Sprintf("instance %s no longer reports this backup (it restarted, or another backup replaced it in its status)", pod))
	}
	switch run.Phase {
	case instanceapi.BackupFailed:
		return r.finish(ctx, b, run, v1.BackupPhaseFailed, run.Error, nil)
	case instanceapi.BackupCompleted:
		l, err := r.Instances.Backups(ctx, in)
		if err != nil {
			return reconcile.Result{RequeueAfter: r.poll()}, nil
		}
		for i := range l.Backups {
			if l.Backups[i].Label == run.Label {
				return r.finish(ctx, b, run, v1.BackupPhaseCompleted, "", &l.Backups[i])
			}
		}
		return r.finish(ctx, b, run, v1.BackupPhaseFailed, fmt.Sprintf("backup %s completed but the object store does not list it", run.Label), nil)
	}
	return reconcile.Result{RequeueAfter: r.poll()}, nil
}

func sameSecond(a, b time.Time) bool {
	return a.Truncate(time.Second).Equal(b.Truncate(time.Second))
}

func (r *BackupReconciler) finish(ctx context.Context, b *v1.Backup, run *instanceapi.BackupRun, phase, msg string, info *instanceapi.BackupInfo) (reconcile.Result, error) {
	before := b.DeepCopy()
	b.Status.Phase, b.Status.Error = phase, msg
	stopped := r.now()
	if run.Stopped != nil {
		stopped = *run.Stopped
	}
	b.Status.StoppedAt = &metav1.Time{Time: stopped.Truncate(time.Second)}
	if info != nil {
		b.Status.BackupID, b.Status.BeginLSN, b.Status.EndLSN = info.Label, info.StartLSN, info.StopLSN
	}
	return reconcile.Result{}, r.patchStatus(ctx, b, before)
}

func (r *BackupReconciler) pending(ctx context.Context, b *v1.Backup, why string) (reconcile.Result, error) {
	before := b.DeepCopy()
	b.Status.Phase, b.Status.Error = v1.BackupPhasePending, why
	return reconcile.Result{RequeueAfter: r.poll()}, r.patchStatus(ctx, b, before)
}

func (r *BackupReconciler) fail(ctx context.Context, b *v1.Backup, why string) (reconcile.Result, error) {
	before := b.DeepCopy()
	b.Status.Phase, b.Status.Error = v1.BackupPhaseFailed, why
	if b.Status.StoppedAt == nil {
		b.Status.StoppedAt = &metav1.Time{Time: r.now().Truncate(time.Second)}
	}
	return reconcile.Result{}, r.patchStatus(ctx, b, before)
}

func (r *BackupReconciler) patchStatus(ctx context.Context, b, before *v1.Backup) error {
	if err := r.Client.Status().Patch(ctx, b, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("writing status of backup %s: %w", b.Name, err)
	}
	return nil
}

// instance addresses the named pod of c. A pod that does not exist is a
// NotFound error.
func (r *BackupReconciler) instance(ctx context.Context, c *v1.Cluster, name string, tlsm *ClientTLS) (Instance, error) {
	var pod corev1.Pod
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: name}, &pod); err != nil {
		return Instance{}, err
	}
	if !metav1.IsControlledBy(&pod, c) {
		return Instance{}, fmt.Errorf("pod %s is not an instance of cluster %s", name, c.Name)
	}
	in := Instance{
		Cluster: client.ObjectKeyFromObject(c).String(), Name: name,
		ServerName: build.ServerName(c), TLS: tlsm,
	}
	if pod.Status.PodIP == "" {
		return in, fmt.Errorf("instance %s: %w", name, errNoAddress)
	}
	in.Addr = net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(build.StatusPort))
	return in, nil
}

// clientTLS is the operator's identity towards c's instances: its
// controller certificate, and the CA that signed their server certificate.
func (r *BackupReconciler) clientTLS(ctx context.Context, c *v1.Cluster) (*ClientTLS, error) {
	n := build.Secrets(c)
	var ctl, ca corev1.Secret
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: n.Controller}, &ctl); err != nil {
		return nil, fmt.Errorf("the operator's certificate for cluster %s: %w", c.Name, err)
	}
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: n.ServerCA}, &ca); err != nil {
		return nil, fmt.Errorf("the server CA of cluster %s: %w", c.Name, err)
	}
	return &ClientTLS{
		ServerCA: ca.Data[build.KeyCACert], ClientCert: ctl.Data[build.KeyTLSCert], ClientKey: ctl.Data[build.KeyTLSKey],
	}, nil
}
