package kube_test

import (
	"encoding/json"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/plan"
)

// TestRestartProgress: what `kubectl pgward restart` waits for.
func TestRestartProgress(t *testing.T) {
	cluster := func(annotated bool, pending []string, phase string, ready int, supervised bool) *v1.Cluster {
		c := &v1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "c", Annotations: map[string]string{}}}
		c.Spec.Instances = 3
		if annotated {
			c.Annotations[v1.RestartAnnotation] = "*"
		}
		if supervised {
			c.Spec.PrimaryUpdateStrategy = "supervised"
		}
		raw, err := json.Marshal(plan.Memory{TargetPrimary: "c-1", CurrentPrimary: "c-1", Epoch: 1, RestartPending: pending})
		if err != nil {
			t.Fatal(err)
		}
		c.Status.PlannerMemory = &runtime.RawExtension{Raw: raw}
		c.Status.Phase, c.Status.ReadyInstances = phase, ready
		return c
	}
	for _, tc := range []struct {
		name string
		c    *v1.Cluster
		done bool
		note string
	}{
		{"not taken yet (memory still empty)", cluster(true, nil, kube.PhaseHealthy, 3, false), false, "waiting for the operator"},
		{"replicas left", cluster(false, []string{"c-2", "c-3", "c-1"}, kube.PhaseHealthy, 3, false), false, "left to restart"},
		{"primary left", cluster(false, []string{"c-1"}, kube.PhaseHealthy, 3, false), false, "left to restart"},
		{"all restarted, one not ready yet", cluster(false, nil, kube.PhaseHealthy, 2, false), false, "2 of 3 instances ready"},
		{"done", cluster(false, nil, kube.PhaseHealthy, 3, false), true, ""},
		{"supervised: the primary waits for the user", cluster(false, []string{"c-1"}, kube.PhaseHealthy, 3, true), true, "waits for your switchover"},
		{"supervised, replicas left", cluster(false, []string{"c-3", "c-1"}, kube.PhaseHealthy, 3, true), false, "left to restart"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done, note, err := kube.RestartProgress(tc.c)
			if err != nil {
				t.Fatal(err)
			}
			if done != tc.done || !strings.Contains(note, tc.note) {
				t.Errorf("got done=%v %q, want done=%v and a note containing %q", done, note, tc.done, tc.note)
			}
		})
	}
}
