package v1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DatabaseKind is CloudNativePG's Database kind: one PostgreSQL database
// of a Cluster, declared as its own object (on Kubernetes) or as a
// document beside the Cluster in the manifest file (locally). The primary's
// instance manager reconciles it, in both runtimes the same code.
const DatabaseKind = "Database"

// Reclaim policies of a Database: what happens to the PostgreSQL database
// when its declaration goes away (the object deleted, the document removed
// from the file).
const (
	DatabaseReclaimRetain = "retain"
	DatabaseReclaimDelete = "delete"
)

// Database declares a PostgreSQL database of a Cluster of the same
// namespace (CloudNativePG's shape).
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=pgwdb
// +kubebuilder:printcolumn:name="Cluster",type="string",JSONPath=".spec.cluster.name"
// +kubebuilder:printcolumn:name="PG Name",type="string",JSONPath=".spec.name"
// +kubebuilder:printcolumn:name="Applied",type="boolean",JSONPath=".status.applied"
// +kubebuilder:printcolumn:name="Message",type="string",JSONPath=".status.message"
type Database struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec DatabaseSpec `json:"spec"`
	// +optional
	Status DatabaseStatus `json:"status,omitempty"`
}

// DatabaseList is a list of Databases.
//
// +kubebuilder:object:root=true
type DatabaseList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Database `json:"items"`
}

// DatabaseSpec is CloudNativePG's: CREATE DATABASE's options (the ones
// PostgreSQL fixes at creation are compared and reported when they
// differ, never changed), ALTER DATABASE's (applied and kept), and the
// schemas and extensions inside.
type DatabaseSpec struct {
	// Cluster is the Cluster (same namespace) whose primary holds it.
	Cluster corev1.LocalObjectReference `json:"cluster"`
	// Ensure is present (default) or absent (the database is dropped).
	// +optional
	// +kubebuilder:validation:Enum=present;absent
	Ensure string `json:"ensure,omitempty"`
	// Name is the database's name in PostgreSQL; it cannot change.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="name is immutable"
	Name string `json:"name"`
	// Owner is the role that owns the database (ALTER DATABASE OWNER TO).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Owner string `json:"owner"`
	// Template, Encoding, Locale, LocaleProvider, LocaleCollate,
	// LocaleCType and ICULocale are CREATE DATABASE's: fixed once the
	// database exists.
	// +optional
	Template string `json:"template,omitempty"`
	// +optional
	Encoding string `json:"encoding,omitempty"`
	// +optional
	Locale string `json:"locale,omitempty"`
	// +optional
	LocaleProvider string `json:"localeProvider,omitempty"`
	// +optional
	LocaleCollate string `json:"localeCollate,omitempty"`
	// +optional
	LocaleCType string `json:"localeCType,omitempty"`
	// +optional
	ICULocale string `json:"icuLocale,omitempty"`
	// ICURules (PostgreSQL 16), BuiltinLocale (17) and CollationVersion
	// are refused: pgward runs PostgreSQL 15, and a collation version is
	// PostgreSQL's to record.
	// +optional
	ICURules string `json:"icuRules,omitempty"`
	// +optional
	BuiltinLocale string `json:"builtinLocale,omitempty"`
	// +optional
	CollationVersion string `json:"collationVersion,omitempty"`
	// IsTemplate, AllowConnections, ConnectionLimit and Tablespace are
	// kept as declared (drift repaired).
	// +optional
	IsTemplate *bool `json:"isTemplate,omitempty"`
	// +optional
	AllowConnections *bool `json:"allowConnections,omitempty"`
	// ConnectionLimit (-1: no limit, the default).
	// +optional
	ConnectionLimit *int64 `json:"connectionLimit,omitempty"`
	// +optional
	Tablespace string `json:"tablespace,omitempty"`
	// ReclaimPolicy is retain (default: the database stays when the
	// declaration goes) or delete (it is dropped).
	// +optional
	// +kubebuilder:validation:Enum=delete;retain
	ReclaimPolicy string `json:"databaseReclaimPolicy,omitempty"`
	// Schemas inside the database.
	// +optional
	// +kubebuilder:validation:MaxItems=100
	Schemas []DatabaseSchema `json:"schemas,omitempty"`
	// Extensions inside the database.
	// +optional
	// +kubebuilder:validation:MaxItems=100
	Extensions []DatabaseExtension `json:"extensions,omitempty"`
	// FDWs and Servers (foreign data wrappers and servers) are refused:
	// not supported yet. Their content is kept only to be refused by
	// name rather than pruned unseen.
	// +optional
	FDWs []RefusedObject `json:"fdws,omitempty"`
	// +optional
	Servers []RefusedObject `json:"servers,omitempty"`
}

// RefusedObject is an entry of a list pgward refuses as a whole; only its
// name is read, for the message.
//
// +kubebuilder:pruning:PreserveUnknownFields
type RefusedObject struct {
	// +optional
	Name string `json:"name,omitempty"`
}

// DatabaseSchema is a schema of a declared database.
type DatabaseSchema struct {
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
	// Owner (AUTHORIZATION); empty: the database's owner.
	// +optional
	Owner string `json:"owner,omitempty"`
	// +optional
	// +kubebuilder:validation:Enum=present;absent
	Ensure string `json:"ensure,omitempty"`
}

// DatabaseExtension is an extension of a declared database. Whether the
// machine or the image has it only the server can tell: an extension it
// lacks is reported in the status, the rest still reconciled.
type DatabaseExtension struct {
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
	// Version to install or update to; empty: the default version, and
	// an installed extension is left at its version.
	// +optional
	Version string `json:"version,omitempty"`
	// Schema for a relocatable extension's objects.
	// +optional
	Schema string `json:"schema,omitempty"`
	// +optional
	// +kubebuilder:validation:Enum=present;absent
	Ensure string `json:"ensure,omitempty"`
}

// DatabaseStatus is what the Cluster's primary reported for the
// generation it saw.
type DatabaseStatus struct {
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Applied is true when the primary has the database as declared.
	// +optional
	Applied *bool `json:"applied,omitempty"`
	// Message says why not, or what is pending.
	// +optional
	Message string `json:"message,omitempty"`
}
