package kube

import (
	"context"
	"reflect"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	v1 "github.com/pgward/pgward/api/v1"
)

// +kubebuilder:webhook:path=/validate-postgresql-pgward-io-v1-backup,mutating=false,failurePolicy=fail,sideEffects=None,groups=postgresql.pgward.io,resources=backups,verbs=create;update,versions=v1,name=vbackup.pgward.io,admissionReviewVersions=v1
// +kubebuilder:webhook:path=/validate-postgresql-pgward-io-v1-scheduledbackup,mutating=false,failurePolicy=fail,sideEffects=None,groups=postgresql.pgward.io,resources=scheduledbackups,verbs=create;update,versions=v1,name=vscheduledbackup.pgward.io,admissionReviewVersions=v1

// BackupWebhook validates Backups: a Cluster named, a method pgward
// implements, and a spec that never changes once created (the status
// describes the backup that spec asked for).
type BackupWebhook struct{}

// ScheduledBackupWebhook validates ScheduledBackups: a six-field schedule,
// a Cluster named and a method pgward implements.
type ScheduledBackupWebhook struct{}

var (
	_ admission.Validator[*v1.Backup]          = BackupWebhook{}
	_ admission.Validator[*v1.ScheduledBackup] = ScheduledBackupWebhook{}
)

// SetupBackupWebhooksWithManager serves both validating webhooks.
func SetupBackupWebhooksWithManager(mgr ctrl.Manager) error {
	if err := ctrl.NewWebhookManagedBy(mgr, &v1.Backup{}).WithValidator(BackupWebhook{}).Complete(); err != nil {
		return err
	}
	return ctrl.NewWebhookManagedBy(mgr, &v1.ScheduledBackup{}).WithValidator(ScheduledBackupWebhook{}).Complete()
}

// ValidateCreate implements admission.Validator.
func (BackupWebhook) ValidateCreate(_ context.Context, b *v1.Backup) (admission.Warnings, error) {
	return nil, invalidKind(v1.BackupKind, b.Name, ValidateBackup(b))
}

// ValidateUpdate implements admission.Validator.
func (BackupWebhook) ValidateUpdate(_ context.Context, o, n *v1.Backup) (admission.Warnings, error) {
	errs := ValidateBackup(n)
	if !reflect.DeepEqual(o.Spec, n.Spec) {
		errs = append(errs, field.Forbidden(field.NewPath("spec"), "a Backup's spec cannot change: create another Backup"))
	}
	return nil, invalidKind(v1.BackupKind, n.Name, errs)
}

// ValidateDelete implements admission.Validator.
func (BackupWebhook) ValidateDelete(context.Context, *v1.Backup) (admission.Warnings, error) {
	return nil, nil
}

// ValidateCreate implements admission.Validator.
func (ScheduledBackupWebhook) ValidateCreate(_ context.Context, sb *v1.ScheduledBackup) (admission.Warnings, error) {
	return nil, invalidKind(v1.ScheduledBackupKind, sb.Name, ValidateScheduledBackup(sb))
}

// ValidateUpdate implements admission.Validator.
func (ScheduledBackupWebhook) ValidateUpdate(_ context.Context, _, n *v1.ScheduledBackup) (admission.Warnings, error) {
	return nil, invalidKind(v1.ScheduledBackupKind, n.Name, ValidateScheduledBackup(n))
}

// ValidateDelete implements admission.Validator.
func (ScheduledBackupWebhook) ValidateDelete(context.Context, *v1.ScheduledBackup) (admission.Warnings, error) {
	return nil, nil
}

func invalidKind(kind, name string, errs field.ErrorList) error {
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(v1.SchemeGroupVersion.WithKind(kind).GroupKind(), name, errs)
}
