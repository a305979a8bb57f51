// Package kube is pgward's Kubernetes operator: a controller-runtime
// reconciler that turns each Cluster into the objects package build
// describes, observes every instance over its status port with the
// operator's own client certificate, and drives the same failover planner
// (package plan) as the local runtime. It also serves the Cluster admission
// webhooks (defaulting and validation, calling api/v1) over TLS with a
// certificate it manages itself.
//
// Reconcile is level-based and idempotent: it reads the current state,
// writes only what differs from the desired state (a resync of a settled
// cluster writes nothing), persists the planner's Memory in the Cluster's
// status before running any of the planner's actions, and labels pods so
// that the read-write Service selects the target primary.
package kube
