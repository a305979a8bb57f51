package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// SchemeGroupVersion is the group and version of this package's types.
	SchemeGroupVersion = schema.GroupVersion{Group: Group, Version: Version}

	// SchemeBuilder registers this package's types with a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds Cluster, Backup and ScheduledBackup (and their lists) to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// Resource returns the group-qualified resource, e.g. "clusters".
func Resource(resource string) schema.GroupResource {
	return SchemeGroupVersion.WithResource(resource).GroupResource()
}

// addKnownTypes registers the kinds, and the meta types (ListOptions, ...)
// that clients send with them, under SchemeGroupVersion.
func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(SchemeGroupVersion, &Cluster{}, &ClusterList{},
		&Backup{}, &BackupList{}, &ScheduledBackup{}, &ScheduledBackupList{},
		&ImageCatalog{}, &ImageCatalogList{}, &ClusterImageCatalog{}, &ClusterImageCatalogList{},
		&Database{}, &DatabaseList{})
	metav1.AddToGroupVersion(scheme, SchemeGroupVersion)
	return nil
}
