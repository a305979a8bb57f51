package kube

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/pgward/pgward/api/v1"
)

// +kubebuilder:rbac:groups=postgresql.pgward.io,resources=scheduledbackups,verbs=get;list;watch
// +kubebuilder:rbac:groups=postgresql.pgward.io,resources=scheduledbackups/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=postgresql.pgward.io,resources=scheduledbackups/finalizers,verbs=update

// ScheduledBackupLabel marks the Backups a ScheduledBackup created.
const ScheduledBackupLabel = "pgward.io/scheduled-backup"

// scheduleParser reads CloudNativePG's schedules: six fields, seconds
// first (a five-field crontab line is refused rather than read shifted).
var scheduleParser = cron.NewParser(cron.Second | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule parses a ScheduledBackup's spec.schedule.
func ParseSchedule(s string) (cron.Schedule, error) {
	if f := strings.Fields(s); len(f) == 5 && !strings.HasPrefix(s, "@") {
		return nil, fmt.Errorf("%q has five fields: the schedule has six, seconds first (e.g. \"0 %s\")", s, s)
	}
	sched, err := scheduleParser.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", s, err)
	}
	return sched, nil
}

// ScheduledBackupReconciler creates a Backup at each time of a
// ScheduledBackup's schedule (UTC), and one at once with spec.immediate.
// Times missed while the operator was down are not caught up: the next
// Backup is taken once, at the next reconcile.
type ScheduledBackupReconciler struct {
	Client client.Client
	Now    func() time.Time
}

func (r *ScheduledBackupReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now().UTC()
	}
	return time.Now().UTC()
}

// SetupWithManager registers the reconciler for ScheduledBackups.
func (r *ScheduledBackupReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		// Its own status writes (lastCheckTime changes every time) must not
		// trigger it again: the schedule's next time is a RequeueAfter.
		For(&v1.ScheduledBackup{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: 1, SkipNameValidation: new(true)}).
		Named("scheduledbackup").
		Complete(r)
}

// Reconcile implements reconcile.Reconciler.
func (r *ScheduledBackupReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var sb v1.ScheduledBackup
	if err := r.Client.Get(ctx, req.NamespacedName, &sb); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if !sb.DeletionTimestamp.IsZero() || (sb.Spec.Suspend != nil && *sb.Spec.Suspend) {
		return reconcile.Result{}, nil
	}
	sched, err := ParseSchedule(sb.Spec.Schedule)
	if err != nil {
		// The webhook refuses it; nothing to do until the spec changes.
		return reconcile.Result{}, nil //nolint:nilerr // retrying cannot fix a spec
	}
	now := r.now()
	before := sb.DeepCopy()
	sb.Status.LastCheckTime = &metav1.Time{Time: now.Truncate(time.Second)}
	var due bool
	if sb.Status.LastScheduleTime == nil && sb.Spec.Immediate != nil && *sb.Spec.Immediate {
		due = true
	} else {
		from := sb.CreationTimestamp.Time
		if sb.Status.LastScheduleTime != nil {
			from = sb.Status.LastScheduleTime.Time
		}
		due = !sched.Next(from).After(now)
	}
	if due {
		if err := r.createBackup(ctx, &sb, now); err != nil {
			return reconcile.Result{}, err
		}
		// From now, not from the missed time: one Backup for any number
		// of missed times.
		sb.Status.LastScheduleTime = &metav1.Time{Time: now.Truncate(time.Second)}
	}
	next := sched.Next(now)
	sb.Status.NextScheduleTime = &metav1.Time{Time: next}
	if err := r.Client.Status().Patch(ctx, &sb, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return reconcile.Result{}, fmt.Errorf("writing status of scheduled backup %s: %w", sb.Name, err)
	}
	return reconcile.Result{RequeueAfter: next.Sub(now)}, nil
}

