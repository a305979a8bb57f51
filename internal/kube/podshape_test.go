package kube_test

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/kube/build"
)

// TestPodShapeReconciled applies a Cluster using CloudNativePG's pod-shape
// fields to the real API server, in a namespace that enforces the
// restricted Pod Security Standard, and checks the objects the reconciler
// made carry them (the pods exist: PodSecurity admission let them in).
// Then enablePDB and inheritedMetadata change on the running cluster and
// reach the objects.
func TestPodShapeReconciled(t *testing.T) {
	ns := newNamespace(t, true)
	ctx := ctxFor(t)
	c := sampleCluster(t, ns)
	s := &c.Spec
	s.Description = "orders database"
	s.Affinity = &v1.AffinityConfiguration{
		TopologyKey:  "topology.kubernetes.io/zone",
		NodeSelector: map[string]string{"disk": "ssd"},
		Tolerations:  []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "db", Effect: corev1.TaintEffectNoSchedule}},
	}
	s.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: corev1.LabelHostname, WhenUnsatisfiable: corev1.ScheduleAnyway}}
	s.PriorityClassName = "system-cluster-critical" // exists in every cluster, so priority admission accepts it
	s.Resources = &corev1.ResourceRequirements{
		Requests: corev1.ResourceList{"cpu": resource.MustParse("100m"), "memory": resource.MustParse("256Mi")},
		Limits:   corev1.ResourceList{"memory": resource.MustParse("512Mi")},
	}
	s.Env = []corev1.EnvVar{{Name: "APP_REGION", Value: "eu"}}
	s.EnvFrom = []corev1.EnvFromSource{{Prefix: "APP_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "app-env"}}}}
	s.InheritedMetadata = &v1.EmbeddedObjectMetadata{Labels: map[string]string{"team": "payments"}, Annotations: map[string]string{"example.com/contact": "dba"}}
	s.ServiceAccountTemplate = &v1.ServiceAccountTemplate{Metadata: v1.EmbeddedObjectMetadata{Annotations: map[string]string{"iam.gke.io/gcp-service-account": "pg@x.iam.gserviceaccount.com"}}}
	// The values of CloudNativePG's cluster-example-security-context.
	s.PodSecurityContext = &corev1.PodSecurityContext{RunAsUser: new(int64(26)), RunAsGroup: new(int64(26)), FSGroup: new(int64(26)), RunAsNonRoot: new(true),
		SupplementalGroups: []int64{1000, 2000}, FSGroupChangePolicy: new(corev1.FSGroupChangeOnRootMismatch)}
	s.SecurityContext = &corev1.SecurityContext{AllowPrivilegeEscalation: new(false), Privileged: new(false), ReadOnlyRootFilesystem: new(true), RunAsNonRoot: new(true),
		Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"NET_BIND_SERVICE"}}}
	s.Probes = &v1.ProbesConfiguration{Startup: &v1.ProbeWithStrategy{Probe: v1.Probe{FailureThreshold: 30, PeriodSeconds: 10}}}
	s.ProjectedVolumeTemplate = &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
		{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "app-env"}, Items: []corev1.KeyToPath{{Key: "k", Path: "config/k"}}}},
	}}
	s.StorageConfiguration = v1.StorageConfiguration{PersistentVolumeClaimTemplate: &corev1.PersistentVolumeClaimSpec{
		AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOncePod},
		StorageClassName: new("standard"),
		VolumeMode:       new(corev1.PersistentVolumeFilesystem),
		Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{"storage": resource.MustParse("2Gi")}},
	}}
	v1.SetDefaults(c)
	if errs := kube.ValidateForKubernetes(c); len(errs) > 0 {
		t.Fatal(errs.ToAggregate())
	}
	createCluster(t, c)
	r := newReconciler(&kube.MTLSInstances{Timeout: time.Second}, nil)
	reconcileOnce(t, r, c)

	get := func(obj client.Object, name string) {
		t.Helper()
		if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, obj); err != nil {
			t.Fatalf("%T %s: %v", obj, name, err)
		}
	}
	inherited := func(what string, m metav1.Object) {
		t.Helper()
		if m.GetLabels()["team"] != "payments" || m.GetAnnotations()["example.com/contact"] != "dba" || m.GetLabels()[build.ClusterLabel] != c.Name {
			t.Errorf("%s %s: labels %v annotations %v", what, m.GetName(), m.GetLabels(), m.GetAnnotations())
		}
	}
	for _, name := range build.InstanceNames(c) {
		var pod corev1.Pod
		get(&pod, name)
		inherited("pod", &pod)
		ps := pod.Spec
		aa := ps.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution
		if len(aa) != 1 || aa[0].PodAffinityTerm.TopologyKey != "topology.kubernetes.io/zone" {
			t.Errorf("pod %s anti-affinity %+v", name, aa)
		}
		if ps.NodeSelector["disk"] != "ssd" || len(ps.Tolerations) == 0 || ps.Tolerations[0].Key != "dedicated" {
			t.Errorf("pod %s node selector %v tolerations %+v", name, ps.NodeSelector, ps.Tolerations)
		}
		if len(ps.TopologySpreadConstraints) != 1 || ps.TopologySpreadConstraints[0].LabelSelector.MatchLabels[build.ClusterLabel] != c.Name {
			t.Errorf("pod %s spread %+v", name, ps.TopologySpreadConstraints)
		}
		if ps.PriorityClassName != "system-cluster-critical" || ps.Priority == nil {
			t.Errorf("pod %s priority class %q priority %v", name, ps.PriorityClassName, ps.Priority)
		}
		if !slices.Equal(ps.SecurityContext.SupplementalGroups, []int64{1000, 2000}) || *ps.SecurityContext.RunAsUser != 26 {
			t.Errorf("pod %s security context %+v", name, ps.SecurityContext)
		}
		ctr := ps.Containers[0]
		if ctr.Resources.Requests.Memory().String() != "256Mi" || ctr.Resources.Limits.Memory().String() != "512Mi" {
			t.Errorf("pod %s resources %+v", name, ctr.Resources)
		}
		if !slices.Equal(ctr.SecurityContext.Capabilities.Add, []corev1.Capability{"NET_BIND_SERVICE"}) || *ctr.SecurityContext.AllowPrivilegeEscalation {
			t.Errorf("pod %s container security context %+v", name, ctr.SecurityContext)
		}
		if ctr.Env[0].Name != "APP_REGION" || len(ctr.EnvFrom) != 1 || ctr.StartupProbe.FailureThreshold != 30 || ctr.StartupProbe.HTTPGet == nil {
			t.Errorf("pod %s env %+v envFrom %+v startup %+v", name, ctr.Env, ctr.EnvFrom, ctr.StartupProbe)
		}
		mounted := false
		for _, m := range ctr.VolumeMounts {
			mounted = mounted || (m.MountPath == v1.ProjectedVolumeMount && m.ReadOnly)
		}
		if !mounted {
			t.Errorf("pod %s: no read-only mount at %s: %+v", name, v1.ProjectedVolumeMount, ctr.VolumeMounts)
		}
		var pvc corev1.PersistentVolumeClaim
		get(&pvc, name)
		inherited("PVC", &pvc)
		if q := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; q.String() != "2Gi" ||
			!slices.Equal(pvc.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOncePod}) || *pvc.Spec.StorageClassName != "standard" {
			t.Errorf("PVC %s spec %+v", name, pvc.Spec)
		}
	}
	for _, name := range build.ServiceNames(c) {
		var svc corev1.Service
		get(&svc, name)
		inherited("service", &svc)
	}
	var sa corev1.ServiceAccount
	get(&sa, build.ServiceAccountName(c))
	inherited("service account", &sa)
	if sa.Annotations["iam.gke.io/gcp-service-account"] == "" {
		t.Errorf("service account annotations %v", sa.Annotations)
	}
	var sec corev1.Secret
	get(&sec, c.Name+"-app")
	inherited("secret", &sec)
	var pdb policyv1.PodDisruptionBudget
	get(&pdb, build.PrimaryPDBName(c))
	inherited("budget", &pdb)

	// On the running cluster: budgets off, a label and an annotation more.
	var stored v1.Cluster
	get(&stored, c.Name)
	stored.Spec.EnablePDB = new(false)
	stored.Spec.InheritedMetadata.Labels["tier"] = "gold"
	stored.Spec.ServiceAccountTemplate.Metadata.Annotations["example.com/rotated"] = "yes"
	if err := admin.Update(ctx, &stored); err != nil {
		t.Fatal(err)
	}
	reconcileOnce(t, r, &stored)
	for _, name := range []string{build.PrimaryPDBName(c), build.ReplicaPDBName(c)} {
		if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &policyv1.PodDisruptionBudget{}); !apierrors.IsNotFound(err) {
			t.Errorf("budget %s with enablePDB false: %v", name, err)
		}
	}
	var pod corev1.Pod
	get(&pod, build.InstanceName(c, 2))
	if pod.Labels["tier"] != "gold" || pod.Labels[build.RoleLabel] == "" {
		t.Errorf("running pod's labels %v", pod.Labels)
	}
	get(&sa, build.ServiceAccountName(c))
	if sa.Annotations["example.com/rotated"] != "yes" || sa.Annotations["iam.gke.io/gcp-service-account"] == "" {
		t.Errorf("service account annotations %v", sa.Annotations)
	}
}

