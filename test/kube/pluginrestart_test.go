//go:build e2e_kube

package kube

import (
	"strings"
	"testing"
	"time"

	v1 "github.com/pgward/pgward/api/v1"
)

// TestPluginPromoteAndRestartOnPods runs `kubectl pgward promote` and
// `kubectl pgward restart` against real pods: the switchover moves the
// primary and keeps every row; the rolling restart returns once every
// instance's postmaster was restarted and the cluster is healthy again,
// with the same rows.
func TestPluginPromoteAndRestartOnPods(t *testing.T) {
	ns := newNamespace(t, "e2e-restart")
	c := newCluster(t, ns, "cluster-example.yaml", func(c *v1.Cluster) { c.Spec.Instances = 2 })
	pods := []string{c.Name + "-1", c.Name + "-2"}
	primary := c.Status.CurrentPrimary
	other := pods[0]
	if other == primary {
		other = pods[1]
	}
	psqlLocal(t, ns, primary, "app", "CREATE TABLE t(i int); INSERT INTO t SELECT generate_series(1, 100)")

	start := time.Now()
	out := plugin(t, "promote", c.Name, other, "-n", ns)
	t.Logf("promote in %s: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(out))
	if got := getCluster(t, ns, c.Name).Status.CurrentPrimary; got != other {
		t.Fatalf("after promote %s the primary is %s", other, got)
	}
	psqlLocal(t, ns, other, "app", "INSERT INTO t VALUES (101)")
	if got := psqlLocal(t, ns, other, "app", "SELECT count(*) FROM t"); got != "101" {
		t.Fatalf("the new primary has %q rows", got)
	}

	waitStreaming(t, ns, c.Name) // the old primary back as a replica
	started := map[string]string{}
	for _, p := range pods {
		started[p] = psqlLocal(t, ns, p, "postgres", "SELECT pg_postmaster_start_time()")
	}
	start = time.Now()
	out = plugin(t, "restart", c.Name, "-n", ns)
	t.Logf("rolling restart in %s:\n%s", time.Since(start).Round(time.Millisecond), out)
	if !strings.Contains(out, "done in") {
		t.Errorf("restart returned without saying it is done:\n%s", out)
	}
	cur := getCluster(t, ns, c.Name)
	if cur.Status.ReadyInstances != 2 {
		t.Errorf("%d instances ready when restart returned", cur.Status.ReadyInstances)
	}
	for _, p := range pods {
		if now := psqlLocal(t, ns, p, "postgres", "SELECT pg_postmaster_start_time()"); now == started[p] {
			t.Errorf("%s was not restarted (postmaster started %s)", p, now)
		}
	}
	if got := psqlLocal(t, ns, cur.Status.CurrentPrimary, "app", "SELECT count(*) FROM t"); got != "101" {
		t.Errorf("after the restart the primary %s has %q rows", cur.Status.CurrentPrimary, got)
	}
}
