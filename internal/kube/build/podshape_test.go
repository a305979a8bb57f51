package build

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/pgward/pgward/api/v1"
)

// shaped is the sample with every pod-shape field set, validated.
func shaped(t *testing.T) *v1.Cluster {
	t.Helper()
	c := sample(t)
	s := &c.Spec
	s.Affinity = &v1.AffinityConfiguration{
		TopologyKey: "topology.kubernetes.io/zone", PodAntiAffinityType: "required",
		NodeSelector: map[string]string{"disk": "ssd"},
		Tolerations:  []corev1.Toleration{{Key: "db", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
		NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
			MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "arch", Operator: corev1.NodeSelectorOpIn, Values: []string{"amd64"}}},
		}}}},
		AdditionalPodAntiAffinity: &corev1.PodAntiAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
			Weight: 5, PodAffinityTerm: corev1.PodAffinityTerm{TopologyKey: corev1.LabelHostname, LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "noisy"}}},
		}}},
	}
	s.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: "topology.kubernetes.io/zone", WhenUnsatisfiable: corev1.ScheduleAnyway}}
	s.PriorityClassName, s.SchedulerName = "db-critical", "my-scheduler"
	s.Resources = &corev1.ResourceRequirements{
		Requests: corev1.ResourceList{"cpu": resource.MustParse("500m"), "memory": resource.MustParse("512Mi")},
		Limits:   corev1.ResourceList{"memory": resource.MustParse("1Gi")},
	}
	s.Env = []corev1.EnvVar{{Name: "APP_MODE", Value: "ha"}}
	s.EnvFrom = []corev1.EnvFromSource{{Prefix: "APP_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}}
	s.InheritedMetadata = &v1.EmbeddedObjectMetadata{Labels: map[string]string{"team": "db"}, Annotations: map[string]string{"example.com/owner": "dba"}}
	s.ServiceAccountTemplate = &v1.ServiceAccountTemplate{Metadata: v1.EmbeddedObjectMetadata{
		Labels: map[string]string{"sa": "yes"}, Annotations: map[string]string{"iam.gke.io/gcp-service-account": "pg@p.iam.gserviceaccount.com"}}}
	s.PodSecurityContext = &corev1.PodSecurityContext{SupplementalGroups: []int64{1000}, FSGroupChangePolicy: new(corev1.FSGroupChangeAlways)}
	s.SecurityContext = &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"NET_BIND_SERVICE"}}}
	s.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: new("pg.json")}
	s.Probes = &v1.ProbesConfiguration{
		Startup:   &v1.ProbeWithStrategy{Probe: v1.Probe{FailureThreshold: 30, PeriodSeconds: 5}},
		Liveness:  &v1.LivenessProbe{Probe: v1.Probe{TimeoutSeconds: 2, TerminationGracePeriodSeconds: new(int64(20))}},
		Readiness: &v1.ProbeWithStrategy{Probe: v1.Probe{InitialDelaySeconds: 3}},
	}
	s.ProjectedVolumeTemplate = &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
		{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}},
	}}
	s.StorageConfiguration.PersistentVolumeClaimTemplate = &corev1.PersistentVolumeClaimSpec{
		AccessModes:               []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOncePod},
		StorageClassName:          new("standard"),
		VolumeAttributesClassName: new("gold"),
	}
	s.EnablePDB = new(false)
	v1.SetDefaults(c)
	if errs := c.Validate(); len(errs) > 0 {
		t.Fatal(errs.ToAggregate())
	}
	return c
}

