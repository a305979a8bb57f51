package kube

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/validation/field"

	v1 "github.com/pgward/pgward/api/v1"
)

// refusePodShapeChanges refuses changing, once the cluster exists, what is
// fixed in its pods and volumes when they are created: a pod's spec cannot
// change, and the operator does not yet replace running pods for a new one
// (rolling updates of the pod template are the Kubernetes HA issue's), so
// the change would reach only the pods created after it. Labels and
// annotations (inheritedMetadata, serviceAccountTemplate) and enablePDB do
// reach the running objects, and the volume size can grow.
func refusePodShapeChanges(o, n *v1.Cluster) field.ErrorList {
	spec := field.NewPath("spec")
	const why = "fixed in the pods when they are created: the operator does not replace running pods for a change of it yet"
	var errs field.ErrorList
	check := func(changed bool, p *field.Path) {
		if changed {
			errs = append(errs, field.Forbidden(p, why))
		}
	}
	oldS, newS := &o.Spec, &n.Spec
	eq := equality.Semantic.DeepEqual
	check(!eq(oldS.Affinity, newS.Affinity), spec.Child("affinity"))
	check(!eq(oldS.TopologySpreadConstraints, newS.TopologySpreadConstraints), spec.Child("topologySpreadConstraints"))
	check(oldS.PriorityClassName != newS.PriorityClassName, spec.Child("priorityClassName"))
	check(oldS.SchedulerName != newS.SchedulerName, spec.Child("schedulerName"))
	check(!eq(oldS.Resources, newS.Resources), spec.Child("resources"))
	check(!eq(oldS.Env, newS.Env), spec.Child("env"))
	check(!eq(oldS.EnvFrom, newS.EnvFrom), spec.Child("envFrom"))
	check(!eq(oldS.PodSecurityContext, newS.PodSecurityContext), spec.Child("podSecurityContext"))
	check(!eq(oldS.SecurityContext, newS.SecurityContext), spec.Child("securityContext"))
	check(!eq(oldS.SeccompProfile, newS.SeccompProfile), spec.Child("seccompProfile"))
	check(!eq(oldS.Probes, newS.Probes), spec.Child("probes"))
	check(!eq(oldS.ProjectedVolumeTemplate, newS.ProjectedVolumeTemplate), spec.Child("projectedVolumeTemplate"))
	// The probes' limits, the grace period and the scratch volumes; the
	// effective values, so that writing out a default is no change.
	// (smartShutdownTimeout and logLevel reach the running managers.)
	check(oldS.StartDelay() != newS.StartDelay(), spec.Child("startDelay"))
	check(oldS.StopDelay() != newS.StopDelay(), spec.Child("stopDelay"))
	check(oldS.LivenessTimeout() != newS.LivenessTimeout() || (oldS.LivenessProbeTimeout == nil) != (newS.LivenessProbeTimeout == nil), spec.Child("livenessProbeTimeout"))
	check(!eq(oldS.EphemeralVolumeSource, newS.EphemeralVolumeSource), spec.Child("ephemeralVolumeSource"))
	check(!eq(oldS.EphemeralVolumesSizeLimit, newS.EphemeralVolumesSizeLimit), spec.Child("ephemeralVolumesSizeLimit"))
	// A claim's spec is immutable but for its size, which storage.size grows.
	ot, nt := pvcTemplateSansSize(oldS.StorageConfiguration.PersistentVolumeClaimTemplate), pvcTemplateSansSize(newS.StorageConfiguration.PersistentVolumeClaimTemplate)
	if !eq(ot, nt) {
		errs = append(errs, field.Forbidden(spec.Child("storage", "pvcTemplate"),
			"fixed in the volumes when they are created (a claim's spec cannot change but for its size, which spec.storage.size grows)"))
	}
	return errs
}

func pvcTemplateSansSize(t *corev1.PersistentVolumeClaimSpec) *corev1.PersistentVolumeClaimSpec {
	if t == nil {
		return nil
	}
	t = t.DeepCopy()
	delete(t.Resources.Requests, corev1.ResourceStorage)
	if len(t.Resources.Requests) == 0 {
		t.Resources.Requests = nil
	}
	return t
}
