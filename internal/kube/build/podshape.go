package build

import (
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instanceapi"
)

// volProjected is projectedVolumeTemplate's volume.
const volProjected = "projected"

// inheritedLabels and inheritedAnnotations are spec.inheritedMetadata's,
// copied (validation keeps pgward's own keys out of them).
func inheritedLabels(c *v1.Cluster) map[string]string {
	if m := c.Spec.InheritedMetadata; m != nil {
		return maps.Clone(m.Labels)
	}
	return nil
}

func inheritedAnnotations(c *v1.Cluster) map[string]string {
	if m := c.Spec.InheritedMetadata; m != nil && len(m.Annotations) > 0 {
		return maps.Clone(m.Annotations)
	}
	return nil
}

// withInherited returns the inherited labels with pgward's on top: should
// validation ever let a key through, pgward's value still wins, so the
// Services and budgets keep selecting the right pods.
func withInherited(c *v1.Cluster, own map[string]string) map[string]string {
	out := inheritedLabels(c)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, own)
	return out
}

// affinity is CloudNativePG's: an anti-affinity between the cluster's pods
// over TopologyKey (preferred with weight 100 unless required; on by
// default), the user's additional anti-affinity terms added to it, and the
// user's pod and node affinity.
func affinity(c *v1.Cluster) *corev1.Affinity {
	a := c.Spec.Affinity
	if a == nil {
		a = &v1.AffinityConfiguration{}
	}
	out := &corev1.Affinity{NodeAffinity: a.NodeAffinity.DeepCopy(), PodAffinity: a.AdditionalPodAffinity.DeepCopy()}
	anti := a.AdditionalPodAntiAffinity.DeepCopy()
	if a.EnablePodAntiAffinity == nil || *a.EnablePodAntiAffinity {
		if anti == nil {
			anti = &corev1.PodAntiAffinity{}
		}
		key := a.TopologyKey
		if key == "" {
			key = corev1.LabelHostname
		}
		term := corev1.PodAffinityTerm{
			LabelSelector: &metav1.LabelSelector{MatchLabels: ClusterLabels(c)},
			TopologyKey:   key,
		}
		if a.PodAntiAffinityType == "required" {
			anti.RequiredDuringSchedulingIgnoredDuringExecution = append([]corev1.PodAffinityTerm{term}, anti.RequiredDuringSchedulingIgnoredDuringExecution...)
		} else {
			anti.PreferredDuringSchedulingIgnoredDuringExecution = append([]corev1.WeightedPodAffinityTerm{{Weight: 100, PodAffinityTerm: term}},
				anti.PreferredDuringSchedulingIgnoredDuringExecution...)
		}
	}
	out.PodAntiAffinity = anti
	if out.NodeAffinity == nil && out.PodAffinity == nil && out.PodAntiAffinity == nil {
		return nil
	}
	return out
}

// topologySpread is the user's constraints; one without a label selector
// spreads the cluster's pods, as CloudNativePG does.
func topologySpread(c *v1.Cluster) []corev1.TopologySpreadConstraint {
	var out []corev1.TopologySpreadConstraint
	for _, t := range c.Spec.TopologySpreadConstraints {
		t = *t.DeepCopy()
		if t.LabelSelector == nil {
			t.LabelSelector = &metav1.LabelSelector{MatchLabels: ClusterLabels(c)}
		}
		out = append(out, t)
	}
	return out
}

