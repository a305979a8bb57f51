package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestSharedPreloadLibraries: pg_stat_statements and auto_explain named in
// spec.postgresql.shared_preload_libraries are loaded, their parameters
// take effect, and the extension works.
func TestSharedPreloadLibraries(t *testing.T) {
	runAsUser(t)
	manifest := filepath.Join(workRoot, "preload.yaml")
	if err := os.WriteFile(manifest, []byte(`apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: preload
spec:
  instances: 1
  enableSuperuserAccess: true
  postgresql:
    shared_preload_libraries: [pg_stat_statements, auto_explain]
    parameters:
      pg_stat_statements.track: all
      pg_stat_statements.max: "2000"
      auto_explain.log_min_duration: "0"
  bootstrap:
    initdb:
      database: app
      owner: app
`), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := newStateDir(t, "preload")
	mustPgward(t, "local", "up", "-f", manifest, "--dir", dir)
	t.Cleanup(func() { _, _ = pgward(context.Background(), "local", "down", "--purge", "--dir", dir) })
	su := strings.TrimSpace(mustPgward(t, "local", "uri", "postgres", "--dir", dir))
	ctx := context.Background()
	for q, want := range map[string]string{
		"SHOW shared_preload_libraries":      "pg_stat_statements,auto_explain",
		"SHOW pg_stat_statements.track":      "all",
		"SHOW pg_stat_statements.max":        "2000",
		"SHOW auto_explain.log_min_duration": "0",
	} {
		if got, err := psql(ctx, "", su, q); err != nil || got != want {
			t.Errorf("%s: %v %q, want %q", q, err, got, want)
		}
	}
	if out, err := psql(ctx, "", su, "CREATE EXTENSION pg_stat_statements"); err != nil {
		t.Fatalf("CREATE EXTENSION: %v %s", err, out)
	}
	got, err := psql(ctx, "", su, "SELECT count(*) FROM pg_stat_statements")
	if n, _ := strconv.Atoi(got); err != nil || n == 0 {
		t.Errorf("pg_stat_statements counts nothing: %v %q", err, got)
	}
	// pgward's own password statements are not among the texts the
	// module keeps, at bootstrap nor after a rotation.
	mustPgward(t, "local", "rotate-password", "app", "--dir", dir)
	if got, err := psql(ctx, "", su, `SELECT count(*) FROM pg_stat_statements WHERE query ILIKE '%password%' OR query LIKE '%SCRAM-SHA-256$%'`); err != nil || got != "0" {
		t.Errorf("pg_stat_statements holds password statements: %v %q", err, got)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "instances", "preload-1", "postgres.log"))
	{ // the test's own query names the pattern it looks for
		for _, line := range strings.Split(string(log), "\n") {
			if strings.Contains(line, "SCRAM-SHA-256$") && !strings.Contains(line, "%SCRAM-SHA-256$%") {
				t.Errorf("a verifier reached the server log: %.200s", line)
			}
		}
	}
	if !strings.Contains(string(log), "duration:") || !strings.Contains(string(log), "plan:") {
		t.Errorf("auto_explain logged no plan")
	}
}