func TestPodShape(t *testing.T) {
	c := shaped(t)
	pod := Pod(c, "cluster-example-1", RolePrimary, testOpts)
	ps := pod.Spec

	// Placement.
	aa := ps.Affinity.PodAntiAffinity
	if len(aa.RequiredDuringSchedulingIgnoredDuringExecution) != 1 || aa.RequiredDuringSchedulingIgnoredDuringExecution[0].TopologyKey != "topology.kubernetes.io/zone" ||
		aa.RequiredDuringSchedulingIgnoredDuringExecution[0].LabelSelector.MatchLabels[ClusterLabel] != c.Name {
		t.Errorf("required anti-affinity = %+v", aa.RequiredDuringSchedulingIgnoredDuringExecution)
	}
	if len(aa.PreferredDuringSchedulingIgnoredDuringExecution) != 1 || aa.PreferredDuringSchedulingIgnoredDuringExecution[0].Weight != 5 {
		t.Errorf("the additional anti-affinity term is missing: %+v", aa.PreferredDuringSchedulingIgnoredDuringExecution)
	}
	if ps.Affinity.NodeAffinity == nil || ps.NodeSelector["disk"] != "ssd" || len(ps.Tolerations) != 1 || ps.Tolerations[0].Key != "db" {
		t.Errorf("node placement = %+v %v %v", ps.Affinity.NodeAffinity, ps.NodeSelector, ps.Tolerations)
	}
	if len(ps.TopologySpreadConstraints) != 1 || ps.TopologySpreadConstraints[0].LabelSelector.MatchLabels[ClusterLabel] != c.Name {
		t.Errorf("spread constraints = %+v (a missing selector selects the cluster's pods)", ps.TopologySpreadConstraints)
	}
	if ps.PriorityClassName != "db-critical" || ps.SchedulerName != "my-scheduler" {
		t.Errorf("priority %q scheduler %q", ps.PriorityClassName, ps.SchedulerName)
	}

	// Security: the user's fields merged, pgward's kept.
	psc := ps.SecurityContext
	if *psc.RunAsUser != 26 || *psc.RunAsGroup != 26 || *psc.FSGroup != 26 || !*psc.RunAsNonRoot ||
		!slices.Equal(psc.SupplementalGroups, []int64{1000}) || *psc.FSGroupChangePolicy != corev1.FSGroupChangeAlways ||
		psc.SeccompProfile.Type != corev1.SeccompProfileTypeLocalhost || *psc.SeccompProfile.LocalhostProfile != "pg.json" {
		t.Errorf("pod security context = %+v", psc)
	}
	ctr := ps.Containers[0]
	sc := ctr.SecurityContext
	if *sc.Privileged || *sc.AllowPrivilegeEscalation || !*sc.ReadOnlyRootFilesystem || !*sc.RunAsNonRoot || *sc.RunAsUser != 26 ||
		!slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || !slices.Equal(sc.Capabilities.Add, []corev1.Capability{"NET_BIND_SERVICE"}) ||
		sc.SeccompProfile.Type != corev1.SeccompProfileTypeLocalhost {
		t.Errorf("container security context = %+v", sc)
	}

	// The container.
	if ctr.Resources.Requests.Cpu().String() != "500m" || ctr.Resources.Limits.Memory().String() != "1Gi" {
		t.Errorf("resources = %+v", ctr.Resources)
	}
	if len(ctr.Env) != 2 || ctr.Env[0].Name != "APP_MODE" || ctr.Env[1].Name != "HOME" || ctr.Env[1].Value != TmpDir {
		t.Errorf("env = %+v (the user's, then pgward's, which wins a duplicate)", ctr.Env)
	}
	if len(ctr.EnvFrom) != 1 || ctr.EnvFrom[0].Prefix != "APP_" {
		t.Errorf("envFrom = %+v", ctr.EnvFrom)
	}
	st, lv, rd := ctr.StartupProbe, ctr.LivenessProbe, ctr.ReadinessProbe
	if st.FailureThreshold != 30 || st.PeriodSeconds != 5 || st.TimeoutSeconds != 1 || st.HTTPGet.Path != "/healthz" {
		t.Errorf("startup probe = %+v", st)
	}
	if lv.TimeoutSeconds != 2 || lv.FailureThreshold != 3 || *lv.TerminationGracePeriodSeconds != 20 || lv.HTTPGet.Path != "/healthz" {
		t.Errorf("liveness probe = %+v", lv)
	}
	if rd.InitialDelaySeconds != 3 || rd.PeriodSeconds != 2 || rd.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness probe = %+v", rd)
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range ctr.VolumeMounts {
		mounts[m.MountPath] = m
	}
	if m, ok := mounts[v1.ProjectedVolumeMount]; !ok || !m.ReadOnly || m.Name != volProjected {
		t.Errorf("projected mount = %+v", m)
	}
	if m := mounts[DataMount]; m.Name != volData {
		t.Errorf("the data volume moved: %+v", mounts)
	}
	vol := ps.Volumes[len(ps.Volumes)-1]
	if vol.Name != volProjected || vol.Projected == nil || vol.Projected.Sources[0].ConfigMap.Name != "cfg" {
		t.Errorf("projected volume = %+v", vol)
	}

	// Metadata: inherited on every object, pgward's labels kept.
	if pod.Labels["team"] != "db" || pod.Annotations["example.com/owner"] != "dba" || pod.Labels[RoleLabel] != RolePrimary || pod.Labels[ClusterLabel] != c.Name {
		t.Errorf("pod metadata = %v %v", pod.Labels, pod.Annotations)
	}
	pvc, err := PVC(c, "cluster-example-1")
	if err != nil {
		t.Fatal(err)
	}
	if pvc.Labels["team"] != "db" || pvc.Annotations["example.com/owner"] != "dba" {
		t.Errorf("PVC metadata = %v %v", pvc.Labels, pvc.Annotations)
	}
	for _, s := range Services(c, InstanceName(c, 1)) {
		if s.Labels["team"] != "db" || s.Annotations["example.com/owner"] != "dba" {
			t.Errorf("service %s metadata = %v %v", s.Name, s.Labels, s.Annotations)
		}
		if _, ok := s.Spec.Selector["team"]; ok {
			t.Errorf("service %s selects by an inherited label: %v", s.Name, s.Spec.Selector)
		}
	}
	sa := ServiceAccount(c)
	if sa.Labels["sa"] != "yes" || sa.Labels["team"] != "db" || sa.Labels[ClusterLabel] != c.Name ||
		sa.Annotations["iam.gke.io/gcp-service-account"] == "" || sa.Annotations["example.com/owner"] != "dba" {
		t.Errorf("service account metadata = %v %v", sa.Labels, sa.Annotations)
	}

	// The PVC: the template, with size and class.
	if !slices.Equal(pvc.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOncePod}) ||
		*pvc.Spec.StorageClassName != "standard" || *pvc.Spec.VolumeAttributesClassName != "gold" ||
		pvc.Spec.Resources.Requests.Storage().String() != "1Gi" {
		t.Errorf("PVC spec = %+v", pvc.Spec)
	}
	if c.Spec.StorageConfiguration.PersistentVolumeClaimTemplate.Resources.Requests != nil {
		t.Error("building the PVC changed the template")
	}

	// The instances' copy of the spec holds none of it.
	m, err := ManifestFor(c)
	if err != nil {
		t.Fatal(err)
	}
	unshaped := sample(t)
	unshaped.Spec.StorageConfiguration.StorageClass = new("standard") // taken from the template: storage, not pod shape
	plain, err := ManifestFor(unshaped)
	if err != nil {
		t.Fatal(err)
	}
	if string(m) != string(plain) {
		t.Errorf("the instances' manifest carries pod-shape fields:\n%s\nwant\n%s", m, plain)
	}

	// enablePDB: false.
	if pdbs := PodDisruptionBudgets(c); len(pdbs) != 0 {
		t.Errorf("enablePDB false, got %d budgets", len(pdbs))
	}
}

