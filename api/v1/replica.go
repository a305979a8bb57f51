package v1

import (
	"math"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ReplicaClusterConfiguration makes a cluster a replica of another one,
// with CloudNativePG's names. The cluster is a replica cluster while
// Enabled is true or, in CloudNativePG's distributed topology, while
// Primary names a cluster other than Self. Promotion is one way: a
// replica cluster can become an independent primary cluster, never the
// reverse (its timeline has left the source's).
type ReplicaClusterConfiguration struct {
	// Enabled makes the cluster a replica of Source; false promotes it.
	// +optional
	Enabled *bool `json:"enabled,omitempty"`
	// Source names the spec.externalClusters entry the designated primary
	// follows: by streaming (connectionParameters) and/or by replaying
	// WAL from its object store (barmanObjectStore).
	// +kubebuilder:validation:MinLength=1
	Source string `json:"source"`
	// Primary names the cluster of a distributed topology that accepts
	// writes; this cluster is a replica while it is not Self.
	// +optional
	Primary string `json:"primary,omitempty"`
	// Self is this cluster's name in the distributed topology (default:
	// metadata.name).
	// +optional
	Self string `json:"self,omitempty"`
	// MinApplyDelay delays the replay of every transaction on the replica
	// cluster's instances by this long after its commit on the source
	// (recovery_min_apply_delay): a delayed replica cluster, to recover
	// from a mistake on the source. Promotion ends the delay.
	// +optional
	MinApplyDelay *metav1.Duration `json:"minApplyDelay,omitempty"`
}

// ApplyDelay is spec.replica.minApplyDelay on a replica cluster, 0 when
// there is none or the cluster is no longer a replica.
func (c *Cluster) ApplyDelay() time.Duration {
	if !c.IsReplica() || c.Spec.Replica.MinApplyDelay == nil {
		return 0
	}
	return c.Spec.Replica.MinApplyDelay.Duration
}

// IsReplica reports whether c is (still) a replica cluster: its designated
// primary follows spec.replica.source and no instance accepts writes.
func (c *Cluster) IsReplica() bool {
	r := c.Spec.Replica
	if r == nil {
		return false
	}
	if r.Enabled != nil {
		return *r.Enabled
	}
	self := r.Self
	if self == "" {
		self = c.Name
	}
	return r.Primary != "" && r.Primary != self
}

// ReplicaSource returns the external cluster spec.replica.source names,
// nil without spec.replica. It does not say whether the cluster is still a
// replica (IsReplica does): a designated primary keeps following it until
// it is told to promote.
func (c *Cluster) ReplicaSource() *ExternalCluster {
	if c.Spec.Replica == nil {
		return nil
	}
	return c.Spec.externalCluster(c.Spec.Replica.Source)
}

// validateReplica checks spec.replica: a source that exists and can be
// followed, a bootstrap that copies that same source (a designated
// primary must start from the source's data to follow its WAL), and
// nothing that has no meaning on a cluster that accepts no writes.
func (c *Cluster) validateReplica(p *field.Path) field.ErrorList {
	r := c.Spec.Replica
	if r == nil {
		return nil
	}
	var errs field.ErrorList
	if r.Enabled != nil && r.Primary != "" {
		errs = append(errs, field.Forbidden(p.Child("enabled"), "enabled and primary are two ways of saying the same: give one"))
	}
	for name, v := range map[string]string{"primary": r.Primary, "self": r.Self} {
		if v != "" {
			errs = append(errs, validateIdentifierLike(p.Child(name), v)...)
		}
	}
	if d := r.MinApplyDelay; d != nil && (d.Duration < 0 || d.Milliseconds() > math.MaxInt32) {
		errs = append(errs, field.Invalid(p.Child("minApplyDelay"), d.Duration.String(), "must be between 0 and 596h (recovery_min_apply_delay counts milliseconds in 32 bits)"))
	}
	src := c.Spec.externalCluster(r.Source)
	switch {
	case r.Source == "":
		errs = append(errs, field.Required(p.Child("source"), "the name of an entry of spec.externalClusters to follow"))
	case src == nil:
		errs = append(errs, field.NotFound(p.Child("source"), r.Source))
	case len(src.ConnectionParameters) == 0 && src.BarmanObjectStore == nil:
		errs = append(errs, field.Invalid(p.Child("source"), r.Source, "has neither connectionParameters to stream from nor a barmanObjectStore to replay WAL from"))
	}
	if !c.IsReplica() {
		return errs
	}
	b := c.Spec.Bootstrap
	switch {
	case b != nil && b.PgBaseBackup != nil && b.InitDB == nil:
		if b.PgBaseBackup.Source != r.Source {
			errs = append(errs, field.Invalid(p.Child("source"), r.Source, "must be the cluster bootstrap.pg_basebackup copies: the designated primary follows the WAL of the data it starts from"))
		}
	case b != nil && b.Recovery != nil && b.InitDB == nil:
		if b.Recovery.Source != r.Source {
			errs = append(errs, field.Invalid(p.Child("source"), r.Source, "must be the cluster bootstrap.recovery restores: the designated primary follows the WAL of the data it starts from"))
		}
		if b.Recovery.RecoveryTarget != nil {
			errs = append(errs, field.Forbidden(field.NewPath("spec", "bootstrap", "recovery", "recoveryTarget"), "a replica cluster follows its source to the end of its WAL: a recovery target has no meaning"))
		}
		if src != nil && src.BarmanObjectStore == nil {
			errs = append(errs, field.Invalid(p.Child("source"), r.Source, "bootstrap.recovery needs the source's barmanObjectStore"))
		}
	default:
		errs = append(errs, field.Required(field.NewPath("spec", "bootstrap"), "a replica cluster starts from its source's data: bootstrap.pg_basebackup or bootstrap.recovery from spec.replica.source, not initdb"))
	}
	if c.Spec.Backup != nil {
		errs = append(errs, field.Forbidden(field.NewPath("spec", "backup"), "not supported yet on a replica cluster (its designated primary is a standby, which archives nothing): add it once the cluster is promoted"))
	}
	if lo, hi, _ := c.Spec.SyncBounds(); lo > 0 || hi > 0 {
		errs = append(errs, field.Forbidden(p, "a replica cluster accepts no writes, so synchronous replication (minSyncReplicas, maxSyncReplicas, postgresql.synchronous) has nothing to wait for; add it once the cluster is promoted"))
	}
	return errs
}

// validateReplicaUpdate refuses what a running replica cluster cannot
// take: becoming a replica again once promoted (CloudNativePG's demotion:
// the cluster's timeline has left the source's) and following another
// source (the designated primary holds the first source's data).
func validateReplicaUpdate(oldC, newC *Cluster, p *field.Path) field.ErrorList {
	switch {
	case !oldC.IsReplica() && newC.IsReplica():
		return field.ErrorList{field.Forbidden(p, "a cluster that accepts writes cannot become a replica cluster (demotion is not supported): create a new replica cluster from the source instead")}
	case oldC.IsReplica() && newC.IsReplica() && oldC.Spec.Replica.Source != newC.Spec.Replica.Source:
		return field.ErrorList{field.Forbidden(p.Child("source"), "a replica cluster keeps following the source it was created from")}
	}
	return nil
}
