//go:build e2e_kube

package kube

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pgward/pgward/internal/kube"
)

// plugin runs bin/kubectl-pgward (make build links it), as kubectl runs a
// plugin: the name selects the plugin's command tree.
func plugin(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin := filepath.Join(repoRoot, "bin", "kubectl-pgward")
	cmd := exec.CommandContext(ctx, bin, args...) // #nosec G204 -- the binary under test
	cmd.Env = append(os.Environ(), "KUBECONFIG="+os.Getenv("KUBECONFIG"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl-pgward %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("kubectl-pgward %s wrote to stderr: %s", strings.Join(args, " "), stderr.String())
	}
	return stdout.String()
}

func pluginStatus(t *testing.T, ns, name string) kube.ClusterReport {
	t.Helper()
	out := plugin(t, "status", name, "-n", ns, "-o", "json")
	var r kube.ClusterReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	return r
}

// TestPluginFenceHibernateOnPods runs the kubectl plugin against real
// pods: status asks every instance through a port-forward over mutual TLS
// (roles, LSNs, lag and replication TLS from the instances themselves);
// a fenced replica stops and reports it while its pod stays; a fenced
// primary is not failed over; unfenced, it is the primary again;
// hibernation deletes the pods and keeps the PVCs; off brings the same
// primary back with every row.
func TestPluginFenceHibernateOnPods(t *testing.T) {
	ns := newNamespace(t, "e2e-plugin")
	c := newCluster(t, ns, "cluster-example.yaml", nil)
	primary := c.Status.CurrentPrimary
	psqlLocal(t, ns, primary, "app", "CREATE TABLE t(i int); INSERT INTO t SELECT generate_series(1, 50)")
	// The replicas stream once the cluster is healthy; give the status
	// a moment to show them.
	var r kube.ClusterReport
	eventually(t, time.Minute, "status from every instance", func() error {
		r = pluginStatus(t, ns, c.Name)
		streaming := 0
		for _, i := range r.Instance {
			if i.Error != "" || i.ServerCertNotAfter == nil {
				return fmt.Errorf("%s: %q", i.Name, i.Error)
			}
			if i.Role == "replica" && i.State == "streaming" && i.LagBytes != nil && i.TLS == "TLSv1.3" {
				streaming++
			}
		}
		if streaming != 2 {
			return fmt.Errorf("%d replicas streaming over TLS 1.3 in %+v", streaming, r.Instance)
		}
		return nil
	})
	t.Logf("status:\n%s", plugin(t, "status", c.Name, "-n", ns))
	replica := ""
	for _, i := range r.Instance {
		if i.Role == "primary" && i.Name != primary {
			t.Fatalf("primary %s, status says %s", primary, i.Name)
		}
		if i.Role == "replica" && replica == "" {
			replica = i.Name
		}
	}

	stateOf := func(name string) string {
		for _, i := range pluginStatus(t, ns, c.Name).Instance {
			if i.Name == name {
				return i.State
			}
		}
		return ""
	}
	start := time.Now()
	plugin(t, "fence", "on", c.Name, replica, "-n", ns)
	eventually(t, time.Minute, replica+" fenced", func() error {
		if s := stateOf(replica); s != "fenced" {
			return fmt.Errorf("%s is %q", replica, s)
		}
		return nil
	})
	t.Logf("replica %s fenced in %s", replica, time.Since(start).Round(time.Millisecond))
	psqlLocal(t, ns, primary, "app", "INSERT INTO t SELECT generate_series(51, 60)")

	plugin(t, "fence", "on", c.Name, primary, "-n", ns)
	eventually(t, time.Minute, primary+" fenced", func() error {
		if s := stateOf(primary); s != "fenced" {
			return fmt.Errorf("%s is %q", primary, s)
		}
		return nil
	})
	time.Sleep(20 * time.Second) // failover on pods takes 3-5 s (docs/benchmarks.md)
	r = pluginStatus(t, ns, c.Name)
	for _, i := range r.Instance {
		if i.Role == "primary" && i.State != "fenced" {
			t.Fatalf("%s runs as primary while %s is fenced: %+v", i.Name, primary, r)
		}
	}
	if r.CurrentPrimary != primary || r.TargetPrimary != primary {
		t.Fatalf("the fenced primary was replaced: %+v", r)
	}

	start = time.Now()
	plugin(t, "fence", "off", c.Name, "*", "-n", ns)
	if got := waitHealthy(t, ns, c.Name, 2*time.Minute); got.Status.CurrentPrimary != primary {
		t.Fatalf("after unfencing the primary is %s, want %s", got.Status.CurrentPrimary, primary)
	}
	t.Logf("unfenced, healthy in %s", time.Since(start).Round(time.Millisecond))

	ctx := context.Background()
	start = time.Now()
	plugin(t, "hibernate", "on", c.Name, "-n", ns)
	eventually(t, 3*time.Minute, "hibernated", func() error {
		var pods corev1.PodList
		if err := cl.List(ctx, &pods, client.InNamespace(ns)); err != nil {
			return err
		}
		if got := getCluster(t, ns, c.Name); len(pods.Items) != 0 || got.Status.Phase != kube.PhaseHibernated {
			return fmt.Errorf("%d pods, phase %q", len(pods.Items), got.Status.Phase)
		}
		return nil
	})
	t.Logf("hibernated (pods gone) in %s", time.Since(start).Round(time.Millisecond))
	var pvcs corev1.PersistentVolumeClaimList
	if err := cl.List(ctx, &pvcs, client.InNamespace(ns)); err != nil || len(pvcs.Items) != 3 {
		t.Fatalf("PVCs while hibernated: %d (%v)", len(pvcs.Items), err)
	}
	start = time.Now()
	plugin(t, "hibernate", "off", c.Name, "-n", ns)
	if got := waitHealthy(t, ns, c.Name, 4*time.Minute); got.Status.CurrentPrimary != primary {
		t.Fatalf("after hibernation the primary is %s, want %s", got.Status.CurrentPrimary, primary)
	}
	t.Logf("back from hibernation, healthy in %s", time.Since(start).Round(time.Millisecond))
	if n := psqlLocal(t, ns, primary, "app", "SELECT count(*) FROM t"); n != "60" {
		t.Fatalf("after hibernation %s rows, want 60", n)
	}
}
