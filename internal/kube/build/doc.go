// Package build turns a Cluster into the Kubernetes objects that run it:
// Secrets, Services, PersistentVolumeClaims, Pods, PodDisruptionBudgets,
// per-cluster RBAC and, when asked for, NetworkPolicies.
//
// Every function here is pure: it takes a Cluster (already defaulted by
// v1.SetDefaults), the operator's Options and whatever material the caller
// generated (certificates, credentials), and returns an object. No client,
// no context, no clock and no randomness, so the objects are table-tested
// against golden files, and the reconciler in internal/kube only decides
// when to create or patch them.
//
// Each object carries a controller owner reference to its Cluster (with
// blockOwnerDeletion), so deleting the Cluster garbage-collects everything.
package build
