package kube

import (
	"context"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	v1 "github.com/pgward/pgward/api/v1"
)

// Webhook paths, as controller-runtime derives them from the group,
// version and kind; the markers below generate config/webhook.
const (
	MutatePath   = "/mutate-postgresql-pgward-io-v1-cluster"
	ValidatePath = "/validate-postgresql-pgward-io-v1-cluster"
)

// ClusterWebhook defaults and validates Clusters at admission with the very
// functions the local runtime applies to a manifest (v1.SetDefaults,
// Validate, ValidateUpdate), plus what only Kubernetes needs. Errors are a
// field.ErrorList, so the API server's answer names every offending field.
//
// The webhooks are called for Clusters of every namespace (their
// configurations are cluster-scoped and select none), also when the
// operator watches only some: a Cluster created where the operator holds no
// permission would never be reconciled, so it is refused, with the reason.
// Updates there are allowed, with a warning, so that such a Cluster can
// still be edited and deleted (the garbage collector's own updates go
// through these webhooks too).
type ClusterWebhook struct {
	// Namespaces are the namespaces the operator watches; empty is all.
	Namespaces []string
}

// The webhook configurations (config/webhook) are generated from these.
// failurePolicy=fail: a Cluster is never admitted unchecked.

// +kubebuilder:webhook:path=/mutate-postgresql-pgward-io-v1-cluster,mutating=true,failurePolicy=fail,sideEffects=None,groups=postgresql.pgward.io,resources=clusters,verbs=create;update,versions=v1,name=mcluster.pgward.io,admissionReviewVersions=v1
// +kubebuilder:webhook:path=/validate-postgresql-pgward-io-v1-cluster,mutating=false,failurePolicy=fail,sideEffects=None,groups=postgresql.pgward.io,resources=clusters,verbs=create;update,versions=v1,name=vcluster.pgward.io,admissionReviewVersions=v1

var (
	_ admission.Defaulter[*v1.Cluster] = ClusterWebhook{}
	_ admission.Validator[*v1.Cluster] = ClusterWebhook{}
)

// SetupWebhookWithManager serves both webhooks on the manager's webhook
// server, for an operator that watches namespaces (every one when empty).
func SetupWebhookWithManager(mgr ctrl.Manager, namespaces []string) error {
	return ctrl.NewWebhookManagedBy(mgr, &v1.Cluster{}).
		WithDefaulter(ClusterWebhook{Namespaces: namespaces}).
		WithValidator(ClusterWebhook{Namespaces: namespaces}).
		Complete()
}

// Default implements admission.Defaulter. An instances field left out was
// already set to 1 by the CRD's schema default before this runs, so a 0
// here was written by the user: it is kept for the schema's minimum to
// refuse, rather than silently turned into 1.
func (ClusterWebhook) Default(_ context.Context, c *v1.Cluster) error {
	explicitZero := c.Spec.Instances == 0
	v1.SetDefaults(c)
	if explicitZero {
		c.Spec.Instances = 0
	}
	return nil
}

// ValidateCreate implements admission.Validator.
func (w ClusterWebhook) ValidateCreate(_ context.Context, c *v1.Cluster) (admission.Warnings, error) {
	d := c.DeepCopy()
	v1.SetDefaults(d)
	errs := ValidateForKubernetes(d)
	if !watches(w.Namespaces, c.Namespace) {
		errs = append(errs, field.Forbidden(field.NewPath("metadata", "namespace"), notWatched(w.Namespaces, c.Namespace)))
	}
	return nil, invalid(d, errs)
}

// ValidateUpdate implements admission.Validator: the new spec must be
// valid and may not change what is fixed once the cluster exists.
func (w ClusterWebhook) ValidateUpdate(_ context.Context, oldC, newC *v1.Cluster) (admission.Warnings, error) {
	o, n := oldC.DeepCopy(), newC.DeepCopy()
	v1.SetDefaults(o)
	v1.SetDefaults(n)
	errs := append(v1.ValidateUpdate(o, n), refuseMountChanges(o, n)...)
	errs = append(errs, refusePodShapeChanges(o, n)...)
	errs = append(errs, tablespacesForKubernetes(n)...)
	errs = append(errs, refuseTablespaceChanges(o, n)...)
	errs = append(errs, walStorageForKubernetes(n)...)
	errs = append(errs, refuseWalStorageChanges(o, n)...)
	errs = append(errs, refuseRoleSecretChanges(o, n)...)
	if n.Spec.StorageConfiguration.Size == "" && o.Spec.StorageConfiguration.Size == "" {
		errs = append(errs, field.Required(field.NewPath("spec", "storage", "size"),
			"each instance needs a persistent volume on Kubernetes, e.g. 1Gi"))
	}
	var warnings admission.Warnings
	if !watches(w.Namespaces, n.Namespace) {
		warnings = append(warnings, notWatched(w.Namespaces, n.Namespace))
	}
	return warnings, invalid(n, errs)
}

// ValidateDelete implements admission.Validator; deleting is always allowed.
func (ClusterWebhook) ValidateDelete(context.Context, *v1.Cluster) (admission.Warnings, error) {
	return nil, nil
}

// invalid is the API's 422 Invalid error listing errs, or nil.
func invalid(c *v1.Cluster, errs field.ErrorList) error {
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(v1.SchemeGroupVersion.WithKind(v1.Kind).GroupKind(), c.Name, errs)
}

// refuseMountChanges refuses pointing spec.backup at other secrets or keys:
// a pod projects the secrets it was created with and never changes, so its
// instance manager would look for files that are not there. Changing the
// content of the same secret is what reaches running pods.
func refuseMountChanges(o, n *v1.Cluster) field.ErrorList {
	keys := func(c *v1.Cluster) []string {
		var out []string
		for _, u := range c.BackupSecretKeys() {
			if strings.HasPrefix(u.Field, "spec.backup.") {
				out = append(out, u.Field+"="+u.Name+"/"+u.Key)
			}
		}
		return out
	}
	if slices.Equal(keys(o), keys(n)) {
		return nil
	}
	return field.ErrorList{field.Forbidden(field.NewPath("spec", "backup", "barmanObjectStore"),
		"the pods mount the secrets spec.backup names when they are created: change the content of the same secrets and keys instead of naming others")}
}
