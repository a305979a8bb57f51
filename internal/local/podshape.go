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
	startup, readiness := streamingChecks(c)
	for _, f := range c.Spec.PodShapeFields() {
		line := fmt.Sprintf("note: spec.%s applies on Kubernetes only (pods, volumes and their objects); locally the instances are processes", f)
		if f == "probes" && (startup != nil || readiness != nil) {
			// The timings are the kubelet's; the streaming check is not.
			line = "note: the timings of spec.probes apply on Kubernetes only; their streaming type and maximumLag apply locally too: up waits for them, status shows them"
		}
		out = append(out, line)
	}
	for _, f := range c.Spec.KubernetesOnlyInstanceFields() {
		out = append(out, fmt.Sprintf("note: spec.%s applies on Kubernetes only (the pods' probes, volumes and user); locally the instances are processes of the run-as user", f))
	}
	return out
}
