package e2e

import (
	"archive/zip"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestReport writes a bug-report zip of a running cluster with superuser
// access, an LDAP bind password in pg_hba and every statement logged, and
// checks that no secret value pgward holds, no private key, no SCRAM
// verifier and no pg_hba secret is anywhere in it.
func TestReport(t *testing.T) {
	osUser := runAsUser(t)
	manifest := filepath.Join(workRoot, "report.yaml")
	if err := os.WriteFile(manifest, []byte(`apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: report
spec:
  instances: 1
  enableSuperuserAccess: true
  postgresql:
    parameters:
      log_statement: all
    pg_hba:
      - hostssl all ldapusers all ldap ldapserver=ldap.example.com ldapbasedn=dc=example ldapbindpasswd=TopSecretBind99 ldaptls=1
  bootstrap:
    initdb:
      database: app
      owner: app
`), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := newStateDir(t, "report")
	mustPgward(t, "local", "up", "-f", manifest, "--dir", dir)
	t.Cleanup(func() { _, _ = pgward(context.Background(), "local", "down", "--purge", "--dir", dir) })
	su := strings.TrimSpace(mustPgward(t, "local", "uri", "postgres", "--dir", dir))
	if _, err := psql(context.Background(), "", su, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	// pgward local psql: the app owner, and postgres on request, with no
	// password on any command line.
	for args, want := range map[string]string{"": "app", "--superuser": "postgres"} {
		full := []string{"local", "psql", "--dir", dir}
		if args != "" {
			full = append(full, args)
		}
		out, err := pgward(context.Background(), append(full, "--", "-XAtc", "SELECT current_user")...)
		if err != nil || strings.TrimSpace(out) != want {
			t.Errorf("pgward local psql %s: %v %q, want %q", args, err, out, want)
		}
	}
	outs := filepath.Join(workRoot, "reports")
	if err := os.Mkdir(outs, 0o700); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if out, err := exec.CommandContext(context.Background(), "chown", osUser, outs).CombinedOutput(); err != nil {
			t.Fatalf("chown: %v %s", err, out)
		}
	}
	zipPath := filepath.Join(outs, "report.zip")
	mustPgward(t, "local", "report", "--out", zipPath, "--dir", dir)

	// Every secret value, read straight from the store.
	var secretValues []string
	err := filepath.WalkDir(filepath.Join(dir, "secrets"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".crt") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if len(strings.TrimSpace(line)) >= 8 && !strings.HasPrefix(line, "-----") {
				secretValues = append(secretValues, strings.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(secretValues) < 6 {
		t.Fatalf("only %d secret values found; the check below would prove little", len(secretValues))
	}
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = zr.Close() }()
	names := map[string]bool{}
	for _, f := range zr.File {
		names[f.Name] = true
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		_ = rc.Close()
		for _, v := range secretValues {
			if bytes.Contains(b, []byte(v)) {
				t.Errorf("%s holds a secret value (%d bytes long)", f.Name, len(v))
			}
		}
		for _, shape := range []string{"PRIVATE KEY", "SCRAM-SHA-256$", "TopSecretBind99"} {
			if bytes.Contains(b, []byte(shape)) {
				t.Errorf("%s holds %q", f.Name, shape)
			}
		}
	}
	for _, want := range []string{"cluster.yaml", "status.json", "secrets-listing.txt", "log/controller.log",
		"instances/report-1/postgres.log", "instances/report-1/conf/pg_hba.conf"} {
		if !names[want] {
			t.Errorf("the report lacks %s", want)
		}
	}
	t.Logf("%d files checked against %d secret values", len(zr.File), len(secretValues))
}
