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

// TestTablespaces: spec.tablespaces on real PostgreSQL. One cluster of two
// instances with a normal and a temporary tablespace: both exist on the
// primary with their owners, temp_tablespaces is pgward's, a table in the
// normal one streams to the replica into the replica's own directory (the
// same location string, resolved per instance), a switchover keeps it
// readable and writable, a tablespace added to the manifest later is
// created and an owner changed is applied, and a failover (kill -9 of the
// primary's postmaster) keeps the data and brings the old primary back
// by pg_rewind.
func TestTablespaces(t *testing.T) {
	osUser := runAsUser(t)
	manifest := func(extra string) string {
		return `apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: tbs
spec:
  instances: 2
  tablespaces:
  - name: fast
    owner: {name: app}
    storage: {size: 1Gi}
  - name: scratch
    temporary: true
    owner: {name: ` + extra + `}
`
	}
	dir := upCluster(t, "tbs", manifest("app"))
	ctx := context.Background()
	super := func(instance, sql string) (string, error) {
		for _, in := range status(t, dir).Instances {
			if in.Name == instance {
				return psql(ctx, osUser, fmt.Sprintf("host=%s port=%d dbname=app user=postgres", in.SocketDir, in.Port), sql)
			}
		}
		return "", fmt.Errorf("no instance %s", instance)
	}
	tablespaces := `SELECT string_agg(spcname || ':' || pg_get_userbyid(spcowner) || ':' || pg_tablespace_location(oid), ' ' ORDER BY spcname) FROM pg_tablespace WHERE spcname NOT LIKE 'pg\_%'`
	want := "fast:app:/proc/self/cwd/pg_dynshmem/pgward_tablespaces/fast/data scratch:app:/proc/self/cwd/pg_dynshmem/pgward_tablespaces/scratch/data"
	eventually(t, 15*time.Second, "the tablespaces on the primary", func() error {
		if got := appSQL(t, dir, tablespaces); got != want {
			return fmt.Errorf("tablespaces: %q", got)
		}
		return nil
	})
	if got := appSQL(t, dir, "SHOW temp_tablespaces"); got != "scratch" {
		t.Errorf("temp_tablespaces: %q", got)
	}
	// A temporary table goes to the temporary tablespace.
	got := appSQL(t, dir, "CREATE TEMP TABLE tt (i int); SELECT t.spcname FROM pg_class c JOIN pg_tablespace t ON t.oid = c.reltablespace WHERE c.relname = 'tt'")
	if got = got[strings.LastIndex(got, "\n")+1:]; got != "scratch" {
		t.Errorf("temporary table in %q, want scratch", got)
	}
	appSQL(t, dir, "CREATE TABLE t TABLESPACE fast AS SELECT g FROM generate_series(1, 1000) g")
	primary := status(t, dir).CurrentPrimary
	replica := "tbs-1"
	if primary == "tbs-1" {
		replica = "tbs-2"
	}
	eventually(t, 15*time.Second, "the table on the replica", func() error {
		got, err := super(replica, "SELECT count(*) FROM t")
		if err != nil || got != "1000" {
			return fmt.Errorf("%w %s", err, got)
		}
		return nil
	})
	// Each instance's files in its own directory, never another's.
	for _, n := range []string{primary, replica} {
		files, _ := filepath.Glob(filepath.Join(dir, "instances", n, "tablespaces", "fast", "data", "PG_15_*", "*", "*"))
		if len(files) == 0 {
			t.Errorf("%s: no relation file in its own tablespace directory", n)
		}
		fi, err := os.Stat(filepath.Join(dir, "instances", n, "tablespaces", "fast", "data"))
		if err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: tablespace directory: %v %v", n, fi, err)
		}
	}
	mustPgward(t, "local", "promote", replica, "--dir", dir)
	appSQL(t, dir, "INSERT INTO t VALUES (0)")
	if got := appSQL(t, dir, "SELECT count(*) FROM t"); got != "1001" {
		t.Errorf("rows after the switchover: %s", got)
	}
	eventually(t, 15*time.Second, "the old primary following with the new row", func() error {
		got, err := super(primary, "SELECT count(*) FROM t")
		if err != nil || got != "1001" {
			return fmt.Errorf("%w %s", err, got)
		}
		return nil
	})
	// Reconciled continuously: an owner changed, a tablespace added.
	mustPgward(t, "local", "up", "-f", writeManifest(t, "tbs2.yaml", manifest("postgres")+"  - name: late\n"), "--dir", dir)
	want = "fast:app:/proc/self/cwd/pg_dynshmem/pgward_tablespaces/fast/data late:postgres:/proc/self/cwd/pg_dynshmem/pgward_tablespaces/late/data scratch:postgres:/proc/self/cwd/pg_dynshmem/pgward_tablespaces/scratch/data"
	eventually(t, 20*time.Second, "the new tablespace and owner", func() error {
		if got := appSQL(t, dir, tablespaces); got != want {
			return fmt.Errorf("tablespaces: %q", got)
		}
		return nil
	})
	eventually(t, 15*time.Second, "the new tablespace replayed on the replica", func() error {
		got, err := super(primary, "SELECT count(*) FROM pg_tablespace WHERE spcname = 'late'")
		if err != nil || got != "1" {
			return fmt.Errorf("%w %s", err, got)
		}
		if _, err := os.Stat(filepath.Join(dir, "instances", primary, "tablespaces", "late", "data")); err != nil {
			return err
		}
		return nil
	})
	// A failover: the primary's postmaster killed, the other instance
	// promoted, the killed one back as a replica of it (pg_rewind, or a new
	// copy), each with the same tablespace links into its own directories.
	killed := status(t, dir).CurrentPrimary
	if out, err := runKill(postmasterPids(t, dir, killed)); err != nil {
		t.Fatalf("kill: %v %s", err, out)
	}
	uri := strings.TrimSpace(mustPgward(t, "local", "uri", "app", "--dir", dir))
	eventually(t, 30*time.Second, "a write on the new primary", func() error {
		if p := status(t, dir).CurrentPrimary; p == killed {
			return fmt.Errorf("primary still %s", p)
		}
		out, err := psql(ctx, "", uri, "INSERT INTO t VALUES (-1)")
		if err != nil {
			return fmt.Errorf("%w %s", err, out)
		}
		return nil
	})
	eventually(t, 30*time.Second, "the killed primary back with the new row", func() error {
		got, err := super(killed, "SELECT count(*) FROM t")
		if err != nil || got != "1002" {
			return fmt.Errorf("%w %s", err, got)
		}
		return nil
	})
	// By pg_rewind, which must find the tablespaces from where it runs.
	if b, err := os.ReadFile(filepath.Join(dir, "instances", killed, "instance.log")); err != nil || strings.Contains(string(b), "pg_rewind failed") {
		t.Errorf("the killed primary was not rewound (%v): %s", err, b)
	}
	for _, n := range []string{primary, replica} {
		links, _ := filepath.Glob(filepath.Join(dir, "instances", n, "data", "pg_tblspc", "*"))
		for _, l := range links {
			if target, err := os.Readlink(l); err != nil || !strings.HasPrefix(target, "/proc/self/cwd/pg_dynshmem/pgward_tablespaces/") {
				t.Errorf("%s: %s -> %q (%v)", n, l, target, err)
			}
		}
		if len(links) != 3 {
			t.Errorf("%s: %d tablespace links, want 3", n, len(links))
		}
	}
	// Removing one is refused before anything changes.
	out, err := pgward(ctx, "local", "up", "-f", writeManifest(t, "tbs3.yaml", manifest("postgres")), "--dir", dir)
	if err == nil || !strings.Contains(out, "spec.tablespaces[2]") || !strings.Contains(out, "cannot be removed") {
		t.Errorf("removing a tablespace: %v %s", err, out)
	}
}
