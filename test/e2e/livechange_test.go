package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRefusedLiveChange changes a running cluster's manifest to values
// only PostgreSQL can judge. Through `up`, the change is refused before
// anything is written. Written straight into the manifest file (as the
// operator's Secret reaches a pod), the instance manager asks the server,
// keeps its running configuration, says why in its status, and still
// starts after a crash; a good change after that is applied.
func TestRefusedLiveChange(t *testing.T) {
	osUser := runAsUser(t)
	base := `apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: live
spec:
  instances: 1
  enableSuperuserAccess: true
  postgresql:
    parameters:
      timezone: %s
    pg_hba:
      - hostssl app app 10.0.0.0/8 scram-sha-256
    pg_ident:
      - %s
  bootstrap:
    initdb:
      database: app
      owner: app
`
	good := fmt.Sprintf(base, "UTC", "m alice app")
	manifest := filepath.Join(workRoot, "live.yaml")
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
	write(manifest, good)
	dir := newStateDir(t, "live")
	mustPgward(t, "local", "up", "-f", manifest, "--dir", dir)
	t.Cleanup(func() { _, _ = pgward(context.Background(), "local", "down", "--purge", "--dir", dir) })
	ctx := context.Background()
	su := strings.TrimSpace(mustPgward(t, "local", "uri", "postgres", "--dir", dir))
	stored := filepath.Join(dir, "cluster.yaml")
	confDir := filepath.Join(dir, "instances", "live-1", "conf")
	confBefore, err := os.ReadFile(filepath.Join(confDir, "postgresql.conf"))
	if err != nil {
		t.Fatal(err)
	}

	// Through up: refused before the stored manifest is replaced.
	bad := fmt.Sprintf(base, "Mars/Olympus", "m alice app")
	write(manifest, bad)
	out, err := pgward(ctx, "local", "up", "-f", manifest, "--dir", dir)
	if err == nil || !strings.Contains(out, "spec.postgresql.parameters[timezone]") || !strings.Contains(out, `"Mars/Olympus"`) {
		t.Fatalf("up with a time zone the server refuses: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(stored); string(b) != good {
		t.Fatalf("a refused up replaced the stored manifest:\n%s", b)
	}

	// Straight into the file: the manager checks it with the server.
	for _, tc := range []struct{ name, manifest, field, says string }{
		{"a time zone", bad, "spec.postgresql.parameters[timezone]", `invalid value for parameter "TimeZone"`},
		// Go's regular expressions take flags anywhere, PostgreSQL's only
		// at the start: a difference pgward leaves to the server.
		{"a regular expression only Go accepts", fmt.Sprintf(base, "UTC", `'m "/^a(?i)lice$" app'`),
			"spec.postgresql.pg_ident", "invalid regular expression"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			write(stored, tc.manifest)
			eventually(t, 30*time.Second, "the refusal in status", func() error {
				st := mustPgward(t, "local", "status", "--dir", dir)
				if !strings.Contains(st, tc.field) || !strings.Contains(st, tc.says) {
					return fmt.Errorf("status does not say why:\n%s", st)
				}
				return nil
			})
			for _, f := range []string{"postgresql.conf", "pg_ident.conf"} {
				b, err := os.ReadFile(filepath.Join(confDir, f))
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(string(b), "Mars") || strings.Contains(string(b), "a(?i)lice") {
					t.Errorf("the refused change reached %s", f)
				}
			}
		})
	}
	if after, _ := os.ReadFile(filepath.Join(confDir, "postgresql.conf")); string(after) != string(confBefore) {
		t.Errorf("postgresql.conf changed")
	}
	// A crash now restarts PostgreSQL on the last good configuration.
	pid, err := os.ReadFile(filepath.Join(dir, "instances", "live-1", "data", "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := runKill(strings.SplitN(string(pid), "\n", 2)[0]); err != nil {
		t.Fatalf("kill: %v %s", err, out)
	}
	eventually(t, 30*time.Second, "restart after the crash", func() error {
		got, err := psql(ctx, "", su, "SHOW timezone")
		if err == nil && got != "UTC" {
			return fmt.Errorf("timezone %q", got)
		}
		return err
	})
	// A manager that restarts with the refused manifest on disk (a pod
	// restarted with a new Secret) starts from the last good one too.
	if err := syscall.Kill(instancePids(t, dir, "live-1")[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	eventually(t, 60*time.Second, "a new manager on the last good configuration", func() error {
		got, err := psql(ctx, "", su, "SHOW timezone")
		if err == nil && got != "UTC" {
			return fmt.Errorf("timezone %q", got)
		}
		return err
	})
	eventually(t, 30*time.Second, "the new manager's refusal in status", func() error {
		if st := mustPgward(t, "local", "status", "--dir", dir); !strings.Contains(st, "invalid regular expression") {
			return fmt.Errorf("the new manager does not say why it runs an older configuration:\n%s", st)
		}
		return nil
	})

	// A good change is applied.
	write(manifest, fmt.Sprintf(base, "Europe/Paris", "m alice app"))
	mustPgward(t, "local", "up", "-f", manifest, "--dir", dir)
	eventually(t, 30*time.Second, "the good change", func() error {
		got, err := psql(ctx, "", su, "SHOW timezone")
		if err == nil && got != "Europe/Paris" {
			return fmt.Errorf("timezone %q", got)
		}
		return err
	})
	if st := mustPgward(t, "local", "status", "--dir", dir); strings.Contains(st, "refuses") {
		t.Errorf("status still reports a refusal after a good change:\n%s", st)
	}
}
