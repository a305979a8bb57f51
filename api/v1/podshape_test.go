package v1

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestValidatePodShape(t *testing.T) {
	q := resource.MustParse
	tests := []struct {
		name   string
		mutate func(s *ClusterSpec)
		want   []string
	}{
		{"every field, valid", func(s *ClusterSpec) {
			s.Description = "orders"
			s.Affinity = &AffinityConfiguration{
				EnablePodAntiAffinity: new(true), TopologyKey: "topology.kubernetes.io/zone", PodAntiAffinityType: "required",
				NodeSelector: map[string]string{"disk": "ssd"},
				Tolerations:  []corev1.Toleration{{Key: "db", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
				AdditionalPodAffinity: &corev1.PodAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
					Weight: 10, PodAffinityTerm: corev1.PodAffinityTerm{TopologyKey: "kubernetes.io/hostname",
						LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
				}}},
			}
			s.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: "topology.kubernetes.io/zone", WhenUnsatisfiable: corev1.ScheduleAnyway}}
			s.PriorityClassName, s.SchedulerName = "db-critical", "default-scheduler"
			s.Resources = &corev1.ResourceRequirements{
				Requests: corev1.ResourceList{"cpu": q("1"), "memory": q("512Mi")},
				Limits:   corev1.ResourceList{"cpu": q("2"), "memory": q("512Mi")},
			}
			s.Env = []corev1.EnvVar{{Name: "APP_MODE", Value: "x"}, {Name: "TZ", Value: "UTC"}}
			s.EnvFrom = []corev1.EnvFromSource{{Prefix: "APP_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}}
			s.InheritedMetadata = &EmbeddedObjectMetadata{Labels: map[string]string{"team": "db"}, Annotations: map[string]string{"example.com/owner": "db"}}
			s.ServiceAccountTemplate = &ServiceAccountTemplate{Metadata: EmbeddedObjectMetadata{Annotations: map[string]string{"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/x"}}}
			s.PodSecurityContext = &corev1.PodSecurityContext{RunAsUser: new(int64(26)), RunAsGroup: new(int64(26)), FSGroup: new(int64(26)),
				RunAsNonRoot: new(true), SupplementalGroups: []int64{1000, 2000}}
			s.SecurityContext = &corev1.SecurityContext{AllowPrivilegeEscalation: new(false), Privileged: new(false), ReadOnlyRootFilesystem: new(true),
				RunAsNonRoot: new(true), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"NET_BIND_SERVICE"}}}
			s.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: new("profiles/pg.json")}
			s.Probes = &ProbesConfiguration{Startup: &ProbeWithStrategy{Probe: Probe{FailureThreshold: 30, PeriodSeconds: 10}, Type: ProbeStrategyStreaming, MaximumLag: new(q("16Mi"))},
				Liveness: &LivenessProbe{Probe{TimeoutSeconds: 3, TerminationGracePeriodSeconds: new(int64(30))}}, Readiness: &ProbeWithStrategy{Probe: Probe{SuccessThreshold: 2}, Type: ProbeStrategyQuery}}
			s.ProjectedVolumeTemplate = &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "extra"}, Items: []corev1.KeyToPath{{Key: "a", Path: "certificate/a"}}}},
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}},
			}}
			s.StorageConfiguration = StorageConfiguration{Size: "1Gi", PersistentVolumeClaimTemplate: &corev1.PersistentVolumeClaimSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, StorageClassName: new("standard"),
				VolumeMode: new(corev1.PersistentVolumeFilesystem),
				Resources:  corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{"storage": q("1Gi")}},
			}}
			s.EnablePDB = new(false)
		}, nil},

		// Security contexts: the whole class of privilege, root, escalation,
		// capabilities beyond restricted, weak seccomp/AppArmor, host tricks.
		{"privileged container", func(s *ClusterSpec) { s.SecurityContext = &corev1.SecurityContext{Privileged: new(true)} },
			[]string{"spec.securityContext.privileged|no privileged containers"}},
		{"privilege escalation", func(s *ClusterSpec) {
			s.SecurityContext = &corev1.SecurityContext{AllowPrivilegeEscalation: new(true)}
		}, []string{"spec.securityContext.allowPrivilegeEscalation|must be false"}},
		{"root user, pod and container", func(s *ClusterSpec) {
			s.PodSecurityContext = &corev1.PodSecurityContext{RunAsUser: new(int64(0)), RunAsNonRoot: new(false)}
			s.SecurityContext = &corev1.SecurityContext{RunAsUser: new(int64(0)), RunAsNonRoot: new(false)}
		}, []string{"spec.podSecurityContext.runAsUser|must be 26", "spec.podSecurityContext.runAsNonRoot|must be true",
			"spec.securityContext.runAsNonRoot|must be true", "spec.securityContext.runAsUser|must be 26"}},
		{"another user, group or fsGroup", func(s *ClusterSpec) {
			s.PodSecurityContext = &corev1.PodSecurityContext{RunAsUser: new(int64(1000)), RunAsGroup: new(int64(0)), FSGroup: new(int64(999))}
			s.SecurityContext = &corev1.SecurityContext{RunAsGroup: new(int64(0))}
		}, []string{"spec.podSecurityContext.runAsUser|1000 is not", "spec.podSecurityContext.runAsGroup|0 is not",
			"spec.podSecurityContext.fsGroup|999 is not", "spec.securityContext.runAsGroup|0 is not"}},
		{"root group as a supplemental group", func(s *ClusterSpec) {
			s.PodSecurityContext = &corev1.PodSecurityContext{SupplementalGroups: []int64{1000, 0}}
		}, []string{"spec.podSecurityContext.supplementalGroups[1]|root group"}},
		{"writable root file system", func(s *ClusterSpec) {
			s.SecurityContext = &corev1.SecurityContext{ReadOnlyRootFilesystem: new(false)}
		}, []string{"spec.securityContext.readOnlyRootFilesystem|must be true"}},
		{"capabilities not dropped, or added beyond restricted", func(s *ClusterSpec) {
			s.SecurityContext = &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"NET_RAW"}, Add: []corev1.Capability{"SYS_ADMIN", "NET_BIND_SERVICE"}}}
		}, []string{"spec.securityContext.capabilities.drop|must include ALL", `spec.securityContext.capabilities.add[0]|"SYS_ADMIN"`}},
		{"unmasked /proc", func(s *ClusterSpec) {
			s.SecurityContext = &corev1.SecurityContext{ProcMount: new(corev1.UnmaskedProcMount)}
		}, []string{"spec.securityContext.procMount|Unsupported value"}},
		{"unconfined seccomp, three ways", func(s *ClusterSpec) {
			s.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}
			s.PodSecurityContext = &corev1.PodSecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}}
			s.SecurityContext = &corev1.SecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}}
		}, []string{"spec.podSecurityContext.seccompProfile.type|Unsupported", "spec.securityContext.seccompProfile.type|Unsupported", "spec.seccompProfile.type|Unsupported"}},
		{"localhost seccomp escaping its directory", func(s *ClusterSpec) {
			s.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: new("../../etc/x")}
		}, []string{"spec.seccompProfile.localhostProfile|without .."}},
		{"unconfined AppArmor", func(s *ClusterSpec) {
			s.SecurityContext = &corev1.SecurityContext{AppArmorProfile: &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeUnconfined}}
		}, []string{"spec.securityContext.appArmorProfile.type|Unsupported"}},
		{"SELinux user, role, spc_t", func(s *ClusterSpec) {
			s.PodSecurityContext = &corev1.PodSecurityContext{SELinuxOptions: &corev1.SELinuxOptions{User: "system_u", Role: "system_r", Type: "spc_t"}}
		}, []string{"spec.podSecurityContext.seLinuxOptions.user", "spec.podSecurityContext.seLinuxOptions.role", "spec.podSecurityContext.seLinuxOptions.type|Unsupported"}},
		{"sysctls and Windows", func(s *ClusterSpec) {
			s.PodSecurityContext = &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{{Name: "kernel.shm_rmid_forced", Value: "1"}}, WindowsOptions: &corev1.WindowsSecurityContextOptions{}}
		}, []string{"spec.podSecurityContext.sysctls", "spec.podSecurityContext.windowsOptions"}},

		// Environment: every reserved class, by exact name and by prefix, any case.
		{"reserved environment names", func(s *ClusterSpec) {
			for _, n := range []string{"PGPASSWORD", "pgsslmode", "PGWARD_LOG_LEVEL", "PGBACKREST_REPO1_CIPHER_TYPE", "LD_PRELOAD", "PATH", "HOME",
				"GCONV_PATH", "GLIBC_TUNABLES", "BASH_ENV", "GODEBUG", "SSL_CERT_FILE", "https_proxy", "OPENSSL_CONF", "KUBERNETES_SERVICE_HOST", "LC_ALL"} {
				s.Env = append(s.Env, corev1.EnvVar{Name: n, Value: "x"})
			}
		}, []string{"spec.env[0].name|PG", "spec.env[1].name|PG", "spec.env[2].name|PG", "spec.env[3].name|PG", "spec.env[4].name|LD_",
			"spec.env[5].name", "spec.env[6].name", "spec.env[7].name", "spec.env[8].name", "spec.env[9].name", "spec.env[10].name",
			"spec.env[11].name", "spec.env[12].name", "spec.env[13].name|OPENSSL_", "spec.env[14].name|KUBERNETES_", "spec.env[15].name|LC_"}},
		{"invalid environment name", func(s *ClusterSpec) { s.Env = []corev1.EnvVar{{Name: "A=B"}} }, []string{"spec.env[0].name"}},
		{"envFrom without a prefix, or one a key could complete", func(s *ClusterSpec) {
			ref := &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}}
			s.EnvFrom = []corev1.EnvFromSource{{SecretRef: ref}, {Prefix: "P", SecretRef: ref}, {Prefix: "PGX_", SecretRef: ref}, {Prefix: "HO", SecretRef: ref},
				{Prefix: "L", SecretRef: ref}, {Prefix: "APP_", SecretRef: ref}}
		}, []string{"spec.envFrom[0].prefix|required", "spec.envFrom[1].prefix", "spec.envFrom[2].prefix|PG", "spec.envFrom[3].prefix|HOME",
			"spec.envFrom[4].prefix"}},
		{"pgward's secrets through env, envFrom and the projected volume", func(s *ClusterSpec) {
			s.Certificates = &CertificatesConfiguration{ServerCASecret: "my-ca", ServerTLSSecret: "my-tls"}
			ref := func(n string) *corev1.EnvVarSource {
				return &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: n}, Key: "ca.key"}}
			}
			s.Env = []corev1.EnvVar{{Name: "A", ValueFrom: ref("pg-ca")}, {Name: "B", ValueFrom: ref("my-ca")}, {Name: "C", ValueFrom: ref("pg-2-config")}, {Name: "D", ValueFrom: ref("mine")}}
			s.EnvFrom = []corev1.EnvFromSource{{Prefix: "X_", SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "pg-controller"}}}}
			s.ProjectedVolumeTemplate = &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "my-ca"}}}}}
		}, []string{"spec.env[0].valueFrom.secretKeyRef.name|pgward's own", "spec.env[1].valueFrom.secretKeyRef.name|CA's key",
			"spec.env[2].valueFrom.secretKeyRef.name|pgward's own", "spec.envFrom[0].secretRef.name|pgward's own",
			"spec.projectedVolumeTemplate.sources[0].secret.name|CA's key"}},
		{"description with a terminal escape", func(s *ClusterSpec) { s.Description = "db\x1b]0;owned\x07" },
			[]string{"spec.description|control"}},
		{"description too long", func(s *ClusterSpec) { s.Description = strings.Repeat("d", MaxDescriptionLength+1) },
			[]string{"spec.description|Too long"}},
		{"envFrom with neither or both sources", func(s *ClusterSpec) {
			s.EnvFrom = []corev1.EnvFromSource{{Prefix: "APP_"}}
		}, []string{"spec.envFrom[0]|exactly one"}},

		{"requests above limits", func(s *ClusterSpec) {
			s.Resources = &corev1.ResourceRequirements{
				Requests: corev1.ResourceList{"cpu": q("3"), "memory": q("2Gi")},
				Limits:   corev1.ResourceList{"cpu": q("2"), "memory": q("1Gi")},
			}
		}, []string{"spec.resources.requests[cpu]|limit (2)", "spec.resources.requests[memory]|limit (1Gi)"}},
		{"negative, unknown and claimed resources", func(s *ClusterSpec) {
			s.Resources = &corev1.ResourceRequirements{Requests: corev1.ResourceList{"cpu": q("-1"), "nvidia.com/gpu": q("1")},
				Claims: []corev1.ResourceClaim{{Name: "gpu"}}}
		}, []string{"spec.resources.requests[cpu]|negative", "spec.resources.requests[nvidia.com/gpu]|Unsupported", "spec.resources.claims"}},

		// Metadata: pgward's keys, Kubernetes' and the security annotations.
		{"reserved inherited labels and annotations", func(s *ClusterSpec) {
			s.InheritedMetadata = &EmbeddedObjectMetadata{
				Labels: map[string]string{"pgward.io/role": "primary", "app.kubernetes.io/managed-by": "me", "team": "db"},
				Annotations: map[string]string{"pgward.io/switchover-to": "x", "container.apparmor.security.beta.kubernetes.io/postgres": "unconfined",
					"seccomp.security.alpha.kubernetes.io/pod": "unconfined", "node.kubernetes.io/x": "y", "cnpg.io/hibernation": "on"},
			}
		}, []string{"spec.inheritedMetadata.labels[app.kubernetes.io/managed-by]|pgward sets", "spec.inheritedMetadata.labels[pgward.io/role]|pgward.io",
			"spec.inheritedMetadata.annotations[cnpg.io/hibernation]", "spec.inheritedMetadata.annotations[container.apparmor.security.beta.kubernetes.io/postgres]|AppArmor",
			"spec.inheritedMetadata.annotations[node.kubernetes.io/x]|Kubernetes", "spec.inheritedMetadata.annotations[pgward.io/switchover-to]",
			"spec.inheritedMetadata.annotations[seccomp.security.alpha.kubernetes.io/pod]|seccomp"}},
		{"reserved service account label", func(s *ClusterSpec) {
			s.ServiceAccountTemplate = &ServiceAccountTemplate{Metadata: EmbeddedObjectMetadata{Labels: map[string]string{"x.pgward.io/a": "b", "bad label": "c"}}}
		}, []string{"spec.serviceAccountTemplate.metadata.labels|name part", "spec.serviceAccountTemplate.metadata.labels[x.pgward.io/a]"}},

		{"affinity values", func(s *ClusterSpec) {
			s.Affinity = &AffinityConfiguration{PodAntiAffinityType: "always", TopologyKey: "not a key",
				Tolerations:               []corev1.Toleration{{Key: "a", Operator: "Maybe", Effect: "Never"}, {Operator: corev1.TolerationOpExists, Value: "x"}},
				AdditionalPodAntiAffinity: &corev1.PodAntiAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{Weight: 0}}},
			}
		}, []string{"spec.affinity.podAntiAffinityType|Unsupported", "spec.affinity.topologyKey", "spec.affinity.tolerations[0].operator", "spec.affinity.tolerations[0].effect",
			"spec.affinity.tolerations[1].value", "spec.affinity.additionalPodAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight",
			"spec.affinity.additionalPodAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm.topologyKey|Required"}},
		{"topology spread", func(s *ClusterSpec) {
			s.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{WhenUnsatisfiable: "Whatever"}}
		}, []string{"spec.topologySpreadConstraints[0].maxSkew", "spec.topologySpreadConstraints[0].topologyKey|Required", "spec.topologySpreadConstraints[0].whenUnsatisfiable"}},
		{"priority class and scheduler names", func(s *ClusterSpec) { s.PriorityClassName, s.SchedulerName = "Bad_Name", "a b" },
			[]string{"spec.priorityClassName", "spec.schedulerName"}},
		{"probe timing", func(s *ClusterSpec) {
			s.Probes = &ProbesConfiguration{Liveness: &LivenessProbe{Probe{PeriodSeconds: -1, SuccessThreshold: 2}},
				Readiness: &ProbeWithStrategy{Probe: Probe{TerminationGracePeriodSeconds: new(int64(5))}}}
		}, []string{"spec.probes.liveness.periodSeconds|negative", "spec.probes.liveness.successThreshold|must be 1", "spec.probes.readiness.terminationGracePeriodSeconds"}},
		{"probe strategy: pg_isready, unknown types, a lag bound without streaming, negative or huge", func(s *ClusterSpec) {
			s.Probes = &ProbesConfiguration{
				Startup:   &ProbeWithStrategy{Type: "pg_isready", MaximumLag: new(q("16Mi"))},
				Readiness: &ProbeWithStrategy{Type: "exec"},
			}
		}, []string{"spec.probes.startup.type|pg_isready", "spec.probes.startup.maximumLag|needs type: streaming", "spec.probes.readiness.type|Unsupported"}},
		{"probe lag bounds out of range", func(s *ClusterSpec) {
			s.Probes = &ProbesConfiguration{
				Startup:   &ProbeWithStrategy{Type: ProbeStrategyStreaming, MaximumLag: new(q("-1"))},
				Readiness: &ProbeWithStrategy{Type: ProbeStrategyStreaming, MaximumLag: new(q("2Ti"))},
			}
		}, []string{"spec.probes.startup.maximumLag|must not be negative", "spec.probes.readiness.maximumLag|at most 1Ti"}},
		{"projected volume: pgward's secrets, tokens, escaping paths", func(s *ClusterSpec) {
			s.ProjectedVolumeTemplate = &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "pg-ca"}}},
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "pg-controller"}}},
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", Audience: "vault"}},
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "c"}, Items: []corev1.KeyToPath{{Key: "k", Path: "../etc/k"}}}},
				{},
			}}
		}, []string{"spec.projectedVolumeTemplate.sources[0].secret.name|pgward's own", "spec.projectedVolumeTemplate.sources[1].secret.name|pgward's own",
			"spec.projectedVolumeTemplate.sources[2].serviceAccountToken", "spec.projectedVolumeTemplate.sources[3].configMap.items[0].path",
			"spec.projectedVolumeTemplate.sources[4]|exactly one"}},
		{"pvcTemplate conflicts with size and class", func(s *ClusterSpec) {
			s.StorageConfiguration = StorageConfiguration{Size: "2Gi", StorageClass: new("fast"), PersistentVolumeClaimTemplate: &corev1.PersistentVolumeClaimSpec{
				StorageClassName: new("standard"),
				Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{"storage": q("1Gi")}, Limits: corev1.ResourceList{"storage": q("1Gi")}},
			}}
		}, []string{"spec.storage.pvcTemplate.resources.requests.storage|conflicts with spec.storage.size 2Gi", "spec.storage.pvcTemplate.resources.limits.storage|less than the size",
			"spec.storage.pvcTemplate.storageClassName|conflicts with spec.storage.storageClass"}},
		{"pvcTemplate not a fresh file system of its own", func(s *ClusterSpec) {
			s.StorageConfiguration = StorageConfiguration{Size: "1Gi", PersistentVolumeClaimTemplate: &corev1.PersistentVolumeClaimSpec{
				VolumeMode: new(corev1.PersistentVolumeBlock), VolumeName: "pv-1",
				DataSource:  &corev1.TypedLocalObjectReference{Kind: "PersistentVolumeClaim", Name: "other-cluster-1"},
				AccessModes: []corev1.PersistentVolumeAccessMode{"ReadOnlyMany"},
			}}
		}, []string{"spec.storage.pvcTemplate.accessModes[0]", "spec.storage.pvcTemplate.volumeMode", "spec.storage.pvcTemplate.volumeName", "spec.storage.pvcTemplate.dataSource"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validCluster()
			tt.mutate(&c.Spec)
			SetDefaults(c)
			checkErrors(t, c.Validate(), tt.want)
		})
	}
}