// TestAdmissionRefusesPodShape sends bad pod-shape fields through the real
// API server and the operator's webhooks: each is refused naming its
// field; and once pods exist, changing what they were created with is
// refused, while labels and enablePDB may change.
func TestAdmissionRefusesPodShape(t *testing.T) {
	startOperator(t)
	ns := newNamespace(t, true)
	ctx := ctxFor(t)
	createCases := []badCase{
		{"privileged", `securityContext: {privileged: true}`, "spec.securityContext.privileged", "privileged"},
		{"privilege escalation", `securityContext: {allowPrivilegeEscalation: true}`, "spec.securityContext.allowPrivilegeEscalation", ""},
		{"root", `podSecurityContext: {runAsUser: 0}`, "spec.podSecurityContext.runAsUser", "26"},
		{"run as root allowed", `securityContext: {runAsNonRoot: false}`, "spec.securityContext.runAsNonRoot", ""},
		{"capability added", `securityContext: {capabilities: {drop: [ALL], add: [SYS_ADMIN]}}`, "spec.securityContext.capabilities.add[0]", "NET_BIND_SERVICE"},
		{"capabilities kept", `securityContext: {capabilities: {drop: [NET_RAW]}}`, "spec.securityContext.capabilities.drop", "ALL"},
		{"seccomp unconfined", `seccompProfile: {type: Unconfined}`, "spec.seccompProfile.type", ""},
		{"libpq variable", `env: [{name: PGSSLMODE, value: disable}]`, "spec.env[0].name", "PG"},
		{"loader variable", `env: [{name: LD_PRELOAD, value: /tmp/x.so}]`, "spec.env[0].name", "LD_"},
		{"pgBackRest variable", `env: [{name: PGBACKREST_REPO1_CIPHER_TYPE, value: none}]`, "spec.env[0].name", ""},
		{"envFrom without prefix", `envFrom: [{secretRef: {name: s}}]`, "spec.envFrom[0].prefix", "required"},
		{"requests over limits", `resources: {requests: {memory: 2Gi}, limits: {memory: 1Gi}}`, "spec.resources.requests[memory]", "limit"},
		{"pgward label inherited", `inheritedMetadata: {labels: {pgward.io/role: primary}}`, "spec.inheritedMetadata.labels[pgward.io/role]", ""},
		{"AppArmor annotation inherited", `inheritedMetadata: {annotations: {container.apparmor.security.beta.kubernetes.io/postgres: unconfined}}`, "spec.inheritedMetadata.annotations", "AppArmor"},
		{"CA key projected", `projectedVolumeTemplate: {sources: [{secret: {name: NAME-ca}}]}`, "spec.projectedVolumeTemplate.sources[0].secret.name", "pgward's own"},
		{"token projected", `projectedVolumeTemplate: {sources: [{serviceAccountToken: {path: t}}]}`, "spec.projectedVolumeTemplate.sources[0].serviceAccountToken", ""},
		{"pvcTemplate size conflict", `storage: {size: 1Gi, pvcTemplate: {resources: {requests: {storage: 5Gi}}}}`, "spec.storage.pvcTemplate.resources.requests.storage", "conflicts"},
		{"pvcTemplate block volume", `storage: {size: 1Gi, pvcTemplate: {volumeMode: Block}}`, "spec.storage.pvcTemplate.volumeMode", ""},
		{"probe type", `probes: {startup: {type: pg_isready}}`, "spec.probes.startup.type", "Unsupported value"},
		{"probe lag without streaming", `probes: {readiness: {type: query, maximumLag: 1Mi}}`, "spec.probes.readiness.maximumLag", "needs type: streaming"},
	}
	for i, tc := range createCases {
		t.Run("create/"+tc.name, func(t *testing.T) {
			name := "bad-" + strconv.Itoa(i)
			err := admin.Create(ctx, manifest(t, ns, name, strings.ReplaceAll(tc.spec, "NAME", name)), client.FieldValidation("Strict"))
			checkRefusal(t, err, tc)
		})
	}

	const shape = `{resources: {requests: {memory: 256Mi}}, affinity: {podAntiAffinityType: preferred}, inheritedMetadata: {labels: {team: a}}, enablePDB: true,
  storage: {size: 1Gi, pvcTemplate: {accessModes: [ReadWriteOnce]}}}`
	if err := admin.Create(ctx, manifest(t, ns, "shaped", shape)); err != nil {
		t.Fatalf("valid cluster refused: %v", err)
	}
	update := func(spec string) error {
		var stored unstructured.Unstructured
		stored.SetGroupVersionKind(v1.SchemeGroupVersion.WithKind(v1.Kind))
		if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: "shaped"}, &stored); err != nil {
			t.Fatal(err)
		}
		changed := manifest(t, ns, "shaped", spec)
		changed.Object["spec"].(map[string]any)["bootstrap"] = stored.Object["spec"].(map[string]any)["bootstrap"]
		changed.SetResourceVersion(stored.GetResourceVersion())
		return admin.Update(ctx, changed, client.FieldValidation("Strict"))
	}
	for _, tc := range []badCase{
		{"resources changed", `{resources: {requests: {memory: 512Mi}}, affinity: {podAntiAffinityType: preferred}, inheritedMetadata: {labels: {team: a}},
  storage: {size: 1Gi, pvcTemplate: {accessModes: [ReadWriteOnce]}}}`, "spec.resources", "running pods"},
		{"affinity changed", `{resources: {requests: {memory: 256Mi}}, affinity: {podAntiAffinityType: required}, inheritedMetadata: {labels: {team: a}},
  storage: {size: 1Gi, pvcTemplate: {accessModes: [ReadWriteOnce]}}}`, "spec.affinity", "running pods"},
		{"pvcTemplate changed", `{resources: {requests: {memory: 256Mi}}, affinity: {podAntiAffinityType: preferred}, inheritedMetadata: {labels: {team: a}},
  storage: {size: 1Gi, pvcTemplate: {accessModes: [ReadWriteOncePod]}}}`, "spec.storage.pvcTemplate", "volumes"},
	} {
		t.Run("update/"+tc.name, func(t *testing.T) { checkRefusal(t, update(tc.spec), tc) })
	}
	// What reaches running objects may change: labels, budgets, a larger volume.
	if err := update(`{resources: {requests: {memory: 256Mi}}, affinity: {podAntiAffinityType: preferred}, inheritedMetadata: {labels: {team: b}}, enablePDB: false,
  storage: {size: 2Gi, pvcTemplate: {accessModes: [ReadWriteOnce]}}}`); err != nil {
		t.Errorf("changing labels, enablePDB and growing the volume refused: %v", err)
	}
}