// createBackup creates the Backup of time t, named <scheduled>-<t>; one
// that exists already (a status write lost before) counts as created.
func (r *ScheduledBackupReconciler) createBackup(ctx context.Context, sb *v1.ScheduledBackup, t time.Time) error {
	b := &v1.Backup{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: sb.Namespace,
			Name:      sb.Name + "-" + t.Format("20060102150405"),
			Labels:    map[string]string{ScheduledBackupLabel: sb.Name},
		},
		Spec: v1.BackupSpec{Cluster: sb.Spec.Cluster, Method: sb.Spec.Method, Target: sb.Spec.Target, Online: sb.Spec.Online},
	}
	switch sb.Spec.BackupOwnerReference {
	case v1.BackupOwnerSelf:
		if err := controllerutil.SetControllerReference(sb, b, r.Client.Scheme()); err != nil {
			return fmt.Errorf("owning backup %s: %w", b.Name, err)
		}
	case v1.BackupOwnerCluster:
		var c v1.Cluster
		if err := r.Client.Get(ctx, types.NamespacedName{Namespace: sb.Namespace, Name: sb.Spec.Cluster.Name}, &c); err != nil {
			return fmt.Errorf("reading cluster %s to own backup %s: %w", sb.Spec.Cluster.Name, b.Name, err)
		}
		if err := controllerutil.SetOwnerReference(&c, b, r.Client.Scheme()); err != nil {
			return fmt.Errorf("owning backup %s: %w", b.Name, err)
		}
	}
	if err := r.Client.Create(ctx, b); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating backup %s: %w", b.Name, err)
	}
	return nil
}

// ValidateScheduledBackup is the admission check of a ScheduledBackup.
func ValidateScheduledBackup(sb *v1.ScheduledBackup) field.ErrorList {
	spec := field.NewPath("spec")
	var errs field.ErrorList
	if _, err := ParseSchedule(sb.Spec.Schedule); err != nil {
		errs = append(errs, field.Invalid(spec.Child("schedule"), sb.Spec.Schedule, err.Error()))
	}
	errs = append(errs, validateBackupTarget(sb.Spec.Cluster, sb.Spec.Method, spec)...)
	errs = append(errs, validateSnapshotOptions(sb.Spec.Method, sb.Spec.Target, sb.Spec.Online, spec)...)
	if n := len(sb.Name) + len("-20060102150405"); n > 253 {
		errs = append(errs, field.TooLong(field.NewPath("metadata", "name"), sb.Name, 253-len("-20060102150405")))
	}
	return errs
}

// ValidateBackup is the admission check of a Backup.
func ValidateBackup(b *v1.Backup) field.ErrorList {
	spec := field.NewPath("spec")
	errs := validateBackupTarget(b.Spec.Cluster, b.Spec.Method, spec)
	return append(errs, validateSnapshotOptions(b.Spec.Method, b.Spec.Target, b.Spec.Online, spec)...)
}

// validateSnapshotOptions checks target and online, which only a
// volumeSnapshot backup takes: a barmanObjectStore backup always runs on
// the primary, online (accepted and ignored otherwise).
func validateSnapshotOptions(method, target string, online *bool, spec *field.Path) field.ErrorList {
	var errs field.ErrorList
	snap := method == v1.BackupMethodVolumeSnapshot
	switch {
	case target != "" && !snap:
		errs = append(errs, field.Forbidden(spec.Child("target"), "applies to method volumeSnapshot only: a barmanObjectStore backup runs on the primary"))
	case target != "" && target != v1.BackupTargetPrimary && target != v1.BackupTargetPreferStandby:
		errs = append(errs, field.NotSupported(spec.Child("target"), target, []string{v1.BackupTargetPrimary, v1.BackupTargetPreferStandby}))
	}
	switch {
	case online != nil && !snap:
		errs = append(errs, field.Forbidden(spec.Child("online"), "applies to method volumeSnapshot only: a barmanObjectStore backup is always online"))
	case online != nil && *online:
		errs = append(errs, field.Forbidden(spec.Child("online"), "pgward takes cold volume snapshots only: the instance is stopped cleanly while its volumes are snapshotted"))
	}
	return errs
}

func validateBackupTarget(c v1.LocalObjectReference, method string, spec *field.Path) field.ErrorList {
	var errs field.ErrorList
	if c.Name == "" {
		errs = append(errs, field.Required(spec.Child("cluster", "name"), "the Cluster to back up"))
	}
	if method != "" && method != v1.BackupMethodBarmanObjectStore && method != v1.BackupMethodVolumeSnapshot {
		errs = append(errs, field.NotSupported(spec.Child("method"), method, []string{v1.BackupMethodBarmanObjectStore, v1.BackupMethodVolumeSnapshot}))
	}
	return errs
}
