package kube

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestPodUnroutable: <c>-rw routes only to a pod whose Ready condition is
// True, so any other reported value holds a switchover to it; a pod no
// kubelet reported on (envtest) is not held against.
func TestPodUnroutable(t *testing.T) {
	cond := func(s corev1.ConditionStatus) *corev1.Pod {
		return &corev1.Pod{Status: corev1.PodStatus{Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
			{Type: corev1.PodReady, Status: s},
		}}}
	}
	for name, tc := range map[string]struct {
		pod  *corev1.Pod
		want bool
	}{
		"Ready":              {cond(corev1.ConditionTrue), false},
		"not Ready":          {cond(corev1.ConditionFalse), true},
		"Ready unknown":      {cond(corev1.ConditionUnknown), true},
		"no Ready condition": {&corev1.Pod{}, false},
	} {
		if got := podUnroutable(tc.pod); got != tc.want {
			t.Errorf("%s: podUnroutable = %v, want %v", name, got, tc.want)
		}
	}
}