// TestPodShapeDefaults: without the fields, pgward's own shape, as
// CloudNativePG's defaults: preferred anti-affinity on the node, budgets.
func TestPodShapeDefaults(t *testing.T) {
	c := sample(t)
	pod := Pod(c, "cluster-example-1", RoleReplica, testOpts)
	aa := pod.Spec.Affinity.PodAntiAffinity
	if len(aa.PreferredDuringSchedulingIgnoredDuringExecution) != 1 || aa.PreferredDuringSchedulingIgnoredDuringExecution[0].Weight != 100 ||
		aa.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.TopologyKey != corev1.LabelHostname || aa.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		t.Errorf("anti-affinity = %+v", aa)
	}
	if pod.Annotations != nil || pod.Spec.NodeSelector != nil || pod.Spec.Tolerations != nil {
		t.Errorf("pod = %+v", pod.ObjectMeta)
	}
	if n := len(PodDisruptionBudgets(c)); n != 2 {
		t.Errorf("%d budgets, want 2", n)
	}
	c.Spec.Affinity = &v1.AffinityConfiguration{EnablePodAntiAffinity: new(false)}
	if a := Pod(c, "cluster-example-1", RoleReplica, testOpts).Spec.Affinity; a != nil {
		t.Errorf("anti-affinity off, affinity = %+v", a)
	}
}

// TestProbeStrategy: probes' type streaming points the startup and
// readiness probes at /readyz with the bound in the query string the
// instance manager reads (instanceapi.ParseStreaming); type query at
// /readyz alone; no type keeps pgward's paths.
func TestProbeStrategy(t *testing.T) {
	c := sample(t)
	lag := resource.MustParse("16Mi")
	c.Spec.Probes = &v1.ProbesConfiguration{
		Startup:   &v1.ProbeWithStrategy{Type: v1.ProbeStrategyStreaming, MaximumLag: &lag},
		Readiness: &v1.ProbeWithStrategy{Type: v1.ProbeStrategyStreaming},
	}
	ctr := instanceContainer(Options{})
	tuneProbes(c, &ctr)
	if got, want := ctr.StartupProbe.HTTPGet.Path, "/readyz?maximumLag=16777216&type=streaming"; got != want {
		t.Errorf("startup path = %q, want %q", got, want)
	}
	if got, want := ctr.ReadinessProbe.HTTPGet.Path, "/readyz?type=streaming"; got != want {
		t.Errorf("readiness path = %q, want %q", got, want)
	}
	c.Spec.Probes = &v1.ProbesConfiguration{Startup: &v1.ProbeWithStrategy{Type: v1.ProbeStrategyQuery}, Readiness: &v1.ProbeWithStrategy{}}
	ctr = instanceContainer(Options{})
	tuneProbes(c, &ctr)
	if ctr.StartupProbe.HTTPGet.Path != "/readyz" || ctr.ReadinessProbe.HTTPGet.Path != "/readyz" || ctr.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("paths = %q %q %q", ctr.StartupProbe.HTTPGet.Path, ctr.ReadinessProbe.HTTPGet.Path, ctr.LivenessProbe.HTTPGet.Path)
	}
}
