package local

import (
	"crypto/sha256"
	"encoding/hex"
	"os"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instanceapi"
)

// refreshReplicaMode takes a live change of spec.replica into the running
// plan: `up` with the replica cluster promoted (replica.enabled: false, or
// replica.primary naming this cluster) rewrites the manifest, and the
// planner then promotes the designated primary. Everything else the plan
// holds cannot change while the cluster runs (checkLiveChange), so only
// the replica mode is taken; `up` has already judged the change with
// ValidateUpdate (a promoted cluster never becomes a replica again). It
// also takes the manifest's digest, which the rolling update waits for
// (plan.Spec.Manifests).
func (h *haLoop) refreshReplicaMode() {
	fi, err := os.Stat(h.layout.ClusterFile()) // #nosec G703 -- the state directory is the user's own choice
	if err != nil || fi.ModTime().Equal(h.manifestTime) {
		return
	}
	h.manifestTime = fi.ModTime()
	data, err := os.ReadFile(h.layout.ClusterFile()) // #nosec G703 -- the state directory is the user's own choice
	if err != nil {
		return
	}
	c, err := v1.LoadAndValidate(data)
	if err != nil {
		h.log.Warn("the stored manifest changed but does not validate; keeping the running plan", "err", err)
		return
	}
	// Every instance reads this one file: a rolling update counts an
	// instance updated once it reports these bytes loaded (each manager
	// looks for a change at its own moment; `up` asks them all to reload,
	// and one that answered late must not be taken for updated).
	sum := sha256.Sum256(data)
	h.spec.Manifests = map[string]string{}
	for _, n := range h.spec.Instances {
		h.spec.Manifests[n] = hex.EncodeToString(sum[:])
	}
	if c.IsReplica() != h.spec.ReplicaCluster {
		h.log.Info("replica mode changed", "replica", c.IsReplica())
		h.spec.ReplicaCluster = c.IsReplica()
	}
}

// replicaNote says, for `up`, what a replica cluster is doing.
func replicaNote(c *v1.Cluster) string {
	if !c.IsReplica() {
		return ""
	}
	return "replica cluster: the designated primary follows " + c.Spec.Replica.Source +
		"; no instance accepts writes until spec.replica is promoted (enabled: false)"
}

// designatedUp reports whether the target of a replica cluster is where
// `up` wants it: the designated primary, ready, and streaming from the
// source when the source can be streamed from (a source with only an
// object store is followed by WAL replay, with no receiver to show).
func designatedUp(c *v1.Cluster, st *instanceapi.Status, target bool) bool {
	if !target || !c.IsReplica() || st == nil || !st.Ready || !st.Designated || st.Role != instanceapi.RoleReplica {
		return false
	}
	if src := c.ReplicaSource(); src != nil && len(src.ConnectionParameters) > 0 {
		return st.WALReceiver != nil && st.WALReceiver.Status == "streaming"
	}
	return true
}
