// Package v1 holds the Cluster API of pgward (group postgresql.pgward.io,
// version v1): the Go types, their defaults and their validation.
//
// The field names follow Cloud Native PostgreSQL so that its users can bring
// their manifests. Defaulting and validation are plain functions here so that
// the local runtime, the Kubernetes operator and its admission webhooks all
// apply exactly the same rules. This package imports nothing from pgward.
//
// +kubebuilder:object:generate=true
// +groupName=postgresql.pgward.io
package v1
