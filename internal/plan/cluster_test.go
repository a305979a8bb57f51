package plan

import (
	"testing"

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
