package local

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	v1 "github.com/pgward/pgward/api/v1"
)

// TestPodShapeNotes: every pod-shape field a manifest sets gets its own
// note at `local up`, and a manifest without them gets none.
func TestPodShapeNotes(t *testing.T) {
	c := &v1.Cluster{}
	if n := podShapeNotes(c); len(n) != 0 {
		t.Fatalf("no pod-shape field, notes %v", n)
	}
	s := &c.Spec
	s.Affinity = &v1.AffinityConfiguration{}
	s.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{}}
	s.PriorityClassName, s.SchedulerName = "p", "s"
	s.Resources = &corev1.ResourceRequirements{}
	s.Env = []corev1.EnvVar{{Name: "A"}}
	s.EnvFrom = []corev1.EnvFromSource{{}}
	s.InheritedMetadata = &v1.EmbeddedObjectMetadata{}
	s.PodSecurityContext = &corev1.PodSecurityContext{}
	s.SecurityContext = &corev1.SecurityContext{}
	s.SeccompProfile = &corev1.SeccompProfile{}
	s.Probes = &v1.ProbesConfiguration{}
	s.ProjectedVolumeTemplate = &corev1.ProjectedVolumeSource{}
	s.ServiceAccountTemplate = &v1.ServiceAccountTemplate{}
	s.EnablePDB = new(true)
	s.StorageConfiguration.PersistentVolumeClaimTemplate = &corev1.PersistentVolumeClaimSpec{}
	s.Description = "shown, not a pod-shape field"
	s.LivenessProbeTimeout = new(int32(40))
	s.EphemeralVolumeSource = &corev1.EphemeralVolumeSource{}
	s.EphemeralVolumesSizeLimit = &v1.EphemeralVolumesSizeLimitConfiguration{}
	s.PostgresUID, s.PostgresGID = 26, 26
	// The timings and logLevel act locally: no note.
	s.MaxStartDelay, s.MaxStopDelay, s.MaxSwitchoverDelay, s.LogLevel = 60, 60, 60, "debug"
	notes := podShapeNotes(c)
	want := []string{"affinity", "topologySpreadConstraints", "priorityClassName", "schedulerName", "resources", "env", "envFrom",
		"inheritedMetadata", "podSecurityContext", "securityContext", "seccompProfile", "probes", "projectedVolumeTemplate",
		"serviceAccountTemplate", "enablePDB", "storage.pvcTemplate",
		"livenessProbeTimeout", "ephemeralVolumeSource", "ephemeralVolumesSizeLimit", "postgresUID", "postgresGID"}
	if len(notes) != len(want) {
		t.Fatalf("%d notes, want %d:\n%s", len(notes), len(want), strings.Join(notes, "\n"))
	}
	for i, f := range want {
		if !strings.HasPrefix(notes[i], "note: spec."+f+" applies on Kubernetes only") {
			t.Errorf("note %d = %q, want one for spec.%s", i, notes[i], f)
		}
	}
	if slices.ContainsFunc(notes, func(n string) bool { return strings.Contains(n, "description") }) {
		t.Error("description is stored and shown, not noted")
	}
}

// TestProbesStreamingNote: probes with a streaming type are not noted as
// Kubernetes-only, since up and status apply their check locally.
func TestProbesStreamingNote(t *testing.T) {
	c := &v1.Cluster{}
	c.Spec.Probes = &v1.ProbesConfiguration{Readiness: &v1.ProbeWithStrategy{Type: v1.ProbeStrategyStreaming}}
	notes := podShapeNotes(c)
	if len(notes) != 1 || !strings.Contains(notes[0], "apply locally too") {
		t.Errorf("notes = %q", notes)
	}
	startup, readiness := streamingChecks(c)
	if startup != nil || readiness == nil || readiness.MaxLagBytes != nil {
		t.Errorf("checks = %+v, %+v", startup, readiness)
	}
}
