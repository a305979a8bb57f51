package local

import (
	"fmt"

	v1 "github.com/pgward/pgward/api/v1"
)

// podShapeNotes says, one line per field the manifest sets, that the
// pod-shape fields apply on Kubernetes only: they place and shape pods,
// volumes and their Kubernetes objects, and locally there are none. The
// instances run as processes of the run-as user, whose privileges the
// local runtime sets itself (docs/security.md), so neither a security
// context nor an environment of the user's reaches them.
func podShapeNotes(c *v1.Cluster) []string {
	var out []string
	for _, f := range c.Spec.PodShapeFields() {
		out = append(out, fmt.Sprintf("note: spec.%s applies on Kubernetes only (pods, volumes and their objects); locally the instances are processes", f))
	}
	return out
}
