package local

import (
	"testing"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instanceapi"
)

// TestDesignatedUp: `up` waits for a replica cluster's designated primary
// to stream from its source (or, following an object store only, to be
// ready), and never counts it once the cluster is promoted.
func TestDesignatedUp(t *testing.T) {
	streaming := &instanceapi.WALReceiver{Status: "streaming"}
	cluster := func(replica bool, conn bool) *v1.Cluster {
		c := &v1.Cluster{}
		c.Name = "rep"
		ec := v1.ExternalCluster{Name: "src", BarmanObjectStore: &v1.BarmanObjectStoreConfiguration{}}
		if conn {
			ec.ConnectionParameters = map[string]string{"host": "src"}
		}
		c.Spec.ExternalClusters = []v1.ExternalCluster{ec}
		enabled := replica
		c.Spec.Replica = &v1.ReplicaClusterConfiguration{Enabled: &enabled, Source: "src"}
		return c
	}
	head := func(wr *instanceapi.WALReceiver) *instanceapi.Status {
		return &instanceapi.Status{Ready: true, Designated: true, Role: instanceapi.RoleReplica, WALReceiver: wr}
	}
	for _, tc := range []struct {
		name   string
		c      *v1.Cluster
		st     *instanceapi.Status
		target bool
		want   bool
	}{
		{"streaming designated primary", cluster(true, true), head(streaming), true, true},
		{"not streaming yet", cluster(true, true), head(nil), true, false},
		{"object store only: ready is enough", cluster(true, false), head(nil), true, true},
		{"not the target", cluster(true, true), head(streaming), false, false},
		{"promoted: a designated primary is not up", cluster(false, true), head(streaming), true, false},
		{"no answer", cluster(true, true), nil, true, false},
		{"not designated", cluster(true, true), &instanceapi.Status{Ready: true, Role: instanceapi.RoleReplica, WALReceiver: streaming}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := designatedUp(tc.c, tc.st, tc.target); got != tc.want {
				t.Errorf("designatedUp = %v, want %v", got, tc.want)
			}
		})
	}
}
