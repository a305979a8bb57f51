package v1

import (
	"slices"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Failure domains for choosing synchronous standbys
// (postgresql.synchronous.podFailureDomainKeys/nodeFailureDomainKeys and
// postgresql.syncReplicaElectionConstraint): an instance's domain is the
// values of these labels on its pod and its node; the planner chooses
// synchronous standbys only in another domain than the primary's
// (plan.Spec.SyncDomains). They mean something on Kubernetes only: the
// local runtime runs every instance on one machine, one domain, and
// refuses them.

// SyncFailureDomainKeys returns the pod and node label keys that make an
// instance's failure domain for choosing synchronous standbys (both nil:
// no constraint), from spec.postgresql.synchronous and
// syncReplicaElectionConstraint together.
func (s *ClusterSpec) SyncFailureDomainKeys() (podKeys, nodeKeys []string) {
	pc := s.PostgresConfiguration
	if sy := pc.Synchronous; sy != nil {
		podKeys = append(podKeys, sy.PodFailureDomainKeys...)
		nodeKeys = append(nodeKeys, sy.NodeFailureDomainKeys...)
	}
	if c := pc.SyncReplicaElectionConstraint; c != nil && c.Enabled {
		for _, k := range c.NodeLabelsAntiAffinity {
			if !slices.Contains(nodeKeys, k) {
				nodeKeys = append(nodeKeys, k)
			}
		}
	}
	return podKeys, nodeKeys
}

// validateFailureDomains checks the label keys (a key that is not a valid
// label key would never match, leaving no standby eligible without a word)
// and refuses them without synchronous replication, where they would be
// accepted and do nothing.
func (s *ClusterSpec) validateFailureDomains(path *field.Path) field.ErrorList {
	var errs field.ErrorList
	pc := s.PostgresConfiguration
	keys := func(list []string, p *field.Path) {
		seen := map[string]bool{}
		for i, k := range list {
			for _, msg := range validation.IsQualifiedName(k) {
				errs = append(errs, field.Invalid(p.Index(i), k, "a label key: "+msg))
			}
			if seen[k] {
				errs = append(errs, field.Duplicate(p.Index(i), k))
			}
			seen[k] = true
		}
	}
	var set []*field.Path
	if sy := pc.Synchronous; sy != nil {
		sp := path.Child("synchronous")
		keys(sy.PodFailureDomainKeys, sp.Child("podFailureDomainKeys"))
		keys(sy.NodeFailureDomainKeys, sp.Child("nodeFailureDomainKeys"))
		if len(sy.PodFailureDomainKeys) > 0 {
			set = append(set, sp.Child("podFailureDomainKeys"))
		}
		if len(sy.NodeFailureDomainKeys) > 0 {
			set = append(set, sp.Child("nodeFailureDomainKeys"))
		}
	}
	if c := pc.SyncReplicaElectionConstraint; c != nil {
		cp := path.Child("syncReplicaElectionConstraint")
		keys(c.NodeLabelsAntiAffinity, cp.Child("nodeLabelsAntiAffinity"))
		// With enabled false the labels are kept and unused, as
		// CloudNativePG keeps them: the user turned it off, in words.
		switch {
		case c.Enabled && len(c.NodeLabelsAntiAffinity) == 0:
			errs = append(errs, field.Required(cp.Child("nodeLabelsAntiAffinity"), "the node labels that tell failure domains apart"))
		case c.Enabled:
			set = append(set, cp)
		}
	}
	if _, hi, _ := s.SyncBounds(); hi == 0 {
		for _, p := range set {
			errs = append(errs, field.Forbidden(p, "chooses synchronous standbys, and this cluster has none (set spec.postgresql.synchronous or maxSyncReplicas)"))
		}
	}
	return errs
}
