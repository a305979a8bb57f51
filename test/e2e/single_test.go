package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSingleInstanceWithSuperuser covers what the sample does not:
// superuser access (a generated password for postgres), the post-init SQL,
// and a one-instance cluster restarted after a crash instead of failed over.
func TestSingleInstanceWithSuperuser(t *testing.T) {
	runAsUser(t)
	manifest := filepath.Join(workRoot, "single.yaml")
	err := os.WriteFile(manifest, []byte(`apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: single
spec:
  instances: 1
  enableSuperuserAccess: true
  # CloudNativePG's shutdown timings, seen at the end in the manager's log.
  stopDelay: 25
  smartShutdownTimeout: 4
  logLevel: debug
  postgresql:
    parameters:
      # Every statement is logged, by every path PostgreSQL has: the role
      # passwords (their SCRAM verifiers) must still not be.
      log_statement: all
      log_min_duration_statement: "0"
      log_min_duration_sample: "0"
      log_statement_sample_rate: "1"
      log_transaction_sample_rate: "1"
      log_duration: "on"
      log_min_messages: debug5
      log_min_error_statement: debug5
      log_parameter_max_length: "-1"
      log_parameter_max_length_on_error: "-1"
      debug_print_parse: "on"
      debug_print_rewritten: "on"
      debug_print_plan: "on"
  bootstrap:
    initdb:
      database: shop
      owner: shopper
      postInitSQL:
        - CREATE ROLE auditor NOLOGIN
      postInitTemplateSQL:
        - CREATE EXTENSION intarray
      postInitApplicationSQL:
        - CREATE TABLE seeded(x int)
        - INSERT INTO seeded VALUES (42)
        - ALTER TABLE seeded OWNER TO shopper
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	dir := newStateDir(t, "single")
	mustPgward(t, "local", "up", "-f", manifest, "--dir", dir)
	t.Cleanup(func() { _, _ = pgward(context.Background(), "local", "down", "--purge", "--dir", dir) })
	ctx := context.Background()

	su := strings.TrimSpace(mustPgward(t, "local", "uri", "postgres", "--dir", dir))
	got, err := psql(ctx, "", su, "SELECT current_user, (SELECT count(*) FROM pg_roles WHERE rolname = 'auditor')")
	if err != nil || got != "postgres|1" {
		t.Fatalf("superuser over TLS with the generated password: %v: %q", err, got)
	}
	// The manifest has no pg_hba lines: the default refuses a session
	// without TLS even with the right password.
	plain := strings.Replace(su, "sslmode=verify-full", "sslmode=disable", 1)
	if plain == su {
		t.Fatalf("superuser URI %q has no sslmode=verify-full to replace", su)
	}
	if out, err := psql(ctx, "", plain, "SELECT 1"); err == nil || !strings.Contains(out, "no encryption") {
		t.Errorf("superuser without TLS: want refused by pg_hba, got %v: %s", err, out)
	}
	app := strings.TrimSpace(mustPgward(t, "local", "uri", "shopper", "--dir", dir))
	got, err = psql(ctx, "", app, "SELECT current_user, x FROM seeded")
	if err != nil || got != "shopper|42" {
		t.Fatalf("application owner and post-init SQL: %v: %q", err, got)
	}
	// postInitTemplateSQL ran in template1, from which the application
	// database was made.
	if got, err := psql(ctx, "", app, "SELECT extname FROM pg_extension WHERE extname = 'intarray'"); err != nil || got != "intarray" {
		t.Errorf("postInitTemplateSQL's extension in the application database: %v %q", err, got)
	}
	if _, err := os.Stat(filepath.Join(dir, "secrets", "single-superuser", "pgpass")); err != nil {
		t.Fatalf("superuser secret: %v", err)
	}
	// With log_statement = all, the statements that set passwords are
	// still kept out of the log (and carry only SCRAM verifiers anyway).
	log, err := os.ReadFile(filepath.Join(dir, "instances", "single-1", "postgres.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "statement: SELECT current_user") {
		t.Fatalf("log_statement=all did not take effect; the check below would prove nothing")
	}
	if strings.Contains(string(log), "SCRAM-SHA-256$") || strings.Contains(string(log), "PASSWORD") {
		t.Error("a password statement reached the server log")
	}
	checkNoLeaks(t, dir)
	// With superuser access on, postgres's password is by choice.
	expectAudit(t, dir, nil, map[string]string{"superuser-no-password": "superuser access is on"})

	// ALTER SYSTEM would override the declared configuration from
	// postgresql.auto.conf; pgward empties that file at every start.
	if out, err := psql(ctx, "", su, "ALTER SYSTEM SET work_mem = '77MB'"); err != nil {
		t.Fatalf("ALTER SYSTEM: %v %s", err, out)
	}
	expectAudit(t, dir, map[string]string{"alter-system-drift": "FAIL"}, map[string]string{"alter-system-drift": "sets work_mem"})

	// One instance: a crash is followed by a restart, not a failover.
	pid, err := os.ReadFile(filepath.Join(dir, "instances", "single-1", "data", "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := runKill(strings.SplitN(string(pid), "\n", 2)[0]); err != nil {
		t.Fatalf("kill: %v %s", err, out)
	}
	eventually(t, 30e9, "restart after crash", func() error {
		_, err := psql(ctx, "", app, "SELECT 1")
		return err
	})
	if got, err := psql(ctx, "", su, "SHOW work_mem"); err != nil || got == "77MB" {
		t.Errorf("ALTER SYSTEM survived a restart: %v %q", err, got)
	}
	// The restart emptied postgresql.auto.conf: no drift left.
	expectAudit(t, dir, nil, nil)

	checkAlterSystemReverted(t, manifest, dir, su)
	checkShutdownTimings(t, dir, su)
}

// checkAlterSystemReverted sets postgresql.enableAlterSystem: false on the
// running cluster: an ALTER SYSTEM applied by a reload is then undone by
// the manager within seconds, not at the next restart.
func checkAlterSystemReverted(t *testing.T, manifest, dir, su string) {
	t.Helper()
	ctx := context.Background()
	b, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(b), "  postgresql:\n", "  postgresql:\n    enableAlterSystem: false\n", 1)
	if err := os.WriteFile(manifest, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	mustPgward(t, "local", "up", "-f", manifest, "--dir", dir)
	mustPgward(t, "local", "reload", "--dir", dir)
	for _, sql := range []string{"ALTER SYSTEM SET work_mem = '77MB'", "SELECT pg_reload_conf()"} {
		if out, err := psql(ctx, "", su, sql); err != nil {
			t.Fatalf("%s: %v %s", sql, err, out)
		}
	}
	eventually(t, 10e9, "ALTER SYSTEM undone", func() error {
		got, err := psql(ctx, "", su, "SHOW work_mem")
		if err == nil && got == "77MB" {
			err = fmt.Errorf("work_mem %s", got)
		}
		return err
	})
	log, err := os.ReadFile(filepath.Join(dir, "instances", "single-1", "instance.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), `msg="ALTER SYSTEM reverted (spec.postgresql.enableAlterSystem is false)" instance=single-1 parameters=[work_mem]`) {
		t.Error("no revert in the manager's log")
	}
	expectAudit(t, dir, nil, nil)
}

// checkShutdownTimings stops the cluster while a session is open: the
// manager asks for a smart shutdown, which waits for the session, for
// spec.smartShutdownTimeout (4 s), then for a fast one, which ends it;
// all within spec.stopDelay. spec.logLevel debug shows in the manager's
// log too.
func checkShutdownTimings(t *testing.T, dir, su string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	session := make(chan string, 1)
	go func() {
		out, _ := psql(ctx, "", su, "SELECT pg_sleep(60)")
		session <- out
	}()
	eventually(t, 10e9, "the session open", func() error {
		got, err := psql(ctx, "", su, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(60)%'")
		if err == nil && got != "1" {
			err = fmt.Errorf("%s sessions", got)
		}
		return err
	})
	start := time.Now()
	mustPgward(t, "local", "down", "--dir", dir)
	took := time.Since(start)
	if took < 4*time.Second || took > 25*time.Second {
		t.Errorf("down took %s: want the 4 s smart phase, then a fast shutdown, within stopDelay 25 s", took)
	}
	if out := <-session; !strings.Contains(out, "terminating connection due to administrator command") {
		t.Errorf("the session was not ended by the fast shutdown: %q", out)
	}
	log, err := os.ReadFile(filepath.Join(dir, "instances", "single-1", "instance.log"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(log)
	plan := strings.Index(text, `msg="stopping postgres within spec.stopDelay" instance=single-1 stopDelay=25s plan="smart until 4s, fast until 22s, immediate until 24s, forced"`)
	smart := strings.LastIndex(text, `msg="requesting smart shutdown"`)
	fast := strings.LastIndex(text, `msg="requesting fast shutdown"`)
	if plan < 0 || smart < plan || fast < smart || strings.Contains(text[plan:], `msg="requesting immediate shutdown"`) {
		t.Errorf("the manager's shutdown (plan at %d, smart at %d, fast at %d):\n%s", plan, smart, fast, text[max(plan, 0):])
	}
	if !strings.Contains(text, `level=DEBUG msg="command received"`) {
		t.Error("logLevel debug: no debug line in the manager's log")
	}
}
