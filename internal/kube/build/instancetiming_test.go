package build

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"

	v1 "github.com/pgward/pgward/api/v1"
)

// TestInstanceTimingInThePod: the timings become the pod's grace period
// and its probes' failure thresholds, the size limits and the ephemeral
// claim its scratch volumes, with CloudNativePG's arithmetic
// (ceil(time/period)); left out, the pod is what it always was.
func TestInstanceTimingInThePod(t *testing.T) {
	i32 := func(v int32) *int32 { return &v }
	q := func(s string) *resource.Quantity { v := resource.MustParse(s); return &v }
	claim := &corev1.EphemeralVolumeSource{VolumeClaimTemplate: &corev1.PersistentVolumeClaimTemplate{
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("2Gi")}},
		},
	}}
	type want struct {
		grace             int64
		startup, liveness int32
		tmp               string // emptyDir size, or "ephemeral"
		shm               string // "" = no /dev/shm volume
	}
	for _, tc := range []struct {
		name string
		set  func(*v1.ClusterSpec)
		want want
	}{
		{"defaults: what pods always had", func(*v1.ClusterSpec) {}, want{180, 3600, 3, "256Mi", ""}},
		{"cluster-example-full: startDelay 300, stopDelay 300", func(s *v1.ClusterSpec) { s.MaxStartDelay, s.MaxStopDelay = 300, 300 },
			want{300, 300, 3, "256Mi", ""}},
		{"startDelay: the startup probe looks every second", func(s *v1.ClusterSpec) { s.MaxStartDelay = 95 }, want{180, 95, 3, "256Mi", ""}},
		{"startDelay over a shorter startup period", func(s *v1.ClusterSpec) {
			s.MaxStartDelay = 60
			s.Probes = &v1.ProbesConfiguration{Startup: &v1.ProbeWithStrategy{Probe: v1.Probe{PeriodSeconds: 4}}}
		}, want{180, 15, 3, "256Mi", ""}},
		{"the default startDelay over a shorter startup period", func(s *v1.ClusterSpec) {
			s.Probes = &v1.ProbesConfiguration{Startup: &v1.ProbeWithStrategy{Probe: v1.Probe{PeriodSeconds: 5}}}
		}, want{180, 720, 3, "256Mi", ""}},
		{"the startup probe's own failureThreshold", func(s *v1.ClusterSpec) {
			s.Probes = &v1.ProbesConfiguration{Startup: &v1.ProbeWithStrategy{Probe: v1.Probe{FailureThreshold: 7}}}
		}, want{180, 7, 3, "256Mi", ""}},
		{"livenessProbeTimeout", func(s *v1.ClusterSpec) { s.LivenessProbeTimeout = i32(45) }, want{180, 3600, 5, "256Mi", ""}},
		{"livenessProbeTimeout over a shorter liveness period", func(s *v1.ClusterSpec) {
			s.LivenessProbeTimeout = i32(10)
			s.Probes = &v1.ProbesConfiguration{Liveness: &v1.LivenessProbe{Probe: v1.Probe{PeriodSeconds: 3}}}
		}, want{180, 3600, 4, "256Mi", ""}},
		{"size limits", func(s *v1.ClusterSpec) {
			s.EphemeralVolumesSizeLimit = &v1.EphemeralVolumesSizeLimitConfiguration{Shm: q("512Mi"), TemporaryData: q("2Gi")}
		}, want{180, 3600, 3, "2Gi", "512Mi"}},
		{"an ephemeral claim for /tmp, shm bounded", func(s *v1.ClusterSpec) {
			s.EphemeralVolumeSource = claim.DeepCopy()
			s.EphemeralVolumesSizeLimit = &v1.EphemeralVolumesSizeLimitConfiguration{Shm: q("64Mi")}
		}, want{180, 3600, 3, "ephemeral", "64Mi"}},
		{"stopDelay with a smart phase", func(s *v1.ClusterSpec) { s.MaxStopDelay, s.SmartShutdownTimeout = 1800, i32(180) }, want{1800, 3600, 3, "256Mi", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := sample(t)
			tc.set(&c.Spec)
			v1.SetDefaults(c)
			if errs := c.Validate(); len(errs) > 0 {
				t.Fatal(errs.ToAggregate())
			}
			pod := Pod(c, "cluster-example-1", RoleReplica, testOpts)
			ctr := pod.Spec.Containers[0]
			got := want{grace: *pod.Spec.TerminationGracePeriodSeconds, startup: ctr.StartupProbe.FailureThreshold, liveness: ctr.LivenessProbe.FailureThreshold}
			mounts := map[string]string{}
			for _, m := range ctr.VolumeMounts {
				mounts[m.Name] = m.MountPath
			}
			for _, v := range pod.Spec.Volumes {
				switch v.Name {
				case volTmp:
					if v.Ephemeral != nil {
						got.tmp = "ephemeral"
						if v.Ephemeral.VolumeClaimTemplate.Spec.Resources.Requests.Storage().String() != "2Gi" {
							t.Errorf("claim %+v", v.Ephemeral)
						}
					} else {
						got.tmp = v.EmptyDir.SizeLimit.String()
					}
					if mounts[volTmp] != TmpDir {
						t.Errorf("/tmp volume mounted at %q", mounts[volTmp])
					}
				case volShm:
					if v.EmptyDir == nil || v.EmptyDir.Medium != corev1.StorageMediumMemory {
						t.Errorf("shm volume %+v", v)
					}
					got.shm = v.EmptyDir.SizeLimit.String()
					if mounts[volShm] != "/dev/shm" {
						t.Errorf("shm volume mounted at %q", mounts[volShm])
					}
				}
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			// What the instance manager reads keeps the timings it acts
			// on and none of the pod-only fields.
			m, err := ManifestFor(c)
			if err != nil {
				t.Fatal(err)
			}
			var inst v1.Cluster
			if err := yaml.Unmarshal(m, &inst); err != nil {
				t.Fatal(err)
			}
			if inst.Spec.StopDelay() != c.Spec.StopDelay() || inst.Spec.SmartShutdown() != c.Spec.SmartShutdown() || inst.Spec.StartDelay() != c.Spec.StartDelay() {
				t.Errorf("the instances' manifest lost a timing: %+v", inst.Spec)
			}
			if inst.Spec.EphemeralVolumeSource != nil || inst.Spec.EphemeralVolumesSizeLimit != nil || inst.Spec.LivenessProbeTimeout != nil {
				t.Errorf("the instances' manifest holds pod-only fields: %+v", inst.Spec)
			}
		})
	}
}
