//go:build e2e_kube

package kube

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/kube/build"
)

// TestTablespacesOnPods: spec.tablespaces on real pods. Each pod mounts a
// volume of its own per tablespace; the primary's instance manager creates
// them (owner, temp_tablespaces for the temporary one); a table in one
// streams to the replica, which replays CREATE TABLESPACE into its own
// volume (same path, another PVC), and a switchover keeps it readable and
// writable.
func TestTablespacesOnPods(t *testing.T) {
	ns := newNamespace(t, "tablespaces")
	c := newCluster(t, ns, "cluster-example.yaml", func(c *v1.Cluster) {
		c.Name = "tbs"
		c.Spec.Instances = 2
		c.Spec.Tablespaces = []v1.TablespaceConfiguration{
			{Name: "fast", Owner: v1.DatabaseRoleRef{Name: "app"}, Storage: v1.StorageConfiguration{Size: "1Gi"}},
			{Name: "scratch", Temporary: true, Storage: v1.StorageConfiguration{Size: "1Gi"}},
		}
	})
	c = waitStreaming(t, ns, c.Name)
	primary := c.Status.CurrentPrimary
	replica := ""
	for _, n := range c.Status.InstanceNames {
		if n != primary {
			replica = n
		}
	}
	sql := func(pod, q string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := podExec(ctx, ns, pod, "psql", "-h", "/run/postgresql", "-U", "postgres", "-d", "app", "-v", "ON_ERROR_STOP=1", "-XAtc", q)
		return strings.TrimSpace(out), err
	}
	const list = `SELECT string_agg(spcname || ':' || pg_get_userbyid(spcowner) || ':' || pg_tablespace_location(oid), ' ' ORDER BY spcname) FROM pg_tablespace WHERE spcname NOT LIKE 'pg\_%'`
	want := "fast:app:" + build.TablespacesMount + "/fast/data scratch:postgres:" + build.TablespacesMount + "/scratch/data"
	eventually(t, time.Minute, "the tablespaces on the primary", func() error {
		if got, err := sql(primary, list); err != nil || got != want {
			return fmt.Errorf("%w %q", err, got)
		}
		return nil
	})
	if got := psqlLocal(t, ns, primary, "app", "SHOW temp_tablespaces"); got != "scratch" {
		t.Errorf("temp_tablespaces %q", got)
	}
	psqlLocal(t, ns, primary, "app", "CREATE TABLE t TABLESPACE fast AS SELECT g FROM generate_series(1, 1000) g")
	eventually(t, time.Minute, "the table on the replica", func() error {
		if got, err := sql(replica, "SELECT count(*) FROM t"); err != nil || got != "1000" {
			return fmt.Errorf("%w %q", err, got)
		}
		return nil
	})
	// Each pod has the tablespace on a volume mounted at the same path,
	// and its relation files there.
	for _, pod := range []string{primary, replica} {
		mounts := mustExec(t, ns, pod, "cat", "/proc/self/mountinfo")
		for _, tbs := range []string{"fast", "scratch"} {
			if !strings.Contains(mounts, " "+build.TablespacesMount+"/"+tbs+" ") {
				t.Errorf("%s: nothing mounted at %s/%s", pod, build.TablespacesMount, tbs)
			}
		}
		if got := mustExec(t, ns, pod, "ls", build.TablespacesMount+"/fast/data"); !strings.HasPrefix(strings.TrimSpace(got), "PG_15_") {
			t.Errorf("%s: %s/fast/data holds %q", pod, build.TablespacesMount, got)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := kube.RequestSwitchover(ctx, cl, client.ObjectKey{Namespace: ns, Name: c.Name}, replica, 2*time.Minute); err != nil {
		t.Fatalf("switchover to %s: %v", replica, err)
	}
	waitStreaming(t, ns, c.Name)
	psqlLocal(t, ns, replica, "app", "INSERT INTO t VALUES (0)")
	eventually(t, time.Minute, "the old primary following with the new row", func() error {
		if got, err := sql(primary, "SELECT count(*) FROM t"); err != nil || got != "1001" {
			return fmt.Errorf("%w %q", err, got)
		}
		return nil
	})
}
