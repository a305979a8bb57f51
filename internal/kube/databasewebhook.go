package kube

import (
	"context"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	v1 "github.com/pgward/pgward/api/v1"
)

// +kubebuilder:webhook:path=/validate-postgresql-pgward-io-v1-database,mutating=false,failurePolicy=fail,sideEffects=None,groups=postgresql.pgward.io,resources=databases,verbs=create;update,versions=v1,name=vdatabase.pgward.io,admissionReviewVersions=v1

// DatabaseWebhook refuses a Database whose spec pgward would refuse (every
// value that reaches SQL, the options PostgreSQL 15 lacks, the fields not
// supported yet), by field. What depends on its Cluster (its application
// database) the operator checks and reports in the status: the Cluster may
// not exist yet.
type DatabaseWebhook struct{}

var _ admission.Validator[*v1.Database] = DatabaseWebhook{}

// SetupDatabaseWebhookWithManager serves the webhook.
func SetupDatabaseWebhookWithManager(mgr ctrl.Manager) error {
	return ctrl.NewWebhookManagedBy(mgr, &v1.Database{}).WithValidator(DatabaseWebhook{}).Complete()
}

func validateDatabaseObject(d *v1.Database) field.ErrorList {
	var errs field.ErrorList
	if len(d.Name) > 0 {
		for _, m := range validation.IsDNS1123Subdomain(d.Name) {
			errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), d.Name, m))
		}
	}
	return append(errs, d.Spec.Validate(field.NewPath("spec"))...)
}

// ValidateCreate implements admission.Validator.
func (DatabaseWebhook) ValidateCreate(_ context.Context, d *v1.Database) (admission.Warnings, error) {
	return nil, invalidKind(v1.DatabaseKind, d.Name, validateDatabaseObject(d))
}

// ValidateUpdate implements admission.Validator. The database's name
// cannot change (the CRD says so too): a new name would be a new database
// and the old one left behind.
func (DatabaseWebhook) ValidateUpdate(_ context.Context, o, n *v1.Database) (admission.Warnings, error) {
	errs := validateDatabaseObject(n)
	if o.Spec.Name != n.Spec.Name {
		errs = append(errs, field.Forbidden(field.NewPath("spec", "name"), "cannot change: declare another Database"))
	}
	if o.Spec.Cluster.Name != n.Spec.Cluster.Name {
		errs = append(errs, field.Forbidden(field.NewPath("spec", "cluster", "name"), "cannot change: declare another Database"))
	}
	if n.DeletionTimestamp != nil {
		// A Database being deleted is only waiting for its finalizer.
		return nil, nil
	}
	return nil, invalidKind(v1.DatabaseKind, n.Name, errs)
}

// ValidateDelete implements admission.Validator.
func (DatabaseWebhook) ValidateDelete(context.Context, *v1.Database) (admission.Warnings, error) {
	return nil, nil
}
