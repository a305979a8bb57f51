package instance

import (
	"testing"
	"time"
)

// TestLeaveWindow: only the primary of a cluster that fails over on
// Kubernetes stays after its final stop; the local runtime, replicas and
// single instances exit at once.
func TestLeaveWindow(t *testing.T) {
	for _, tc := range []struct {
		name                string
		primary, kubernetes bool
		selfFence           time.Duration
		want                time.Duration
	}{
		{"primary with replicas on Kubernetes", true, true, 3 * time.Second, LeaveWindow},
		{"replica", false, true, 3 * time.Second, 0},
		{"single instance (no self-fencing)", true, true, 0, 0},
		{"local runtime (no Lease)", true, false, 3 * time.Second, 0},
	} {
		if got := leaveWindow(tc.primary, tc.kubernetes, tc.selfFence); got != tc.want {
			t.Errorf("%s: leaveWindow = %v, want %v", tc.name, got, tc.want)
		}
	}
	// Long enough to cover kube-proxy's default minimum sync period (1 s)
	// after the operator's reaction; short next to a pod's grace period.
	if LeaveWindow < time.Second || LeaveWindow > 5*time.Second {
		t.Errorf("LeaveWindow %v", LeaveWindow)
	}
}
