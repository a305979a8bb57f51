//go:build e2e_kube

package kube

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
)

// TestPodShape runs a Cluster with CloudNativePG's pod-shape fields on real
// pods, in a namespace enforcing the restricted Pod Security Standard:
// resources, a preferred anti-affinity over the node's zone-less hostname
// (required cannot be met by two instances on one node), a node selector
// and tolerations, a projected volume, the probe timing of
// cluster-example-with-probes and the security contexts of
// cluster-example-security-context. The pods must run, be Ready, and carry
// what was asked, with pgward's own security intact.
func TestPodShape(t *testing.T) {
	ns := newNamespace(t, "e2e-podshape")
	ctx := context.Background()
	for _, obj := range []client.Object{
		&corev1.ConfigMap{ObjectMeta: objectMeta(ns, "sample-configmap"), Data: map[string]string{"key1": "value1"}},
		&corev1.Secret{ObjectMeta: objectMeta(ns, "sample-secret"), StringData: map[string]string{"token": "s3cr3t-in-a-file"}},
	} {
		if err := cl.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	c := newCluster(t, ns, "cluster-example.yaml", func(c *v1.Cluster) {
		c.Name = "shaped"
		s := &c.Spec
		s.Instances = 2
		s.Description = "pod shape on real pods"
		s.Resources = &corev1.ResourceRequirements{
			Requests: corev1.ResourceList{"cpu": resource.MustParse("50m"), "memory": resource.MustParse("128Mi")},
			Limits:   corev1.ResourceList{"memory": resource.MustParse("1Gi")},
		}
		s.Affinity = &v1.AffinityConfiguration{
			PodAntiAffinityType: "preferred",
			NodeSelector:        map[string]string{"kubernetes.io/os": "linux"},
			Tolerations:         []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "postgres", Effect: corev1.TaintEffectNoSchedule}},
		}
		s.Env = []corev1.EnvVar{{Name: "APP_REGION", Value: "eu-west"}}
		s.InheritedMetadata = &v1.EmbeddedObjectMetadata{Labels: map[string]string{"team": "payments"}}
		lag := resource.MustParse("16Mi")
		s.Probes = &v1.ProbesConfiguration{
			Startup:   &v1.ProbeWithStrategy{Probe: v1.Probe{FailureThreshold: 30, PeriodSeconds: 10}, Type: v1.ProbeStrategyStreaming, MaximumLag: &lag},
			Readiness: &v1.ProbeWithStrategy{Type: v1.ProbeStrategyStreaming, MaximumLag: &lag},
		}
		s.ReplicationSlots = &v1.ReplicationSlotsConfiguration{HighAvailability: &v1.ReplicationSlotsHAConfiguration{}, UpdateInterval: 5}
		s.ProjectedVolumeTemplate = &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "sample-secret"}, Items: []corev1.KeyToPath{{Key: "token", Path: "secret/token"}}}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "sample-configmap"}, Items: []corev1.KeyToPath{{Key: "key1", Path: "config/key1"}}}},
		}}
		s.PodSecurityContext = &corev1.PodSecurityContext{RunAsUser: new(int64(26)), RunAsGroup: new(int64(26)), FSGroup: new(int64(26)), RunAsNonRoot: new(true),
			SupplementalGroups: []int64{1000, 2000}, FSGroupChangePolicy: new(corev1.FSGroupChangeOnRootMismatch)}
		s.SecurityContext = &corev1.SecurityContext{AllowPrivilegeEscalation: new(false), Privileged: new(false), ReadOnlyRootFilesystem: new(true), RunAsNonRoot: new(true),
			Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"NET_BIND_SERVICE"}}}
	})
	for _, name := range c.Status.InstanceNames {
		// The kubelet's readiness probe (every 10 s) may trail the
		// operator's own view of the instance.
		var pod corev1.Pod
		eventually(t, 2*time.Minute, name+" Ready", func() error {
			if err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &pod); err != nil {
				return err
			}
			for _, cond := range pod.Status.Conditions {
				if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
					return nil
				}
			}
			return fmt.Errorf("pod %s is not Ready: %+v", name, pod.Status.Conditions)
		})
		ctr := pod.Spec.Containers[0]
		// The kubelet asks the streaming check of the sample's probes:
		// the pod became Ready through it.
		if want := "/readyz?maximumLag=16777216&type=streaming"; ctr.StartupProbe.HTTPGet.Path != want || ctr.ReadinessProbe.HTTPGet.Path != want {
			t.Errorf("%s: probe paths %q %q, want %q", name, ctr.StartupProbe.HTTPGet.Path, ctr.ReadinessProbe.HTTPGet.Path, want)
		}
		if pod.Labels["team"] != "payments" || ctr.Resources.Limits.Memory().String() != "1Gi" || ctr.StartupProbe.FailureThreshold != 30 ||
			len(pod.Spec.Tolerations) == 0 || pod.Status.QOSClass != corev1.PodQOSBurstable {
			t.Errorf("%s: labels %v resources %+v startup %+v tolerations %v QoS %s", name, pod.Labels, ctr.Resources,
				ctr.StartupProbe, pod.Spec.Tolerations, pod.Status.QOSClass)
		}
		if got := strings.TrimSpace(mustExec(t, ns, name, "cat", "/projected/config/key1", "/projected/secret/token")); got != "value1s3cr3t-in-a-file" {
			t.Errorf("%s: /projected holds %q", name, got)
		}
		if out, err := podExecErr(ns, name, "sh", "-c", "touch /projected/x"); err == nil {
			t.Errorf("%s: /projected is writable: %s", name, out)
		}
		if got := strings.TrimSpace(mustExec(t, ns, name, "sh", "-c", `echo "$APP_REGION $HOME"`)); got != "eu-west /tmp" {
			t.Errorf("%s: environment %q", name, got)
		}
		// The sample's security context keeps pgward's: uid 26, the extra
		// groups, no effective capability (NET_BIND_SERVICE is only in the
		// bounding set of a non-root process), no new privileges, seccomp.
		for _, proc := range containerProcs(t, &pod, "postgres") {
			st := proc.status
			if st["Uid"] != "26" || st["Gid"] != "26" || !strings.Contains(st["Groups"], "1000") || st["CapEff"] != "0000000000000000" ||
				st["NoNewPrivs"] != "1" || st["Seccomp"] != "2" || !proc.readOnlyRoot {
				t.Errorf("%s pid %d (%s): %v, read-only root %v", name, proc.pid, st["Name"], st, proc.readOnlyRoot)
			}
		}
	}
	if got := psqlLocal(t, ns, c.Status.CurrentPrimary, "postgres", "select count(*) from pg_stat_replication where state = 'streaming'"); got != "1" {
		t.Errorf("streaming replicas: %s", got)
	}
	// replicationSlots.highAvailability on pods: the replica streams
	// through its slot on the primary.
	for _, name := range c.Status.InstanceNames {
		if name == c.Status.CurrentPrimary {
			continue
		}
		slot := v1.HASlotName(v1.DefaultSlotPrefix, name)
		if got := psqlLocal(t, ns, name, "postgres", "show primary_slot_name"); got != slot {
			t.Errorf("%s: primary_slot_name %q, want %q", name, got, slot)
		}
		eventually(t, time.Minute, name+" streams through its slot", func() error {
			got := psqlLocal(t, ns, c.Status.CurrentPrimary, "postgres", "select coalesce(string_agg(slot_name || ':' || active, ','), '') from pg_replication_slots where starts_with(slot_name, '"+v1.DefaultSlotPrefix+"')")
			if got != slot+":true" {
				return fmt.Errorf("the primary's slots: %q, want %s:true", got, slot)
			}
			return nil
		})
	}
}
