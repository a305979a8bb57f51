package plan

import (
	"testing"
	"time"

	v1 "github.com/pgward/pgward/api/v1"
)

func TestSpecFromCluster(t *testing.T) {
	c := &v1.Cluster{Spec: v1.ClusterSpec{Instances: 3, MinSyncReplicas: 1, MaxSyncReplicas: 2}}
	c.Name = "pg"
	s, err := SpecFromCluster(c, []string{"pg-1", "pg-2", "pg-3"})
	if err != nil || len(s.Instances) != 3 || s.MinSyncReplicas != 1 || s.MaxSyncReplicas != 2 {
		t.Fatalf("SpecFromCluster = %+v, %v", s, err)
	}
	if _, err := SpecFromCluster(c, []string{"pg-1"}); err == nil {
		t.Fatal("accepted too few names")
	}
	c.Spec.MaxSyncReplicas = 3
	if _, err := SpecFromCluster(c, []string{"pg-1", "pg-2", "pg-3"}); err == nil {
		t.Fatal("accepted maxSyncReplicas >= instances")
	}
}

func TestSpecFromClusterSynchronousAndDelay(t *testing.T) {
	c := &v1.Cluster{Spec: v1.ClusterSpec{Instances: 3, FailoverDelay: 5,
		PostgresConfiguration: v1.PostgresConfiguration{Synchronous: &v1.SynchronousReplicaConfiguration{Method: "first", Number: 1}}}}
	c.Name = "pg"
	s, err := SpecFromCluster(c, []string{"pg-1", "pg-2", "pg-3"})
	if err != nil || s.MinSyncReplicas != 1 || s.MaxSyncReplicas != 1 || s.SyncMethod != SyncFirst || s.FailoverDelay.Seconds() != 5 {
		t.Fatalf("SpecFromCluster = %+v, %v", s, err)
	}
}

// TestSpecFromClusterSwitchoverDelay: the switchover waits for the old
// primary's shutdown (spec.switchoverDelay), then the usual catch-up time.
func TestSpecFromClusterSwitchoverDelay(t *testing.T) {
	c := &v1.Cluster{Spec: v1.ClusterSpec{Instances: 2}}
	c.Name = "pg"
	names := []string{"pg-1", "pg-2"}
	s, err := SpecFromCluster(c, names)
	if err != nil || s.SwitchoverTimeout != 0 { // Validate's default, DefaultSwitchoverTimeout, applies
		t.Fatalf("left out: %v %v", s.SwitchoverTimeout, err)
	}
	c.Spec.MaxSwitchoverDelay = 120
	if s, err := SpecFromCluster(c, names); err != nil || s.SwitchoverTimeout != 150*time.Second {
		t.Fatalf("switchoverDelay 120: %v %v", s.SwitchoverTimeout, err)
	}
}
