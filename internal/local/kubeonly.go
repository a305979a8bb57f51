package local

import (
	"fmt"

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
	if s.PrimaryLease != nil {
		// Locally there is no API server to hold a Lease, and the
		// controller fences a silent instance by power within ~2 s; its
		// self-fencing time is pgward local up --self-fence.
		notes = append(notes, "note: spec.primaryLease applies on Kubernetes (the primary's Lease); locally the controller fences a silent primary by power, and its self-fencing time is pgward local up --self-fence")
	}
	return notes
}
