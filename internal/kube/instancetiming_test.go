package kube_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube/build"
)

// timedSpec is CloudNativePG's timing, logging, scratch volume and image
// id fields, as a user's manifest writes them.
const timedSpec = `{startDelay: 300, stopDelay: 60, smartShutdownTimeout: 20, livenessProbeTimeout: 45, logLevel: debug,
  postgresUID: 26, postgresGID: 26,
  ephemeralVolumeSource: {volumeClaimTemplate: {spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 2Gi}}}}},
  ephemeralVolumesSizeLimit: {shm: 128Mi}}`

// TestInstanceTimingOnTheAPIServer sends the fields through the real API
// server, the operator's webhooks and its reconciler, in a namespace that
// enforces the restricted Pod Security Standard: bad values are refused
// naming the field; a Cluster using them all gets pods (PodSecurity
// admitted them, generic ephemeral volume included) with the grace period,
// probe thresholds and volumes they ask for, and instances configured
// with the timings and level they act on; once the pods exist, what is
// fixed in them cannot change, while smartShutdownTimeout and logLevel,
// which the running managers read, can.
func TestInstanceTimingOnTheAPIServer(t *testing.T) {
	startOperator(t)
	ns := newNamespace(t, true)
	ctx := ctxFor(t)
	for i, tc := range []badCase{
		{"smart phase leaving no time", `{stopDelay: 60, smartShutdownTimeout: 50}`, "spec.smartShutdownTimeout", "at least 15 s"},
		{"another image's uid", `{postgresUID: 999}`, "spec.postgresUID", "must be 26"},
		{"root's gid", `{postgresGID: -1}`, "spec.postgresGID", "must be 26"},
		{"unknown log level", `{logLevel: verbose}`, "spec.logLevel", "Unsupported value"},
		{"liveness twice", `{livenessProbeTimeout: 60, probes: {liveness: {failureThreshold: 2}}}`, "spec.livenessProbeTimeout", "give the liveness probe's limit once"},
		{"a scratch claim from a snapshot", `{ephemeralVolumeSource: {volumeClaimTemplate: {spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}},
  dataSource: {apiGroup: snapshot.storage.k8s.io, kind: VolumeSnapshot, name: other-db}}}}}`, "spec.ephemeralVolumeSource.volumeClaimTemplate.spec.dataSource", "start empty"},
		{"a scratch claim bound to a volume", `{ephemeralVolumeSource: {volumeClaimTemplate: {spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}, volumeName: pv-1}}}}`,
			"spec.ephemeralVolumeSource.volumeClaimTemplate.spec.volumeName", ""},
		{"temporaryData beside a claim", `{ephemeralVolumeSource: {volumeClaimTemplate: {spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}}},
  ephemeralVolumesSizeLimit: {temporaryData: 1Gi}}`, "spec.ephemeralVolumesSizeLimit.temporaryData", ""},
	} {
		t.Run("create/"+tc.name, func(t *testing.T) {
			err := admin.Create(ctx, manifest(t, ns, "bad-"+strconv.Itoa(i), tc.spec), client.FieldValidation("Strict"))
			checkRefusal(t, err, tc)
		})
	}

	if err := admin.Create(ctx, manifest(t, ns, "timed", timedSpec), client.FieldValidation("Strict")); err != nil {
		t.Fatalf("valid cluster refused: %v", err)
	}
	var c v1.Cluster
	if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: "timed"}, &c); err != nil {
		t.Fatal(err)
	}
	for _, name := range build.InstanceNames(&c) {
		var pod corev1.Pod
		eventually(t, 60*time.Second, "pod "+name, func() error {
			return admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &pod)
		})
		ps := pod.Spec
		ctr := ps.Containers[0]
		if *ps.TerminationGracePeriodSeconds != 60 {
			t.Errorf("pod %s grace period %d, want stopDelay 60", name, *ps.TerminationGracePeriodSeconds)
		}
		if ctr.StartupProbe.FailureThreshold != 300 || ctr.LivenessProbe.FailureThreshold != 5 {
			t.Errorf("pod %s startup threshold %d (want startDelay 300 over the 1 s period), liveness %d (want ceil(45/10))", name, ctr.StartupProbe.FailureThreshold, ctr.LivenessProbe.FailureThreshold)
		}
		var tmp, shm *corev1.Volume
		for i := range ps.Volumes {
			switch ps.Volumes[i].Name {
			case "tmp":
				tmp = &ps.Volumes[i]
			case "shm":
				shm = &ps.Volumes[i]
			}
		}
		if tmp == nil || tmp.Ephemeral == nil || tmp.Ephemeral.VolumeClaimTemplate.Spec.Resources.Requests.Storage().String() != "2Gi" {
			t.Errorf("pod %s /tmp volume %+v", name, tmp)
		}
		if shm == nil || shm.EmptyDir == nil || shm.EmptyDir.Medium != corev1.StorageMediumMemory || shm.EmptyDir.SizeLimit.String() != "128Mi" {
			t.Errorf("pod %s /dev/shm volume %+v", name, shm)
		}
		if *ps.SecurityContext.RunAsUser != 26 || *ps.SecurityContext.RunAsGroup != 26 {
			t.Errorf("pod %s runs as %d:%d", name, *ps.SecurityContext.RunAsUser, *ps.SecurityContext.RunAsGroup)
		}
		// The instance reads the timings and the level it acts on, and
		// nothing of the pod's.
		var sec corev1.Secret
		eventually(t, 30*time.Second, "config secret of "+name, func() error {
			return admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: build.InstanceConfigSecretName(name)}, &sec)
		})
		var inst v1.Cluster
		if err := json.Unmarshal(sec.Data["cluster.json"], &inst); err != nil {
			t.Fatalf("cluster.json of %s: %v", name, err)
		}
		if inst.Spec.StopDelay() != time.Minute || inst.Spec.SmartShutdown() != 20*time.Second || inst.Spec.StartDelay() != 300*time.Second || inst.Spec.LogLevel != "debug" {
			t.Errorf("instance %s reads stopDelay %s smart %s startDelay %s logLevel %q", name, inst.Spec.StopDelay(), inst.Spec.SmartShutdown(), inst.Spec.StartDelay(), inst.Spec.LogLevel)
		}
		if inst.Spec.EphemeralVolumeSource != nil || inst.Spec.LivenessProbeTimeout != nil {
			t.Errorf("instance %s reads pod-only fields", name)
		}
	}

	// The operator writes the Cluster's status meanwhile: an update that
	// lost that race is tried again on the new version.
	update := func(edit func(spec map[string]any)) error {
		for {
			var stored unstructured.Unstructured
			stored.SetGroupVersionKind(v1.SchemeGroupVersion.WithKind(v1.Kind))
			if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: "timed"}, &stored); err != nil {
				t.Fatal(err)
			}
			edit(stored.Object["spec"].(map[string]any))
			err := admin.Update(ctx, &stored, client.FieldValidation("Strict"))
			if !apierrors.IsConflict(err) {
				return err
			}
		}
	}
	for _, tc := range []struct {
		badCase
		edit func(map[string]any)
	}{
		{badCase{"stopDelay changed", "", "spec.stopDelay", "running pods"}, func(s map[string]any) { s["stopDelay"] = int64(90) }},
		{badCase{"startDelay left out (the default differs)", "", "spec.startDelay", "running pods"}, func(s map[string]any) { delete(s, "startDelay") }},
		{badCase{"livenessProbeTimeout changed", "", "spec.livenessProbeTimeout", "running pods"}, func(s map[string]any) { s["livenessProbeTimeout"] = int64(20) }},
		{badCase{"shm limit changed", "", "spec.ephemeralVolumesSizeLimit", "running pods"}, func(s map[string]any) {
			s["ephemeralVolumesSizeLimit"] = map[string]any{"shm": "256Mi"}
		}},
		{badCase{"scratch claim dropped", "", "spec.ephemeralVolumeSource", "running pods"}, func(s map[string]any) { delete(s, "ephemeralVolumeSource") }},
	} {
		t.Run("update/"+tc.name, func(t *testing.T) { checkRefusal(t, update(tc.edit), tc.badCase) })
	}
	if err := update(func(s map[string]any) { s["smartShutdownTimeout"] = int64(30); s["logLevel"] = "error" }); err != nil {
		t.Fatalf("changing smartShutdownTimeout and logLevel refused: %v", err)
	}
	eventually(t, 30*time.Second, "the new timings in the instances' configuration", func() error {
		var sec corev1.Secret
		if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: build.InstanceConfigSecretName("timed-1")}, &sec); err != nil {
			return err
		}
		var inst v1.Cluster
		if err := json.Unmarshal(sec.Data["cluster.json"], &inst); err != nil {
			return err
		}
		if inst.Spec.SmartShutdown() != 30*time.Second || inst.Spec.LogLevel != "error" {
			return fmt.Errorf("smart %s level %q", inst.Spec.SmartShutdown(), inst.Spec.LogLevel)
		}
		return nil
	})
}