// TestPVCTemplateGivesSizeAndClass: a template's size and class are the
// cluster's when storage leaves them out, as in CloudNativePG's sample.
func TestPVCTemplateGivesSizeAndClass(t *testing.T) {
	c := validCluster()
	c.Spec.StorageConfiguration.PersistentVolumeClaimTemplate = &corev1.PersistentVolumeClaimSpec{
		StorageClassName: new("standard"),
		Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{"storage": resource.MustParse("3Gi")}},
	}
	SetDefaults(c)
	st := c.Spec.StorageConfiguration
	if st.Size != "3Gi" || st.StorageClass == nil || *st.StorageClass != "standard" {
		t.Fatalf("storage = %+v", st)
	}
	checkErrors(t, c.Validate(), nil)
}

// TestReservedEnvPrefixClosesTheClass: no prefix an envFrom accepts can be
// completed, by any key, into a name env refuses.
func TestReservedEnvPrefixClosesTheClass(t *testing.T) {
	keys := []string{"", "X", "WORD", "_PRELOAD", "ASSWORD", "ME", "ATH"}
	for _, prefix := range []string{"APP_", "A", "MY", "P", "PG", "H", "HO", "L", "LD", "G", "GO", "K", "SS", "HTTP", "B", "AP", "X_"} {
		if reservedEnvPrefix(prefix) != "" {
			continue
		}
		for _, n := range append(append([]string{}, reservedEnvNames...), reservedEnvPrefixes...) {
			if strings.HasPrefix(n, strings.ToUpper(prefix)) {
				t.Errorf("prefix %q accepted, but a key completes it to %s", prefix, n)
			}
		}
		for _, k := range keys {
			if why := reservedEnv(prefix + k); why != "" {
				t.Errorf("prefix %q accepted, but key %q makes the refused %s", prefix, k, prefix+k)
			}
		}
	}
}
