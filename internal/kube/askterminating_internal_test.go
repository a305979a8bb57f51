package kube

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestAskTerminating: a deleted pod's instance manager is asked (it
// reports postgres stopped, and the planner fails over at once), unless
// the operator deletes it to recreate it, a restart in place.
func TestAskTerminating(t *testing.T) {
	now := metav1.Now()
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want bool
	}{
		{"no pod", nil, false},
		{"running", &corev1.Pod{}, true},
		{"deleted by someone", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: &now}}, true},
		{"recreated by the operator", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: &now,
			Annotations: map[string]string{recreatingAnnotation: "new image"}}}, false},
		{"marked, not deleted yet", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
			Annotations: map[string]string{recreatingAnnotation: "new image"}}}, true},
	} {
		if got := askTerminating(tc.pod); got != tc.want {
			t.Errorf("%s: askTerminating = %v, want %v", tc.name, got, tc.want)
		}
	}
}
