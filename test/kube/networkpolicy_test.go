//go:build e2e_kube

package kube

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube/build"
)

// TestNetworkPolicy turns spec.networkPolicy on and checks that a real
// policy engine (kube-router's firewall) enforces what the operator
// generates: PostgreSQL only for the listed clients (and the instances
// themselves: replication keeps working), the status port only for the
// operator's pods in the operator's namespace, which still reach it.
func TestNetworkPolicy(t *testing.T) {
	ns := newNamespace(t, "e2e-netpol")
	c := newCluster(t, ns, "cluster-example.yaml", func(c *v1.Cluster) {
		c.Name = "np"
		c.Spec.Instances = 2
		c.Spec.NetworkPolicy = &v1.NetworkPolicyConfiguration{
			Enabled: true,
			Clients: []v1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"role": "app"}}}},
		}
	})
	rw := build.ClientHost(c)

	// A new pod's first packets may pass before its policy is programmed
	// (about 2 s here): each client retries for a while and reports the
	// result it settles on.
	connect := pgClientScript(c.Name+"-app", fmt.Sprintf(`
export PGCONNECT_TIMEOUT=3
for i in $(seq 10); do
  if out=$(psql -h %s -XAt -c "select 'connected'" 2>&1); then echo "$out"; [ -n "$EXPECT_OPEN" ] && exit 0; else echo "refused: $out"; [ -z "$EXPECT_OPEN" ] && [ $i -ge 3 ] && exit 0; fi
  sleep 2
done`, rw))

	t.Run("a labelled client reaches PostgreSQL", func(t *testing.T) {
		p := clientPod(ns, "allowed", map[string]string{"role": "app"}, "export EXPECT_OPEN=1\n"+connect, c.Name+"-app")
		out, _ := runPod(t, p, 2*time.Minute)
		if !strings.Contains(out, "connected") {
			t.Errorf("the allowed client never connected:\n%s", out)
		}
	})
	t.Run("an unlabelled client does not", func(t *testing.T) {
		out, _ := runPod(t, clientPod(ns, "denied", nil, connect, c.Name+"-app"), 2*time.Minute)
		// Cut off at the TCP level (kube-router rejects: "Connection
		// refused"; other engines drop: "timeout expired"), never by
		// PostgreSQL itself (a FATAL from the server), which listens there.
		if strings.Contains(out, "connected") || strings.Contains(out, "FATAL") || !cutOff(out) {
			t.Errorf("the unlabelled client was not cut off at the TCP level:\n%s", out)
		}
	})
	t.Run("the status port is closed to pods outside the operator's namespace", func(t *testing.T) {
		var p corev1.Pod
		if err := cl.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: c.Status.CurrentPrimary}, &p); err != nil {
			t.Fatal(err)
		}
		// Even a pod that carries the operator's labels: labels are
		// anyone's to set in their own namespace, namespaces are not.
		script := fmt.Sprintf(`for i in 1 2 3; do pgward instance status --addr %s:%d --ca /secrets/%s-app/ca.crt --server-name %s-rw --timeout 3s 2>&1; sleep 1; done; true`,
			p.Status.PodIP, build.StatusPort, c.Name, c.Name)
		impostor := clientPod(ns, "impostor", map[string]string{"app.kubernetes.io/name": build.OperatorName}, script, c.Name+"-app")
		out, _ := runPod(t, impostor, 2*time.Minute)
		// The port is open (the operator uses it): a TCP-level failure
		// is the policy's doing.
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			l := strings.ToLower(line)
			if !strings.Contains(l, "dial tcp") || !cutOff(l) {
				t.Errorf("the status port was reachable from a pod outside %s: %s\n%s", operatorNamespace, line, out)
			}
		}
	})
	t.Run("replication and the operator still get through", func(t *testing.T) {
		// The operator must see the replica's postgres die and start it
		// again: that needs its status port and its commands.
		replica := c.Status.InstanceNames[0]
		if replica == c.Status.CurrentPrimary {
			replica = c.Status.InstanceNames[1]
		}
		pidFile := "/var/lib/postgresql/data/pgdata/postmaster.pid"
		before := strings.TrimSpace(mustExec(t, ns, replica, "head", "-1", pidFile))
		mustExec(t, ns, replica, "sh", "-c", "kill -9 "+before)
		// The instance manager never restarts postgres by itself: a new
		// postmaster means the operator saw it down on the status port
		// and told it to start.
		eventually(t, time.Minute, "the operator restarting the replica's postgres", func() error {
			out, err := podExecErr(ns, replica, "head", "-1", pidFile)
			if now := strings.TrimSpace(out); err != nil || now == before || now == "" {
				return fmt.Errorf("postmaster %q (was %s): %w", now, before, err)
			}
			return nil
		})
		waitHealthy(t, ns, c.Name, 2*time.Minute)
		eventually(t, time.Minute, "the replica streaming again", func() error {
			got := psqlLocal(t, ns, c.Status.CurrentPrimary, "postgres", "select count(*) from pg_stat_replication where state = 'streaming'")
			if got != "1" {
				return fmt.Errorf("%s streaming replicas", got)
			}
			return nil
		})
	})
}

// cutOff reports whether a client's error is a connection that never
// opened: refused by the policy engine (kube-router rejects) or dropped
// (other engines), as opposed to an answer from the server.
func cutOff(msg string) bool {
	l := strings.ToLower(msg)
	return strings.Contains(l, "connection refused") || strings.Contains(l, "timeout")
}
