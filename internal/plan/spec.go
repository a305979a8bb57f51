package plan

import (
	"errors"
	"fmt"
	"time"
)

// Defaults applied by Next to zero Spec durations (SelfFenceBound has none).
const (
	DefaultCheckInterval      = time.Second
	DefaultUnreachableTimeout = 2 * time.Second
	DefaultRejoinGrace        = 5 * time.Second
	DefaultSwitchoverTimeout  = 30 * time.Second
	DefaultRouteWait          = 5 * time.Second
)

// Spec is the part of the desired Cluster that the planner needs, as a plain
// value so that both runtimes can build it.
type Spec struct {
	// Instances names the cluster's instances; the first one bootstraps.
	Instances []string
	// FailoverDelay is how long the primary must look unhealthy before a
	// failover starts (the Cluster's failoverDelay).
	FailoverDelay time.Duration
	// UnreachableTimeout is how long the primary may go without answering
	// before it counts as unhealthy.
	UnreachableTimeout time.Duration
	// SelfFenceBound is how long after the primary's last answer Next treats
	// an unreachable primary as fenced by itself. Zero means never: an
	// unreachable primary then blocks failover. Derive it with
	// FenceTiming.Bound.
	SelfFenceBound time.Duration
	// MinSyncReplicas and MaxSyncReplicas bound the number of synchronous
	// standbys; both zero means asynchronous replication.
	MinSyncReplicas int
	MaxSyncReplicas int
	// SyncMethod is how synchronous_standby_names counts its standbys;
	// "" means SyncAny.
	SyncMethod SyncMethod
	// RejoinGrace is how long a replica may stay on an older timeline than
	// the primary's before it is rewound.
	RejoinGrace time.Duration
	// SwitchoverTimeout is how long a switchover target may take to catch up
	// after the old primary's shutdown before the switchover is aborted.
	SwitchoverTimeout time.Duration
	// RouteWait is how long a planned switchover (the user's, or a rolling
	// update's) keeps the primary running while its target is Unroutable,
	// before it goes ahead anyway: long enough for a new pod's readiness
	// probe (every 2 s) to be reported, short enough that a router that
	// never counts the target cannot hold a switchover for good.
	RouteWait time.Duration
	// CheckInterval is the longest RecheckAfter Next returns.
	CheckInterval time.Duration
	// TransitionInterval, when set, is the longest RecheckAfter while the
	// cluster is changing: a switchover under way, a promotion not yet
	// seen through, or actions just issued. Each step of a change waits on
	// the next observation; at CheckInterval (chosen for the cost of a
	// healthy cluster) a switchover's four steps took seconds. Zero means
	// CheckInterval.
	TransitionInterval time.Duration
	// SupervisedPrimaryUpdate leaves a primary that needs a restart to the
	// user's switchover; RestartPrimaryInPlace restarts it where it is
	// instead of switching over to an updated replica.
	SupervisedPrimaryUpdate bool
	RestartPrimaryInPlace   bool
	// Manifests maps an instance to the manifest (InstanceStatus.Manifest)
	// the runtime last gave it. A rolling update counts a replica updated
	// only once it reports that manifest loaded with no restart pending:
	// the runtime's copy reaches each instance at its own moment (a
	// kubelet refreshes a pod's Secret volume at its next sync, a minute
	// or more apart per pod), and a replica that has not read it yet has
	// nothing pending either. An instance missing from it (or a nil map)
	// is judged by PendingRestart alone.
	Manifests map[string]string
	// FailoverQuorum applies the quorum check of required synchronous
	// replication to preferred replication too (CloudNativePG's
	// synchronous.failoverQuorum): writes go on with fewer standbys, but
	// a failover waits until enough of the recorded standbys answer to
	// find every commit that was acknowledged synchronously.
	FailoverQuorum bool

	// ReplicaCluster makes the whole cluster follow another one: the
	// target primary is a designated primary, a standby of the source
	// that the other instances cascade from, and nothing accepts writes.
	// Turning it off promotes the designated primary in place.
	ReplicaCluster bool
	// Fenced names the instances the user fenced (FenceAll: every one):
	// PostgreSQL shut down on them and kept down, never promoted; a fenced
	// primary is not failed over (CloudNativePG's semantics).
	Fenced []string
	// Hibernate shuts every instance down cleanly and keeps it down, the
	// data kept; lifting it starts the same primary again.
	Hibernate bool
	// SyncDomains, when not nil, constrains synchronous standbys to
	// instances in another failure domain than the primary's
	// (podFailureDomainKeys, nodeFailureDomainKeys,
	// syncReplicaElectionConstraint): it maps an instance to its domain,
	// the values of those labels on its pod and node. An instance
	// missing from it (its pod not scheduled, its node unreadable) is in
	// an unknown domain, never eligible, and neither is any instance
	// while the primary's domain is unknown: a constraint that cannot be
	// shown to hold does not.
	SyncDomains map[string]string
}

