package v1

import (
	"strings"
	"testing"
)

func TestSynchronousAndFailoverDelay(t *testing.T) {
	base := func() *Cluster {
		c := &Cluster{}
		c.Name = "pg"
		c.Spec.Instances = 3
		SetDefaults(c)
		return c
	}
	cases := []struct {
		name string
		mod  func(*Cluster)
		want string // "" means valid
	}{
		{"quorum of one", func(c *Cluster) {
			c.Spec.PostgresConfiguration.Synchronous = &SynchronousReplicaConfiguration{Method: "any", Number: 1}
		}, ""},
		{"unknown method", func(c *Cluster) {
			c.Spec.PostgresConfiguration.Synchronous = &SynchronousReplicaConfiguration{Method: "all", Number: 1}
		}, "spec.postgresql.synchronous.method"},
		{"as many as instances", func(c *Cluster) {
			c.Spec.PostgresConfiguration.Synchronous = &SynchronousReplicaConfiguration{Method: "first", Number: 3}
		}, "spec.postgresql.synchronous.number"},
		{"zero", func(c *Cluster) {
			c.Spec.PostgresConfiguration.Synchronous = &SynchronousReplicaConfiguration{Method: "any"}
		}, "spec.postgresql.synchronous.number"},
		{"both styles", func(c *Cluster) {
			c.Spec.MinSyncReplicas, c.Spec.MaxSyncReplicas = 1, 1
			c.Spec.PostgresConfiguration.Synchronous = &SynchronousReplicaConfiguration{Method: "any", Number: 1}
		}, "not both"},
		{"bad durability", func(c *Cluster) {
			c.Spec.PostgresConfiguration.Synchronous = &SynchronousReplicaConfiguration{Method: "any", Number: 1, DataDurability: "maybe"}
		}, "spec.postgresql.synchronous.dataDurability"},
		{"failoverQuorum with required durability", func(c *Cluster) {
			c.Spec.PostgresConfiguration.Synchronous = &SynchronousReplicaConfiguration{Method: "any", Number: 1, FailoverQuorum: ptrTo(true)}
		}, ""},
		{"failoverQuorum with preferred durability", func(c *Cluster) {
			c.Spec.PostgresConfiguration.Synchronous = &SynchronousReplicaConfiguration{Method: "any", Number: 1, DataDurability: "preferred", FailoverQuorum: ptrTo(true)}
		}, ""},
		{"failoverQuorum off under required durability", func(c *Cluster) {
			c.Spec.PostgresConfiguration.Synchronous = &SynchronousReplicaConfiguration{Method: "any", Number: 1, FailoverQuorum: ptrTo(false)}
		}, "spec.postgresql.synchronous.failoverQuorum"},
		{"negative failover delay", func(c *Cluster) { c.Spec.FailoverDelay = -1 }, "spec.failoverDelay"},
		{"failure-domain keys", func(c *Cluster) {
			c.Spec.PostgresConfiguration.Synchronous = &SynchronousReplicaConfiguration{Method: "first", Number: 1,
				PodFailureDomainKeys: []string{"topology.kubernetes.io/zone"}, NodeFailureDomainKeys: []string{"rack"}}
		}, ""},
		{"election constraint", func(c *Cluster) {
			c.Spec.MinSyncReplicas, c.Spec.MaxSyncReplicas = 1, 1
			c.Spec.PostgresConfiguration.SyncReplicaElectionConstraint = &SyncReplicaElectionConstraints{Enabled: true, NodeLabelsAntiAffinity: []string{"az"}}
		}, ""},
		{"election constraint off, without sync replicas", func(c *Cluster) {
			c.Spec.PostgresConfiguration.SyncReplicaElectionConstraint = &SyncReplicaElectionConstraints{NodeLabelsAntiAffinity: []string{"az"}}
		}, ""},
		{"election constraint without sync replicas", func(c *Cluster) {
			c.Spec.PostgresConfiguration.SyncReplicaElectionConstraint = &SyncReplicaElectionConstraints{Enabled: true, NodeLabelsAntiAffinity: []string{"az"}}
		}, "spec.postgresql.syncReplicaElectionConstraint: Forbidden: chooses synchronous standbys"},
		{"election constraint without labels", func(c *Cluster) {
			c.Spec.MinSyncReplicas, c.Spec.MaxSyncReplicas = 1, 1
			c.Spec.PostgresConfiguration.SyncReplicaElectionConstraint = &SyncReplicaElectionConstraints{Enabled: true}
		}, "spec.postgresql.syncReplicaElectionConstraint.nodeLabelsAntiAffinity: Required"},
		{"a key that is no label key", func(c *Cluster) {
			c.Spec.PostgresConfiguration.Synchronous = &SynchronousReplicaConfiguration{Method: "any", Number: 1, NodeFailureDomainKeys: []string{"a b"}}
		}, "spec.postgresql.synchronous.nodeFailureDomainKeys[0]"},
		{"a key twice", func(c *Cluster) {
			c.Spec.PostgresConfiguration.Synchronous = &SynchronousReplicaConfiguration{Method: "any", Number: 1, PodFailureDomainKeys: []string{"z", "z"}}
		}, "spec.postgresql.synchronous.podFailureDomainKeys[1]: Duplicate"},
	}
	for _, tc := range cases {
		c := base()
		tc.mod(c)
		errs := c.Validate()
		got := errs.ToAggregate()
		switch {
		case tc.want == "" && len(errs) > 0:
			t.Errorf("%s: unexpected %v", tc.name, got)
		case tc.want != "" && (len(errs) == 0 || !strings.Contains(got.Error(), tc.want)):
			t.Errorf("%s: got %v, want an error naming %s", tc.name, got, tc.want)
		}
	}
}

func TestSyncBounds(t *testing.T) {
	s := &ClusterSpec{MinSyncReplicas: 1, MaxSyncReplicas: 2}
	if lo, hi, m := s.SyncBounds(); lo != 1 || hi != 2 || m != "any" {
		t.Errorf("legacy: %d %d %s", lo, hi, m)
	}
	s = &ClusterSpec{PostgresConfiguration: PostgresConfiguration{Synchronous: &SynchronousReplicaConfiguration{Method: "first", Number: 2}}}
	if lo, hi, m := s.SyncBounds(); lo != 2 || hi != 2 || m != "first" {
		t.Errorf("required: %d %d %s", lo, hi, m)
	}
	s.PostgresConfiguration.Synchronous.DataDurability = "preferred"
	if lo, hi, _ := s.SyncBounds(); lo != 0 || hi != 2 {
		t.Errorf("preferred: %d %d", lo, hi)
	}
}

func ptrTo[T any](v T) *T { return &v }
