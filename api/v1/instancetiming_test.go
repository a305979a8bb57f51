package v1

import (
	"strings"
	"testing"
	"time"
)

// TestValidateInstanceTiming loads CloudNativePG's timing, logging,
// ephemeral volume and image id fields from YAML, as a user's manifest
// brings them, and checks each is accepted or refused naming the field.
func TestValidateInstanceTiming(t *testing.T) {
	for _, tc := range []struct {
		name, spec string
		wantError  string // "" = valid
	}{
		{"none set", ``, ""},
		{"CloudNativePG's defaults written out", "startDelay: 3600\nstopDelay: 1800\nsmartShutdownTimeout: 180\nlivenessProbeTimeout: 30\nlogLevel: info\npostgresUID: 26\npostgresGID: 26", ""},
		{"cluster-example-full's values", "startDelay: 300\nstopDelay: 300", ""},
		{"smart leaving exactly 15 s", "stopDelay: 60\nsmartShutdownTimeout: 45", ""},
		{"smart 0: fast at once", "stopDelay: 20\nsmartShutdownTimeout: 0", ""},
		{"smart leaving 14 s", "stopDelay: 60\nsmartShutdownTimeout: 46", "spec.smartShutdownTimeout: Invalid value: 46: must leave at least 15 s of stopDelay (60 s)"},
		{"smart equal to stopDelay", "stopDelay: 300\nsmartShutdownTimeout: 300", "spec.smartShutdownTimeout: Invalid value: 300"},
		{"smart CloudNativePG's default against pgward's stopDelay", "smartShutdownTimeout: 180", "must leave at least 15 s of stopDelay (180 s)"},
		{"smart negative", "smartShutdownTimeout: -1", "spec.smartShutdownTimeout: Invalid value: -1: must not be negative"},
		{"stopDelay too short", "stopDelay: 4", "spec.stopDelay: Invalid value: 4: must be between 5 and 86400 seconds"},
		{"stopDelay negative", "stopDelay: -10", "spec.stopDelay: Invalid value: -10"},
		{"startDelay too long", "startDelay: 86401", "spec.startDelay: Invalid value: 86401"},
		{"startDelay negative", "startDelay: -1", "spec.startDelay: Invalid value: -1"},
		{"startDelay beside the startup probe's failureThreshold", "startDelay: 600\nprobes:\n  startup:\n    failureThreshold: 10",
			"spec.startDelay: Forbidden: spec.probes.startup.failureThreshold is set too"},
		{"the startup probe's failureThreshold alone", "probes:\n  startup:\n    failureThreshold: 10", ""},
		{"livenessProbeTimeout zero", "livenessProbeTimeout: 0", "spec.livenessProbeTimeout: Invalid value: 0: must be between 1 and 3600"},
		{"livenessProbeTimeout beside the liveness probe's failureThreshold", "livenessProbeTimeout: 60\nprobes:\n  liveness:\n    failureThreshold: 4",
			"spec.livenessProbeTimeout: Forbidden: spec.probes.liveness.failureThreshold is set too"},
		{"every log level", "logLevel: trace", ""},
		{"log level unknown", "logLevel: verbose", `spec.logLevel: Unsupported value: "verbose"`},
		{"postgresUID of another image", "postgresUID: 999", "spec.postgresUID: Invalid value: 999: must be 26"},
		{"postgresUID root", "postgresUID: -1", "spec.postgresUID: Invalid value: -1: must be 26"},
		{"postgresGID root", "postgresGID: 0", ""}, // 0 is "not set": the image's 26
		{"postgresGID other", "postgresGID: 1000", "spec.postgresGID: Invalid value: 1000: must be 26"},
		{"size limits", "ephemeralVolumesSizeLimit:\n  shm: 256Mi\n  temporaryData: 1Gi", ""},
		{"size limit zero", "ephemeralVolumesSizeLimit:\n  shm: \"0\"", "spec.ephemeralVolumesSizeLimit.shm: Invalid value: \"0\": must be positive"},
		{"an ephemeral claim", ephemeral(""), ""},
		{"an ephemeral claim and temporaryData", ephemeral("") + "\nephemeralVolumesSizeLimit:\n  temporaryData: 1Gi",
			"spec.ephemeralVolumesSizeLimit.temporaryData: Forbidden: spec.ephemeralVolumeSource replaces the scratch volume"},
		{"an ephemeral claim filled from a snapshot", ephemeral("      dataSource:\n        kind: VolumeSnapshot\n        name: someone-elses\n        apiGroup: snapshot.storage.k8s.io"),
			"spec.ephemeralVolumeSource.volumeClaimTemplate.spec.dataSource: Forbidden: a scratch volume must start empty"},
		{"an ephemeral claim bound to a chosen volume", ephemeral("      volumeName: pv-with-data"),
			"spec.ephemeralVolumeSource.volumeClaimTemplate.spec.volumeName: Forbidden"},
		{"an ephemeral claim selecting volumes", ephemeral("      selector:\n        matchLabels:\n          data: old"),
			"spec.ephemeralVolumeSource.volumeClaimTemplate.spec.selector: Forbidden"},
		{"an ephemeral block volume", ephemeral("      volumeMode: Block"),
			`spec.ephemeralVolumeSource.volumeClaimTemplate.spec.volumeMode: Unsupported value: "Block"`},
		{"an ephemeral claim shared between pods", strings.Replace(ephemeral(""), "ReadWriteOnce", "ReadWriteMany", 1),
			`spec.ephemeralVolumeSource.volumeClaimTemplate.spec.accessModes[0]: Unsupported value: "ReadWriteMany"`},
		{"an ephemeral claim without a size", strings.Replace(ephemeral(""), "storage: 1Gi", "cpu: \"1\"", 1),
			"spec.ephemeralVolumeSource.volumeClaimTemplate.spec.resources.requests.storage: Required value"},
		{"an ephemeral claim with a name", strings.Replace(ephemeral(""), "    spec:\n", "    metadata:\n      name: fixed\n    spec:\n", 1),
			"spec.ephemeralVolumeSource.volumeClaimTemplate.metadata: Forbidden: not supported"},
		{"an ephemeral claim with labels", strings.Replace(ephemeral(""), "    spec:\n", "    metadata:\n      labels:\n        team: db\n    spec:\n", 1),
			"spec.ephemeralVolumeSource.volumeClaimTemplate.metadata: Forbidden: not supported"},
		{"switchoverDelay", "switchoverDelay: 3600", ""},
		{"switchoverDelay negative", "switchoverDelay: -1", "spec.switchoverDelay: Invalid value: -1: must be between 1 and 86400 seconds"},
		{"ALTER SYSTEM off", "postgresql:\n  enableAlterSystem: false", ""},
		{"ALTER SYSTEM on", "postgresql:\n  enableAlterSystem: true", "spec.postgresql.enableAlterSystem: Forbidden: pgward's configuration is the manifest's"},
		{"an ephemeral source without a claim", "ephemeralVolumeSource: {}",
			"spec.ephemeralVolumeSource.volumeClaimTemplate: Required value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := minimalManifest + "  storage:\n    size: 1Gi\n"
			for _, line := range strings.Split(tc.spec, "\n") {
				if line != "" {
					doc += "  " + line + "\n"
				}
			}
			_, err := LoadAndValidate([]byte(doc))
			switch {
			case tc.wantError == "" && err != nil:
				t.Fatalf("refused: %v\n%s", err, doc)
			case tc.wantError != "" && (err == nil || !strings.Contains(err.Error(), tc.wantError)):
				t.Fatalf("got %v, want an error containing %q", err, tc.wantError)
			case err != nil && strings.Contains(err.Error(), "does not support yet"):
				t.Fatalf("refused as not supported: %v", err)
			}
		})
	}
}