// NoEligibleStandby is the one name synchronous_standby_names lists when
// required synchronous replication has no instance in another failure
// domain than the primary's: no standby can match it (instance names end
// in a number), so writes wait, as dataDurability "required" says, rather
// than be acknowledged by a standby in the primary's own domain.
const NoEligibleStandby = "pgward-no-standby-in-another-failure-domain"

// FenceAll in Spec.Fenced fences every instance.
const FenceAll = "*"

// fenced reports whether the user asked for name to be down.
func (s Spec) fenced(name string) bool {
	if s.Hibernate {
		return true
	}
	for _, n := range s.Fenced {
		if n == name || n == FenceAll {
			return true
		}
	}
	return false
}

func (s Spec) withDefaults() Spec {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&s.CheckInterval, DefaultCheckInterval)
	def(&s.UnreachableTimeout, DefaultUnreachableTimeout)
	def(&s.RejoinGrace, DefaultRejoinGrace)
	def(&s.SwitchoverTimeout, DefaultSwitchoverTimeout)
	def(&s.RouteWait, DefaultRouteWait)
	if s.SyncMethod == "" {
		s.SyncMethod = SyncAny
	}
	return s
}

// Validate reports the first reason s cannot be planned for.
func (s Spec) Validate() error {
	if len(s.Instances) == 0 {
		return errors.New("no instances")
	}
	seen := make(map[string]bool, len(s.Instances))
	for _, n := range s.Instances {
		if n == "" {
			return errors.New("empty instance name")
		}
		if seen[n] {
			return fmt.Errorf("instance %q listed twice", n)
		}
		seen[n] = true
	}
	for _, d := range []time.Duration{s.FailoverDelay, s.UnreachableTimeout, s.SelfFenceBound,
		s.RejoinGrace, s.SwitchoverTimeout, s.CheckInterval, s.TransitionInterval, s.RouteWait} {
		if d < 0 {
			return fmt.Errorf("negative duration %v", d)
		}
	}
	return s.validateSync()
}

func (s Spec) validateSync() error {
	switch {
	case s.MinSyncReplicas < 0 || s.MaxSyncReplicas < 0:
		return errors.New("negative synchronous replica count")
	case s.MinSyncReplicas > s.MaxSyncReplicas:
		return fmt.Errorf("minSyncReplicas %d exceeds maxSyncReplicas %d", s.MinSyncReplicas, s.MaxSyncReplicas)
	case s.MaxSyncReplicas >= len(s.Instances):
		return fmt.Errorf("maxSyncReplicas %d needs more than %d instances", s.MaxSyncReplicas, len(s.Instances))
	case s.ReplicaCluster && s.MaxSyncReplicas > 0:
		return errors.New("a replica cluster accepts no writes: synchronous replication has nothing to wait for")
	case s.SyncMethod != "" && s.SyncMethod != SyncAny && s.SyncMethod != SyncFirst:
		return fmt.Errorf("unknown synchronous method %q", s.SyncMethod)
	}
	return nil
}

func (s Spec) has(name string) bool {
	for _, n := range s.Instances {
		if n == name {
			return true
		}
	}
	return false
}

// durable reports whether no failover may lose an acknowledged commit:
// under dataDurability "required" (where writes also block rather than go
// unreplicated), and under "preferred" with FailoverQuorum.
func (s Spec) durable() bool {
	return s.MinSyncReplicas > 0 || (s.FailoverQuorum && s.MaxSyncReplicas > 0)
}
