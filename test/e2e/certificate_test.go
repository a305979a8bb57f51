package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestUserCertificate issues a client certificate for the app owner and
// logs in with it alone on a `cert` pg_hba line; pgward's own identities
// and postgres (without superuser access) are refused.
func TestUserCertificate(t *testing.T) {
	osUser := runAsUser(t)
	manifest := filepath.Join(workRoot, "certuser.yaml")
	if err := os.WriteFile(manifest, []byte(`apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: certuser
spec:
  instances: 1
  postgresql:
    pg_hba:
      - hostssl app app all cert
  bootstrap:
    initdb:
      database: app
      owner: app
`), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := newStateDir(t, "certuser")
	mustPgward(t, "local", "up", "-f", manifest, "--dir", dir)
	t.Cleanup(func() { _, _ = pgward(context.Background(), "local", "down", "--purge", "--dir", dir) })
	// A directory the cluster's OS user may write in (root runs the
	// command as that user).
	outs := filepath.Join(workRoot, "certs")
	if err := os.Mkdir(outs, 0o700); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if out, err := exec.CommandContext(context.Background(), "chown", osUser, outs).CombinedOutput(); err != nil {
			t.Fatalf("chown: %v %s", err, out)
		}
	}
	out := filepath.Join(outs, "app")
	conninfo := strings.TrimSpace(mustPgward(t, "local", "certificate", "app", "--out", out, "--dir", dir))
	for _, f := range []string{"tls.crt", "tls.key", "ca.crt"} {
		fi, err := os.Stat(filepath.Join(out, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", f, err, fi)
		}
	}
	got, err := psql(context.Background(), osUser, conninfo+" dbname=app", "SELECT current_user")
	if err != nil || got != "app" {
		t.Fatalf("login with the certificate alone: %v %q", err, got)
	}
	if !strings.Contains(conninfo, "sslmode=verify-full") || strings.Contains(conninfo, "password") {
		t.Errorf("connection string %q", conninfo)
	}
	for user, want := range map[string]string{
		"streaming_replica": "one of pgward's own identities",
		"pgward-metrics":    "one of pgward's own identities",
		"postgres":          "needs enableSuperuserAccess: true",
		"app":               "exists: give a new directory",
		"Bad;Name":          "not a valid PostgreSQL identifier",
	} {
		o, err := pgward(context.Background(), "local", "certificate", user, "--out", out, "--dir", dir)
		if err == nil || !strings.Contains(o, want) {
			t.Errorf("certificate %s: %v %s, want %q", user, err, o, want)
		}
	}
}
