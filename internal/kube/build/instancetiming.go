package build

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	v1 "github.com/pgward/pgward/api/v1"
)

// volShm is the shared memory volume, made only with
// spec.ephemeralVolumesSizeLimit.shm: without it the container runtime's
// own /dev/shm (64Mi by default) serves.
const (
	volShm   = "shm"
	shmMount = "/dev/shm"
)

// defaultTmpSize bounds /tmp when spec.ephemeralVolumesSizeLimit does not.
var defaultTmpSize = resource.MustParse("256Mi")

// probeLimits sizes the probes from CloudNativePG's timings, as it does:
// the startup probe fails after spec.startDelay (unless the user gave
// probes.startup.failureThreshold, which validation refuses beside an
// explicit startDelay), the liveness probe after spec.livenessProbeTimeout
// when set. Each is the time over the probe's period, rounded up.
func probeLimits(c *v1.Cluster, ctr *corev1.Container) {
	if pc := c.Spec.Probes; pc == nil || pc.Startup == nil || pc.Startup.FailureThreshold == 0 {
		ctr.StartupProbe.FailureThreshold = failureThreshold(c.Spec.StartDelay(), ctr.StartupProbe.PeriodSeconds)
	}
	if c.Spec.LivenessProbeTimeout != nil {
		ctr.LivenessProbe.FailureThreshold = failureThreshold(c.Spec.LivenessTimeout(), ctr.LivenessProbe.PeriodSeconds)
	}
}

// failureThreshold is how many failed probes every periodSeconds take d.
func failureThreshold(d time.Duration, periodSeconds int32) int32 {
	if periodSeconds <= 0 {
		periodSeconds = 10 // Kubernetes' default period
	}
	secs := int64(d / time.Second)
	n := (secs + int64(periodSeconds) - 1) / int64(periodSeconds)
	return int32(max(n, 1)) // #nosec G115 -- validation bounds the timings to a day
}

// scratchVolume is /tmp, the pod's one writable scratch place outside the
// data volume: an emptyDir bounded by ephemeralVolumesSizeLimit's
// temporaryData (256Mi by default), or the user's generic ephemeral
// volume, whose claim validation keeps fresh and empty.
func scratchVolume(c *v1.Cluster) corev1.Volume {
	if e := c.Spec.EphemeralVolumeSource; e != nil {
		return corev1.Volume{Name: volTmp, VolumeSource: corev1.VolumeSource{Ephemeral: e.DeepCopy()}}
	}
	size := defaultTmpSize
	if l := c.Spec.EphemeralVolumesSizeLimit; l != nil && l.TemporaryData != nil {
		size = l.TemporaryData.DeepCopy()
	}
	return corev1.Volume{Name: volTmp, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: &size}}}
}

// shmVolume is /dev/shm in memory with ephemeralVolumesSizeLimit's shm as
// its limit, when given.
func shmVolume(c *v1.Cluster) (*corev1.Volume, *corev1.VolumeMount) {
	l := c.Spec.EphemeralVolumesSizeLimit
	if l == nil || l.Shm == nil {
		return nil, nil
	}
	size := l.Shm.DeepCopy()
	return &corev1.Volume{Name: volShm, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
			Medium: corev1.StorageMediumMemory, SizeLimit: &size,
		}}},
		&corev1.VolumeMount{Name: volShm, MountPath: shmMount}
}