// ephemeral is an ephemeralVolumeSource whose claim spec ends with extra.
func ephemeral(extra string) string {
	s := `ephemeralVolumeSource:
  volumeClaimTemplate:
    spec:
      accessModes: [ReadWriteOnce]
      storageClassName: fast-local
      resources:
        requests:
          storage: 1Gi`
	if extra != "" {
		s += "\n" + extra
	}
	return s
}

func TestInstanceTimingDefaults(t *testing.T) {
	var s ClusterSpec
	if s.StartDelay() != time.Hour || s.StopDelay() != 180*time.Second || s.SmartShutdown() != 0 || s.LivenessTimeout() != 30*time.Second {
		t.Fatalf("defaults: start %v stop %v smart %v liveness %v", s.StartDelay(), s.StopDelay(), s.SmartShutdown(), s.LivenessTimeout())
	}
	smart, live := int32(60), int32(45)
	s = ClusterSpec{MaxStartDelay: 300, MaxStopDelay: 600, SmartShutdownTimeout: &smart, LivenessProbeTimeout: &live}
	if s.StartDelay() != 300*time.Second || s.StopDelay() != 600*time.Second || s.SmartShutdown() != time.Minute || s.LivenessTimeout() != 45*time.Second {
		t.Fatalf("set: start %v stop %v smart %v liveness %v", s.StartDelay(), s.StopDelay(), s.SmartShutdown(), s.LivenessTimeout())
	}
}
