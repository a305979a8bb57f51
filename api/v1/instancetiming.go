package v1

import (
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// EphemeralVolumesSizeLimitConfiguration is CloudNativePG's
// spec.ephemeralVolumesSizeLimit: the sizeLimit of a pod's scratch volume
// (/tmp) and of its shared memory (/dev/shm, in memory).
type EphemeralVolumesSizeLimitConfiguration struct {
	// Shm bounds /dev/shm, a memory volume PostgreSQL's parallel queries
	// use (dynamic_shared_memory_type posix); it counts against the
	// container's memory.
	// +optional
	Shm *resource.Quantity `json:"shm,omitempty"`

	// TemporaryData bounds /tmp, the pod's scratch volume (default 256Mi).
	// +optional
	TemporaryData *resource.Quantity `json:"temporaryData,omitempty"`
}

// The defaults of the instance timings. startDelay is CloudNativePG's (and
// what pgward's startup probe always allowed: 360 periods of 10 s).
// stopDelay and smartShutdownTimeout are pgward's own: its pods always had
// 180 s to stop and its managers shut PostgreSQL down fast at once; a
// smart phase by default (CloudNativePG's 180 s of 1800) would hold every
// `local down`, node drain and hibernation for minutes behind one idle
// client session.
const (
	DefaultStartDelaySeconds           = 3600
	DefaultStopDelaySeconds            = 180
	DefaultLivenessProbeTimeoutSeconds = 30
	// MinFastShutdownSeconds is what smartShutdownTimeout must leave of
	// stopDelay: the fast shutdown (a checkpoint, WAL sent to the
	// replicas) and, should it hang, the immediate one.
	MinFastShutdownSeconds = 15
	// ImmediateShutdownReserve is the end of stopDelay kept for the
	// immediate shutdown and the manager's own exit: the fast shutdown
	// gets the rest.
	ImmediateShutdownReserve = 3 * time.Second
)

// StartDelay is how long PostgreSQL may take to accept connections once
// started (spec.startDelay).
func (s *ClusterSpec) StartDelay() time.Duration {
	if s.MaxStartDelay > 0 {
		return time.Duration(s.MaxStartDelay) * time.Second
	}
	return DefaultStartDelaySeconds * time.Second
}

// StopDelay is how long an instance has to shut down when its manager is
// stopped (spec.stopDelay): the pods' grace period.
func (s *ClusterSpec) StopDelay() time.Duration {
	if s.MaxStopDelay > 0 {
		return time.Duration(s.MaxStopDelay) * time.Second
	}
	return DefaultStopDelaySeconds * time.Second
}

// SmartShutdown is the part of StopDelay given to a smart shutdown
// (spec.smartShutdownTimeout; zero: none).
func (s *ClusterSpec) SmartShutdown() time.Duration {
	if t := s.SmartShutdownTimeout; t != nil && *t > 0 {
		return time.Duration(*t) * time.Second
	}
	return 0
}

// SwitchoverDelay is how long a demoted primary's fast shutdown may take
// (spec.switchoverDelay; zero: left out, pgward's defaults apply).
func (s *ClusterSpec) SwitchoverDelay() time.Duration {
	if s.MaxSwitchoverDelay > 0 {
		return time.Duration(s.MaxSwitchoverDelay) * time.Second
	}
	return 0
}

// LivenessTimeout is how long the liveness probe may fail
// (spec.livenessProbeTimeout).
func (s *ClusterSpec) LivenessTimeout() time.Duration {
	if t := s.LivenessProbeTimeout; t != nil && *t > 0 {
		return time.Duration(*t) * time.Second
	}
	return DefaultLivenessProbeTimeoutSeconds * time.Second
}

// LogLevels are spec.logLevel's values, CloudNativePG's.
var LogLevels = []string{"error", "warning", "info", "debug", "trace"}

// KubernetesOnlyInstanceFields names the fields of this file that a
// manifest sets and that shape only pods: `local up` says they apply on
// Kubernetes.
func (s *ClusterSpec) KubernetesOnlyInstanceFields() []string {
	var out []string
	add := func(set bool, name string) {
		if set {
			out = append(out, name)
		}
	}
	add(s.LivenessProbeTimeout != nil, "livenessProbeTimeout")
	add(s.EphemeralVolumeSource != nil, "ephemeralVolumeSource")
	add(s.EphemeralVolumesSizeLimit != nil, "ephemeralVolumesSizeLimit")
	add(s.PostgresUID != 0, "postgresUID")
	add(s.PostgresGID != 0, "postgresGID")
	return out
}

// validateInstanceTiming checks the timings, the log level, the ephemeral
// volumes and the image's ids with CloudNativePG's meaning and pgward's
// limits, naming the field.
func (s *ClusterSpec) validateInstanceTiming(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	between := func(v int64, lo, hi int64, fp *field.Path) {
		if v < lo || v > hi {
			errs = append(errs, field.Invalid(fp, v, fmt.Sprintf("must be between %d and %d seconds", lo, hi)))
		}
	}
	if s.MaxStartDelay != 0 {
		between(int64(s.MaxStartDelay), 1, 86400, p.Child("startDelay"))
	}
	if s.MaxStopDelay != 0 {
		between(int64(s.MaxStopDelay), 5, 86400, p.Child("stopDelay"))
	}
	if s.MaxSwitchoverDelay != 0 {
		between(int64(s.MaxSwitchoverDelay), 1, 86400, p.Child("switchoverDelay"))
	}
	if t := s.SmartShutdownTimeout; t != nil {
		stop := int64(s.StopDelay() / time.Second)
		switch {
		case *t < 0:
			errs = append(errs, field.Invalid(p.Child("smartShutdownTimeout"), *t, "must not be negative"))
		case *t > 0 && stop-int64(*t) < MinFastShutdownSeconds:
			errs = append(errs, field.Invalid(p.Child("smartShutdownTimeout"), *t,
				fmt.Sprintf("must leave at least %d s of stopDelay (%d s) for the fast and immediate shutdowns: lower it or raise stopDelay", MinFastShutdownSeconds, stop)))
		}
	}
	if t := s.LivenessProbeTimeout; t != nil {
		between(int64(*t), 1, 3600, p.Child("livenessProbeTimeout"))
		if pr := s.Probes; pr != nil && pr.Liveness != nil && pr.Liveness.FailureThreshold != 0 {
			errs = append(errs, field.Forbidden(p.Child("livenessProbeTimeout"),
				"spec.probes.liveness.failureThreshold is set too: give the liveness probe's limit once"))
		}
	}
	if s.MaxStartDelay != 0 {
		if pr := s.Probes; pr != nil && pr.Startup != nil && pr.Startup.FailureThreshold != 0 {
			errs = append(errs, field.Forbidden(p.Child("startDelay"),
				"spec.probes.startup.failureThreshold is set too: the startup probe's limit comes from startDelay; give it once"))
		}
	}
	if s.LogLevel != "" && !slices.Contains(LogLevels, s.LogLevel) {
		errs = append(errs, field.NotSupported(p.Child("logLevel"), s.LogLevel, LogLevels))
	}
	errs = append(errs, s.validateEphemeralVolumes(p)...)
	if e := s.PostgresConfiguration.EnableAlterSystem; e != nil && *e {
		errs = append(errs, field.Forbidden(p.Child("postgresql", "enableAlterSystem"),
			"pgward's configuration is the manifest's: an ALTER SYSTEM setting would override it on one instance and travel to new replicas with their copy; set the parameter in spec.postgresql.parameters"))
	}
	if s.PostgresUID != 0 && s.PostgresUID != PostgresUID {
		errs = append(errs, field.Invalid(p.Child("postgresUID"), s.PostgresUID,
			fmt.Sprintf("must be %d: pgward's image runs PostgreSQL as uid %d, the owner of every data volume, and the pods run as no other user", PostgresUID, PostgresUID)))
	}
	if s.PostgresGID != 0 && s.PostgresGID != PostgresGID {
		errs = append(errs, field.Invalid(p.Child("postgresGID"), s.PostgresGID,
			fmt.Sprintf("must be %d: pgward's image's postgres group, the group of every data volume", PostgresGID)))
	}
	return errs
}

// validateEphemeralVolumes keeps the scratch volumes within the restricted
// Pod Security Standard (an ephemeral claim is one of its allowed volume
// types) and gives each pod a fresh, empty file system: a claim filled
// from a snapshot or another claim, or bound to a chosen volume, would put
// someone else's files in the pod's /tmp.
func (s *ClusterSpec) validateEphemeralVolumes(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if l := s.EphemeralVolumesSizeLimit; l != nil {
		lp := p.Child("ephemeralVolumesSizeLimit")
		for name, q := range map[string]*resource.Quantity{"shm": l.Shm, "temporaryData": l.TemporaryData} {
			if q != nil && q.Sign() <= 0 {
				errs = append(errs, field.Invalid(lp.Child(name), q.String(), "must be positive"))
			}
		}
		if l.TemporaryData != nil && s.EphemeralVolumeSource != nil {
			errs = append(errs, field.Forbidden(lp.Child("temporaryData"),
				"spec.ephemeralVolumeSource replaces the scratch volume this would bound: give its size in the claim instead"))
		}
	}
	e := s.EphemeralVolumeSource
	if e == nil {
		return errs
	}
	ep := p.Child("ephemeralVolumeSource", "volumeClaimTemplate")
	t := e.VolumeClaimTemplate
	if t == nil {
		return append(errs, field.Required(ep, "the claim each pod's scratch volume is made from"))
	}
	// Kubernetes names the claim after the pod and deletes it with the
	// pod; pgward's CRD carries no embedded metadata (the API server would
	// drop its labels), so none is accepted rather than lost on the way.
	if !equality.Semantic.DeepEqual(t.ObjectMeta, metav1.ObjectMeta{}) {
		errs = append(errs, field.Forbidden(ep.Child("metadata"), "not supported: give the claim's spec only (spec.inheritedMetadata labels the cluster's objects)"))
	}
	sp := ep.Child("spec")
	spec := t.Spec
	if len(spec.AccessModes) == 0 {
		errs = append(errs, field.Required(sp.Child("accessModes"), "ReadWriteOnce or ReadWriteOncePod"))
	}
	for i, am := range spec.AccessModes {
		if am != corev1.ReadWriteOnce && am != corev1.ReadWriteOncePod {
			errs = append(errs, field.NotSupported(sp.Child("accessModes").Index(i), am, []string{"ReadWriteOnce", "ReadWriteOncePod"}))
		}
	}
	if q, ok := spec.Resources.Requests[corev1.ResourceStorage]; !ok || q.Sign() <= 0 {
		errs = append(errs, field.Required(sp.Child("resources", "requests", "storage"), "the scratch volume's size"))
	}
	if spec.VolumeMode != nil && *spec.VolumeMode != corev1.PersistentVolumeFilesystem {
		errs = append(errs, field.NotSupported(sp.Child("volumeMode"), *spec.VolumeMode, []string{string(corev1.PersistentVolumeFilesystem)}))
	}
	if spec.StorageClassName != nil && *spec.StorageClassName != "" {
		errs = append(errs, dnsErrors(sp.Child("storageClassName"), *spec.StorageClassName, validation.IsDNS1123Subdomain)...)
	}
	if spec.VolumeName != "" {
		errs = append(errs, field.Forbidden(sp.Child("volumeName"), "a scratch volume must be a fresh one for each pod: the claim cannot name a volume"))
	}
	if spec.Selector != nil {
		errs = append(errs, field.Forbidden(sp.Child("selector"), "a scratch volume must be a fresh one for each pod: the claim cannot select existing volumes"))
	}
	if spec.DataSource != nil || spec.DataSourceRef != nil {
		errs = append(errs, field.Forbidden(sp.Child("dataSource"), "a scratch volume must start empty: the claim cannot be filled from a snapshot or another claim"))
	}
	if spec.VolumeAttributesClassName != nil {
		errs = append(errs, field.Forbidden(sp.Child("volumeAttributesClassName"), "not supported for the scratch volume"))
	}
	return errs
}