// podSecurityContext is pgward's, with the user's podSecurityContext and
// seccompProfile merged over it field by field. Validation allows only
// values within the restricted profile and user 26, so the merge cannot
// weaken it; runAsNonRoot is set again after the merge all the same.
func podSecurityContext(c *v1.Cluster) *corev1.PodSecurityContext {
	sc := &corev1.PodSecurityContext{
		RunAsNonRoot:        new(true),
		RunAsUser:           new(PostgresUID),
		RunAsGroup:          new(PostgresGID),
		FSGroup:             new(PostgresGID),
		FSGroupChangePolicy: new(corev1.FSGroupChangeOnRootMismatch),
		SeccompProfile:      &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	if sp := c.Spec.SeccompProfile; sp != nil {
		sc.SeccompProfile = sp.DeepCopy()
	}
	if u := c.Spec.PodSecurityContext; u != nil {
		u = u.DeepCopy()
		sc.SupplementalGroups = u.SupplementalGroups
		setIf(&sc.SupplementalGroupsPolicy, u.SupplementalGroupsPolicy)
		setIf(&sc.FSGroupChangePolicy, u.FSGroupChangePolicy)
		setIf(&sc.SeccompProfile, u.SeccompProfile)
		setIf(&sc.AppArmorProfile, u.AppArmorProfile)
		setIf(&sc.SELinuxOptions, u.SELinuxOptions)
		setIf(&sc.SELinuxChangePolicy, u.SELinuxChangePolicy)
	}
	sc.RunAsNonRoot = new(true)
	return sc
}

// containerSecurityContext is pgward's, with the user's securityContext
// and seccompProfile merged over it; capabilities, when given, replace
// pgward's (validation requires them to drop ALL).
func containerSecurityContext(c *v1.Cluster) *corev1.SecurityContext {
	sc := &corev1.SecurityContext{
		RunAsNonRoot:             new(true),
		RunAsUser:                new(PostgresUID),
		RunAsGroup:               new(PostgresGID),
		AllowPrivilegeEscalation: new(false),
		Privileged:               new(false),
		ReadOnlyRootFilesystem:   new(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	if sp := c.Spec.SeccompProfile; sp != nil {
		sc.SeccompProfile = sp.DeepCopy()
	}
	if u := c.Spec.SecurityContext; u != nil {
		u = u.DeepCopy()
		setIf(&sc.Capabilities, u.Capabilities)
		setIf(&sc.SeccompProfile, u.SeccompProfile)
		setIf(&sc.AppArmorProfile, u.AppArmorProfile)
		setIf(&sc.SELinuxOptions, u.SELinuxOptions)
		setIf(&sc.ProcMount, u.ProcMount)
	}
	return sc
}

func setIf[T any](dst **T, v *T) {
	if v != nil {
		*dst = v
	}
}

// tuneProbe applies the user's timing to one of pgward's probes; a zero
// field keeps pgward's value.
// nodeSelector and tolerations are affinity's.
func nodeSelector(c *v1.Cluster) map[string]string {
	if a := c.Spec.Affinity; a != nil {
		return maps.Clone(a.NodeSelector)
	}
	return nil
}

func tolerations(c *v1.Cluster) []corev1.Toleration {
	if a := c.Spec.Affinity; a != nil {
		return slices.Clone(a.Tolerations)
	}
	return nil
}

func tuneProbe(p *corev1.Probe, u *v1.Probe) {
	if u == nil {
		return
	}
	set := func(dst *int32, v int32) {
		if v != 0 {
			*dst = v
		}
	}
	set(&p.InitialDelaySeconds, u.InitialDelaySeconds)
	set(&p.TimeoutSeconds, u.TimeoutSeconds)
	set(&p.PeriodSeconds, u.PeriodSeconds)
	set(&p.SuccessThreshold, u.SuccessThreshold)
	set(&p.FailureThreshold, u.FailureThreshold)
	if u.TerminationGracePeriodSeconds != nil {
		p.TerminationGracePeriodSeconds = new(*u.TerminationGracePeriodSeconds)
	}
}

func tuneProbes(c *v1.Cluster, ctr *corev1.Container) {
	pc := c.Spec.Probes
	if pc == nil {
		return
	}
	if pc.Startup != nil {
		tuneProbe(ctr.StartupProbe, &pc.Startup.Probe)
		probeStrategy(ctr.StartupProbe, pc.Startup)
	}
	if pc.Liveness != nil {
		tuneProbe(ctr.LivenessProbe, &pc.Liveness.Probe)
	}
	if pc.Readiness != nil {
		tuneProbe(ctr.ReadinessProbe, &pc.Readiness.Probe)
		probeStrategy(ctr.ReadinessProbe, pc.Readiness)
	}
}

// probeStrategy points a startup or readiness probe at what its type asks
// for: "query" is PostgreSQL answering a query (pgward's readiness check);
// "streaming" adds the replica's streaming and lag check, which the
// instance manager reads from the query string (instanceapi.Streaming).
func probeStrategy(pr *corev1.Probe, ps *v1.ProbeWithStrategy) {
	switch ps.Type {
	case v1.ProbeStrategyQuery:
		pr.HTTPGet.Path = instanceapi.PathReadyz
	case v1.ProbeStrategyStreaming:
		_, lag := ps.StreamingLag()
		pr.HTTPGet.Path = instanceapi.PathReadyz + instanceapi.Streaming{MaxLagBytes: lag}.Query()
	}
}

// PDBsEnabled reports whether c wants PodDisruptionBudgets (the default).
func PDBsEnabled(c *v1.Cluster) bool {
	return c.Spec.EnablePDB == nil || *c.Spec.EnablePDB
}

// dropPodShape clears the pod-shape fields from the spec the instances
// read (ManifestFor): they are the operator's business, the instance
// manager has no use for them, and changing a label then rewrites no
// instance's configuration.
func dropPodShape(s *v1.ClusterSpec) {
	s.Affinity, s.TopologySpreadConstraints, s.PriorityClassName, s.SchedulerName = nil, nil, "", ""
	s.Resources, s.Env, s.EnvFrom, s.InheritedMetadata = nil, nil, nil, nil
	s.PodSecurityContext, s.SecurityContext, s.SeccompProfile, s.Probes = nil, nil, nil, nil
	s.ProjectedVolumeTemplate, s.ServiceAccountTemplate, s.EnablePDB = nil, nil, nil
	s.StorageConfiguration.PersistentVolumeClaimTemplate = nil
	s.LivenessProbeTimeout, s.EphemeralVolumeSource, s.EphemeralVolumesSizeLimit = nil, nil, nil
	s.PostgresUID, s.PostgresGID = 0, 0
}
