package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLocalReload changes a reloadable parameter (work_mem) and one that
// needs a restart (max_connections) in a running 2-instance cluster's
// manifest: `pgward local reload` returns with work_mem in effect on
// every instance, names max_connections as waiting for `restart`, and,
// given a manifest PostgreSQL refuses, fails naming the instances and the
// field.
func TestLocalReload(t *testing.T) {
	osUser := runAsUser(t)
	manifest := `apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: reload
spec:
  instances: 2
  postgresql:
    parameters:
      work_mem: %s
      max_connections: "%d"
      timezone: %s
  bootstrap:
    initdb:
      database: app
      owner: app
`
	file := filepath.Join(workRoot, "reload.yaml")
	write := func(path, body string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if os.Geteuid() == 0 {
			u, err := user.Lookup(osUser)
			if err != nil {
				t.Fatal(err)
			}
			if out, err := exec.CommandContext(context.Background(), "chown", u.Uid+":"+u.Gid, path).CombinedOutput(); err != nil {
				t.Fatalf("chown: %v %s", err, out)
			}
		}
	}
	write(file, fmt.Sprintf(manifest, "4MB", 100, "UTC"))
	dir := newStateDir(t, "reload")
	mustPgward(t, "local", "up", "-f", file, "--dir", dir)
	t.Cleanup(func() { _, _ = pgward(context.Background(), "local", "down", "--purge", "--dir", dir) })
	ctx := context.Background()
	cs := status(t, dir)
	show := func(i int, param string) string {
		t.Helper()
		sock := fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres", cs.Instances[i].SocketDir, cs.Instances[i].Port)
		out, err := psql(ctx, osUser, sock, "SHOW "+param)
		if err != nil {
			t.Fatalf("SHOW %s on %s: %v: %s", param, cs.Instances[i].Name, err, out)
		}
		return out
	}
	for i := range cs.Instances {
		if got := show(i, "work_mem"); got != "4MB" {
			t.Fatalf("%s: work_mem %q before the change", cs.Instances[i].Name, got)
		}
	}

	// The change goes into the stored manifest; reload applies it at once
	// (the managers' own check would within 10 s).
	write(filepath.Join(dir, "cluster.yaml"), fmt.Sprintf(manifest, "7MB", 100, "UTC"))
	start := time.Now()
	out := mustPgward(t, "local", "reload", "--dir", dir)
	took := time.Since(start)
	t.Logf("reload (%s):\n%s", took.Round(time.Millisecond), out)
	for i, is := range cs.Instances {
		if got := show(i, "work_mem"); got != "7MB" {
			t.Errorf("%s: work_mem %q right after reload, want 7MB", is.Name, got)
		}
		if want := is.Name + ": reloaded, configuration in effect"; !strings.Contains(out, want) {
			t.Errorf("reload does not say %q", want)
		}
	}
	if took > 5*time.Second {
		t.Errorf("reload took %s: it should not wait for the periodic check", took)
	}

	// A manifest the server refuses: reload fails, naming each instance
	// and the field, and the running configuration stays.
	write(filepath.Join(dir, "cluster.yaml"), fmt.Sprintf(manifest, "7MB", 120, "Mars/Olympus"))
	out, err := pgward(ctx, "local", "reload", "--dir", dir)
	if err == nil {
		t.Fatalf("reload of a refused manifest succeeded:\n%s", out)
	}
	for _, is := range cs.Instances {
		if want := is.Name + `: FAILED: PostgreSQL refuses the configuration: spec.postgresql.parameters[timezone]: invalid value for parameter "TimeZone"`; !strings.Contains(out, want) {
			t.Errorf("reload does not say %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "not in effect on reload-1, reload-2") {
		t.Errorf("reload does not name the instances in its error:\n%s", out)
	}
	if got := show(0, "timezone"); got != "UTC" {
		t.Errorf("timezone %q after a refused reload", got)
	}

	// A parameter only a restart applies: named, with the restart command
	// (the controller then restarts for it, rolling).
	write(filepath.Join(dir, "cluster.yaml"), fmt.Sprintf(manifest, "7MB", 120, "UTC"))
	out = mustPgward(t, "local", "reload", "--dir", dir)
	t.Logf("reload:\n%s", out)
	for _, is := range cs.Instances {
		if want := is.Name + ": reloaded; waiting for a restart: max_connections ("; !strings.Contains(out, want) {
			t.Errorf("reload does not say %q", want)
		}
	}
	if !strings.Contains(out, "`pgward local restart --dir "+dir+"` does it now") {
		t.Errorf("reload does not point at restart:\n%s", out)
	}

	// `up` with a changed manifest on the running cluster returns once the
	// change is in effect, not before the managers' next check.
	write(file, fmt.Sprintf(manifest, "9MB", 120, "UTC"))
	start = time.Now()
	out = mustPgward(t, "local", "up", "-f", file, "--dir", dir)
	took = time.Since(start)
	for i, is := range cs.Instances {
		if got := show(i, "work_mem"); got != "9MB" {
			t.Errorf("%s: work_mem %q right after up, want 9MB:\n%s", is.Name, got, out)
		}
		// "reloaded", and possibly still "waiting for a restart" of the
		// max_connections change above, which the controller is rolling.
		if want := is.Name + ": reloaded"; !strings.Contains(out, want) {
			t.Errorf("up does not say %q:\n%s", want, out)
		}
	}
	t.Logf("up on the running cluster (%s):\n%s", took.Round(time.Millisecond), out)
}
