package kube

import (
	"context"

	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	v1 "github.com/pgward/pgward/api/v1"
)

// +kubebuilder:webhook:path=/validate-postgresql-pgward-io-v1-imagecatalog,mutating=false,failurePolicy=fail,sideEffects=None,groups=postgresql.pgward.io,resources=imagecatalogs,verbs=create;update,versions=v1,name=vimagecatalog.pgward.io,admissionReviewVersions=v1
// +kubebuilder:webhook:path=/validate-postgresql-pgward-io-v1-clusterimagecatalog,mutating=false,failurePolicy=fail,sideEffects=None,groups=postgresql.pgward.io,resources=clusterimagecatalogs,verbs=create;update,versions=v1,name=vclusterimagecatalog.pgward.io,admissionReviewVersions=v1

// ImageCatalogWebhook validates ImageCatalogs: image references, one entry
// per major, no tag contradicting its major. A change of a valid catalog
// is allowed: it rolls the Clusters that use the entry.
type ImageCatalogWebhook struct{}

// ClusterImageCatalogWebhook validates ClusterImageCatalogs the same way.
type ClusterImageCatalogWebhook struct{}

var (
	_ admission.Validator[*v1.ImageCatalog]        = ImageCatalogWebhook{}
	_ admission.Validator[*v1.ClusterImageCatalog] = ClusterImageCatalogWebhook{}
)

// SetupImageCatalogWebhooksWithManager serves both validating webhooks.
func SetupImageCatalogWebhooksWithManager(mgr ctrl.Manager) error {
	if err := ctrl.NewWebhookManagedBy(mgr, &v1.ImageCatalog{}).WithValidator(ImageCatalogWebhook{}).Complete(); err != nil {
		return err
	}
	return ctrl.NewWebhookManagedBy(mgr, &v1.ClusterImageCatalog{}).WithValidator(ClusterImageCatalogWebhook{}).Complete()
}

// ValidateCreate implements admission.Validator.
func (ImageCatalogWebhook) ValidateCreate(_ context.Context, c *v1.ImageCatalog) (admission.Warnings, error) {
	return nil, invalidKind(v1.ImageCatalogKind, c.Name, c.Spec.Validate(field.NewPath("spec")))
}

// ValidateUpdate implements admission.Validator.
func (ImageCatalogWebhook) ValidateUpdate(_ context.Context, _, n *v1.ImageCatalog) (admission.Warnings, error) {
	return nil, invalidKind(v1.ImageCatalogKind, n.Name, n.Spec.Validate(field.NewPath("spec")))
}

// ValidateDelete implements admission.Validator: a Cluster whose catalog
// is gone keeps its pods and reports the missing catalog.
func (ImageCatalogWebhook) ValidateDelete(context.Context, *v1.ImageCatalog) (admission.Warnings, error) {
	return nil, nil
}

// ValidateCreate implements admission.Validator.
func (ClusterImageCatalogWebhook) ValidateCreate(_ context.Context, c *v1.ClusterImageCatalog) (admission.Warnings, error) {
	return nil, invalidKind(v1.ClusterImageCatalogKind, c.Name, c.Spec.Validate(field.NewPath("spec")))
}

// ValidateUpdate implements admission.Validator.
func (ClusterImageCatalogWebhook) ValidateUpdate(_ context.Context, _, n *v1.ClusterImageCatalog) (admission.Warnings, error) {
	return nil, invalidKind(v1.ClusterImageCatalogKind, n.Name, n.Spec.Validate(field.NewPath("spec")))
}

// ValidateDelete implements admission.Validator.
func (ClusterImageCatalogWebhook) ValidateDelete(context.Context, *v1.ClusterImageCatalog) (admission.Warnings, error) {
	return nil, nil
}
