package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDeclaredDatabases: Database documents beside the Cluster create
// databases with their schemas and extensions (Debian's postgresql-15
// contrib), apply a changed owner and connection limit, repair drift made
// by hand, drop a database declared absent and, with databaseReclaimPolicy
// delete, one whose document is removed; a declaration the server cannot
// apply (an owner that does not exist, an extension not installed) is
// reported in the status while the others are applied; one pgward refuses
// is refused by `up` naming the field. One cluster for every check.
func TestDeclaredDatabases(t *testing.T) {
	osUser := runAsUser(t)
	cluster := `apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: dbs
spec:
  instances: 1
  managed:
    roles:
    - name: alice
      login: true
    - name: bob
`
	one := `---
apiVersion: postgresql.cnpg.io/v1
kind: Database
metadata:
  name: dbs-one
spec:
  cluster: {name: dbs}
  name: one
  owner: alice
  connectionLimit: 10
  databaseReclaimPolicy: delete
  schemas:
  - name: reports
    owner: bob
  extensions:
  - name: pg_trgm
  - name: hstore
    schema: reports
`
	others := `---
apiVersion: postgresql.pgward.io/v1
kind: Database
metadata:
  name: dbs-orphan
spec:
  cluster: {name: dbs}
  name: orphan
  owner: nosuchrole
---
apiVersion: postgresql.pgward.io/v1
kind: Database
metadata:
  name: dbs-two
spec:
  cluster: {name: dbs}
  name: two
  owner: bob
  extensions:
  - name: nosuchextension
  - name: citext
---
apiVersion: postgresql.pgward.io/v1
kind: Database
metadata:
  name: dbs-gone
spec:
  cluster: {name: dbs}
  name: gone
  owner: bob
  ensure: absent
`
	dir := upCluster(t, "dbs", cluster+one+others)
	ctx := context.Background()
	type result struct {
		Object  string `json:"object"`
		Applied bool   `json:"applied"`
		Message string `json:"message"`
	}
	var st struct {
		Instances []struct {
			Port      int      `json:"port"`
			SocketDir string   `json:"socketDir"`
			Databases []result `json:"databases"`
		} `json:"instances"`
	}
	status := func() map[string]result {
		t.Helper()
		if err := json.Unmarshal([]byte(mustPgward(t, "local", "status", "-o", "json", "--dir", dir)), &st); err != nil || len(st.Instances) != 1 {
			t.Fatalf("status: %v", err)
		}
		out := map[string]result{}
		for _, r := range st.Instances[0].Databases {
			out[r.Object] = r
		}
		return out
	}
	status()
	port, sock := st.Instances[0].Port, st.Instances[0].SocketDir
	sql := func(db, q string) string {
		t.Helper()
		out, err := psql(ctx, osUser, fmt.Sprintf("host=%s port=%d dbname=%s user=postgres", sock, port, db), q)
		if err != nil {
			t.Fatalf("%s: %v %s", q, err, out)
		}
		return out
	}
	const dbAttrs = `SELECT pg_get_userbyid(datdba), datconnlimit FROM pg_database WHERE datname = 'one'`
	const inside = `SELECT (SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'reports'),
		(SELECT string_agg(e.extname || '@' || n.nspname, ',' ORDER BY e.extname) FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname <> 'plpgsql')`
	start := time.Now()
	eventually(t, 20*time.Second, "the declared databases", func() error {
		if got := sql("postgres", dbAttrs); got != "alice|10" {
			return fmt.Errorf("database one: %q", got)
		}
		if got := sql("one", inside); got != "bob|hstore@reports,pg_trgm@public" {
			return fmt.Errorf("inside one: %q", got)
		}
		s := status()
		if !s["dbs-one"].Applied {
			return fmt.Errorf("dbs-one not applied: %s", s["dbs-one"].Message)
		}
		if r := s["dbs-orphan"]; r.Applied || !strings.Contains(r.Message, "nosuchrole") {
			return fmt.Errorf("dbs-orphan: %+v", r)
		}
		if r := s["dbs-two"]; r.Applied || !strings.Contains(r.Message, "extension nosuchextension") {
			return fmt.Errorf("dbs-two: %+v", r)
		}
		return nil
	})
	t.Logf("declared databases in %s", time.Since(start).Round(100*time.Millisecond))
	// The bad declarations stop nothing else: two exists with citext.
	if got := sql("two", `SELECT pg_get_userbyid(d.datdba), (SELECT count(*) FROM pg_extension WHERE extname = 'citext') FROM pg_database d WHERE datname = 'two'`); got != "bob|1" {
		t.Errorf("database two: %q", got)
	}

	// Drift made by hand is repaired; a database declared absent is dropped.
	sql("postgres", `ALTER DATABASE one OWNER TO bob; ALTER DATABASE one CONNECTION LIMIT 3`)
	sql("postgres", `CREATE DATABASE gone`)
	sql("one", `DROP EXTENSION pg_trgm; ALTER SCHEMA reports OWNER TO alice`)
	start = time.Now()
	eventually(t, 20*time.Second, "drift repaired", func() error {
		if got := sql("postgres", dbAttrs+` UNION ALL SELECT 'gone', 0 FROM pg_database WHERE datname = 'gone'`); got != "alice|10" {
			return fmt.Errorf("databases: %q", got)
		}
		if got := sql("one", inside); got != "bob|hstore@reports,pg_trgm@public" {
			return fmt.Errorf("inside one: %q", got)
		}
		return nil
	})
	t.Logf("drift repaired in %s", time.Since(start).Round(100*time.Millisecond))

	// A changed owner and connection limit, applied to the running cluster.
	changed := strings.Replace(strings.Replace(one, "owner: alice", "owner: bob", 1), "connectionLimit: 10", "connectionLimit: 20", 1)
	mustPgward(t, "local", "up", "-f", writeManifest(t, "dbs-changed.yaml", cluster+changed+others), "--dir", dir)
	eventually(t, 20*time.Second, "the changed declaration", func() error {
		if got := sql("postgres", dbAttrs); got != "bob|20" {
			return fmt.Errorf("database one: %q", got)
		}
		return nil
	})

	// Refused before anything changes, naming the field.
	for _, c := range []struct{ from, to, field string }{
		{"owner: alice", "owner: postgres", "spec.owner"},
		{"name: one", "name: app\n  ensure: absent", "spec.ensure"},
		{"name: one", "name: template1", "spec.name"},
		{"- name: pg_trgm", "- name: \"pg_trgm; DROP DATABASE app\"", "spec.extensions[0].name"},
		{"cluster: {name: dbs}", "cluster: {name: other}", "spec.cluster.name"},
	} {
		bad := strings.Replace(one, c.from, c.to, 1)
		out, err := pgward(ctx, "local", "up", "-f", writeManifest(t, "dbs-bad.yaml", cluster+bad+others), "--dir", dir)
		if err == nil || !strings.Contains(out, c.field) {
			t.Errorf("%s: want a refusal naming %s, got %v\n%s", c.to, c.field, err, out)
		}
	}
	if got := sql("postgres", dbAttrs); got != "bob|20" {
		t.Errorf("a refused manifest changed database one: %q", got)
	}

	// Removed from the file with databaseReclaimPolicy delete: dropped.
	mustPgward(t, "local", "up", "-f", writeManifest(t, "dbs-removed.yaml", cluster+others), "--dir", dir)
	eventually(t, 20*time.Second, "the removed database dropped", func() error {
		if got := sql("postgres", `SELECT count(*) FROM pg_database WHERE datname = 'one'`); got != "0" {
			return fmt.Errorf("database one still exists")
		}
		return nil
	})
	if b, err := os.ReadFile(filepath.Join(dir, "databases.json")); err != nil || !strings.Contains(string(b), `"ensure":"absent"`) {
		t.Errorf("databases.json does not keep the removed database to be absent: %v %s", err, b)
	}
}
