package kube

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestPodNotReady: only a pod the kubelet reports not Ready loses a tie
// between equally advanced promotion candidates (plan.InstanceStatus
// Unroutable); a pod without the condition (envtest, or none reported
// yet) is not held against.
func TestPodNotReady(t *testing.T) {
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
		"Ready unknown":      {cond(corev1.ConditionUnknown), false},
		"no Ready condition": {&corev1.Pod{}, false},
	} {
		if got := podNotReady(tc.pod); got != tc.want {
			t.Errorf("%s: podNotReady = %v, want %v", name, got, tc.want)
		}
	}
}
