package local

import (
	"fmt"
	"strings"

	v1 "github.com/pgward/pgward/api/v1"
)

// kubernetesOnlyNotes say which fields of the manifest apply on Kubernetes
// only, and what stands for them locally: the operand image (there are no
// containers: PostgreSQL is the machine's, binDir) and the Services (none:
// `pgward local uri` lists every instance). Validation still applies to
// them here: an image of another major is refused in both runtimes.
func kubernetesOnlyNotes(c *v1.Cluster, binDir string) []string {
	var notes []string
	s := c.Spec
	switch {
	case s.ImageName != "":
		notes = append(notes, fmt.Sprintf("note: spec.imageName %q applies on Kubernetes; locally PostgreSQL runs from %s (pgward local up --pg-bin)", s.ImageName, binDir))
	case s.ImageCatalogRef != nil:
		notes = append(notes, fmt.Sprintf("note: spec.imageCatalogRef (%s %q) applies on Kubernetes; locally PostgreSQL runs from %s (pgward local up --pg-bin)",
			s.ImageCatalogRef.Kind, s.ImageCatalogRef.Name, binDir))
	}
	if s.ImagePullPolicy != "" || len(s.ImagePullSecrets) > 0 {
		notes = append(notes, "note: spec.imagePullPolicy and spec.imagePullSecrets apply on Kubernetes; locally no image is pulled")
	}
	if s.Managed != nil && s.Managed.Services != nil {
		notes = append(notes, "note: spec.managed.services applies on Kubernetes; locally there are no Services: pgward local uri lists every instance")
	}
	if w := s.WalStorage; w != nil && (w.Size != "" || w.StorageClass != nil) {
		// Locally the WAL directory is beside the data directory, on the
		// state directory's file system (prepare.go:walDir).
		notes = append(notes, "note: spec.walStorage's size and storageClass apply on Kubernetes (a volume per instance); locally the WAL is in instances/<instance>/wal beside the data, without a size limit")
	}
	// resizeInUseVolumes chooses how a PVC grows; locally there are no
	// volumes and nothing to grow (storage.size is not enforced).
	var resize []string
	if s.StorageConfiguration.ResizeInUseVolumes != nil {
		resize = append(resize, "spec.storage.resizeInUseVolumes")
	}
	if s.WalStorage != nil && s.WalStorage.ResizeInUseVolumes != nil {
		resize = append(resize, "spec.walStorage.resizeInUseVolumes")
	}
	for i, t := range s.Tablespaces {
		if t.Storage.ResizeInUseVolumes != nil {
			resize = append(resize, fmt.Sprintf("spec.tablespaces[%d].storage.resizeInUseVolumes", i))
		}
	}
	if len(resize) > 0 {
		notes = append(notes, "note: "+strings.Join(resize, ", ")+" applies on Kubernetes (whether a grown size resizes the PVCs in use); locally there are no volumes to resize: the data is in the state directory, without a size limit")
	}
	if s.PrimaryLease != nil {
		// Locally there is no API server to hold a Lease, and the
		// controller fences a silent instance by power within ~2 s; its
		// self-fencing time is pgward local up --self-fence.
		notes = append(notes, "note: spec.primaryLease applies on Kubernetes (the primary's Lease); locally the controller fences a silent primary by power, and its self-fencing time is pgward local up --self-fence")
	}
	return notes
}

// refuseFailureDomains refuses the failure-domain fields of synchronous
// replication. They are labels of pods and nodes; locally every instance
// runs on this one machine, a single failure domain, so no standby would
// ever be in another: with dataDurability "required" writes would wait
// forever, with "preferred" replication would silently stay asynchronous.
// A note would leave one of those to happen; a refusal says it.
func refuseFailureDomains(c *v1.Cluster) error {
	pc := c.Spec.PostgresConfiguration
	var set []string
	if sy := pc.Synchronous; sy != nil {
		if len(sy.PodFailureDomainKeys) > 0 {
			set = append(set, "spec.postgresql.synchronous.podFailureDomainKeys")
		}
		if len(sy.NodeFailureDomainKeys) > 0 {
			set = append(set, "spec.postgresql.synchronous.nodeFailureDomainKeys")
		}
	}
	if sc := pc.SyncReplicaElectionConstraint; sc != nil && sc.Enabled {
		set = append(set, "spec.postgresql.syncReplicaElectionConstraint")
	}
	if len(set) == 0 {
		return nil
	}
	return fmt.Errorf("%s: chooses synchronous standbys in another failure domain (pod and node labels) than the primary's, on Kubernetes only; locally every instance runs on this machine, one failure domain, so no standby could be chosen (writes would wait forever): remove it for pgward local up",
		strings.Join(set, ", "))
}

// refusePodSelectors refuses spec.podSelectorRefs: they select pods, and
// locally there are none whose addresses pg_hba could name. Accepted, its
// rules would let nobody in, or be taken for host names.
func refusePodSelectors(c *v1.Cluster) error {
	if len(c.Spec.PodSelectorRefs) == 0 {
		return nil
	}
	return fmt.Errorf("spec.podSelectorRefs: pg_hba's ${podselector:NAME} addresses are the IP addresses of Kubernetes pods, resolved by the operator; locally there are no pods: write the clients' addresses or networks (CIDR) in spec.postgresql.pg_hba instead")
}
