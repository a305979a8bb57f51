package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Kinds of the image catalogs (Kubernetes only: locally PostgreSQL comes
// from the machine's binaries, `pgward local up --pg-bin`).
const (
	ImageCatalogKind        = "ImageCatalog"
	ClusterImageCatalogKind = "ClusterImageCatalog"
	// CloudNativePGGroup is CloudNativePG's API group. An imageCatalogRef
	// naming it is read as pgward's group, as CloudNativePG's apiVersion
	// is: the catalogs pgward reads are its own kinds of the same shape.
	CloudNativePGGroup = "postgresql.cnpg.io"
)

// SupportedMajor is the one PostgreSQL major version pgward runs: its
// parameters are validated against PostgreSQL 15's (postgres15_settings.tsv).
const SupportedMajor = 15

// ImageCatalog maps PostgreSQL major versions to operand images, for the
// Clusters of its namespace (spec.imageCatalogRef, kind ImageCatalog).
// CloudNativePG's shape.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=pgwic
type ImageCatalog struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec ImageCatalogSpec `json:"spec"`
}

// ImageCatalogList is a list of ImageCatalogs.
//
// +kubebuilder:object:root=true
type ImageCatalogList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ImageCatalog `json:"items"`
}

// ClusterImageCatalog is an ImageCatalog for the Clusters of every
// namespace (kind ClusterImageCatalog in spec.imageCatalogRef).
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=pgwcic
type ClusterImageCatalog struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec ImageCatalogSpec `json:"spec"`
}

// ClusterImageCatalogList is a list of ClusterImageCatalogs.
//
// +kubebuilder:object:root=true
type ClusterImageCatalogList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterImageCatalog `json:"items"`
}

// ImageCatalogSpec lists one image per PostgreSQL major version. Entries of
// majors pgward does not run may be listed (a catalog serves many
// clusters); a Cluster can only select SupportedMajor.
type ImageCatalogSpec struct {
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	Images []CatalogImage `json:"images"`
}

// CatalogImage is the image of one major version.
type CatalogImage struct {
	// Image is an image reference (registry/name:tag or @sha256:digest).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	Image string `json:"image"`
	// Major is the PostgreSQL major version the image runs.
	// +kubebuilder:validation:Minimum=10
	Major int `json:"major"`
}

// ImageCatalogRef selects the image of one major version from a catalog
// (CloudNativePG's spec.imageCatalogRef).
type ImageCatalogRef struct {
	// APIGroup is postgresql.pgward.io (postgresql.cnpg.io is read as it).
	// +optional
	APIGroup *string `json:"apiGroup,omitempty"`
	// Kind is ImageCatalog (in the Cluster's namespace) or ClusterImageCatalog.
	// +kubebuilder:validation:Enum=ImageCatalog;ClusterImageCatalog
	Kind string `json:"kind"`
	// Name of the catalog.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Major selects the catalog's entry; pgward runs PostgreSQL 15 only.
	Major int `json:"major"`
}
