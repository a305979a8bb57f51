package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestBootstrapImportAndSQLRefs runs CloudNativePG's logical import on
// real PostgreSQL, over verified TLS with the password in a pgpass file:
// a microservice import (one database into the application database,
// owned by the application owner) on a cluster that also uses an ICU
// locale, a 32 MB WAL segment and SQL references from the file's Secret
// and ConfigMap (run in CloudNativePG's order); then a monolith import of
// a database and every ordinary role (attributes and memberships, never
// a password).
func TestBootstrapImportAndSQLRefs(t *testing.T) {
	runAsUser(t)
	ctx := context.Background()
	src := upCluster(t, "impsrc", `apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: impsrc
spec:
  instances: 1
  enableSuperuserAccess: true
  bootstrap:
    initdb:
      postInitSQL:
      - CREATE ROLE shopreader NOLOGIN
      - CREATE ROLE shopowner LOGIN CREATEDB CONNECTION LIMIT 7 PASSWORD 'not-copied'
      - GRANT shopreader TO shopowner
      - CREATE DATABASE shop OWNER shopowner
`)
	appSQL(t, src, "CREATE TABLE items AS SELECT g AS id FROM generate_series(1, 1000) g")
	su := strings.TrimSpace(mustPgward(t, "local", "uri", "postgres", "--dir", src))
	// pgpass lines name their database: another one needs the password.
	onDB := func(uri, db, secretsDir, secret string) string {
		pw, err := os.ReadFile(filepath.Join(secretsDir, "secrets", secret, "password"))
		if err != nil {
			t.Fatal(err)
		}
		return regexp.MustCompile(`/[a-z_]+\?`).ReplaceAllString(uri, "/"+db+"?") + "&password=" + url.QueryEscape(string(pw))
	}
	if out, err := psql(ctx, "", onDB(su, "shop", src, "impsrc-superuser"), "SET ROLE shopowner; CREATE TABLE orders AS SELECT g AS id FROM generate_series(1, 500) g; GRANT SELECT ON orders TO shopreader"); err != nil {
		t.Fatalf("filling shop: %v %s", err, out)
	}
	port := instancePorts(t, src)["impsrc-1"]
	read := func(secret, key string) string {
		b, err := os.ReadFile(filepath.Join(src, "secrets", secret, key))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	indent := func(s string) string { return "    " + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n    ") }
	// No sslmode, as in CloudNativePG's TLS samples: naming the CA makes
	// it verify-full (api/v1 setExternalTLSDefaults), so the import runs
	// over TLS with the server's name checked.
	external := func(user, secret string) string {
		return fmt.Sprintf(`  externalClusters:
  - name: impsrc
    connectionParameters:
      host: localhost
      port: "%d"
      user: %s
      dbname: postgres
    password: {name: %s, key: password}
    sslRootCert: {name: impsrc-ca-copy, key: ca.crt}
---
apiVersion: v1
kind: Secret
metadata:
  name: impsrc-ca-copy
stringData:
  ca.crt: |
%s
`, port, user, secret, indent(read("impsrc-ca", "ca.crt")))
	}

	t.Run("microservice with ICU, WAL segment size and SQL refs", func(t *testing.T) {
		dst := upCluster(t, "impmicro", `apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: impmicro
spec:
  instances: 1
  bootstrap:
    initdb:
      encoding: UTF8
      locale: C.UTF-8
      localeProvider: icu
      icuLocale: de-DE
      walSegmentSize: 32
      options: ["-k"]
      postInitTemplateSQLRefs:
        configMapRefs: [{name: sql, key: template.sql}]
      postInitApplicationSQL:
      - CREATE TABLE steps (n serial, what text)
      - INSERT INTO steps (what) VALUES ('inline')
      - ALTER TABLE steps OWNER TO app
      postInitApplicationSQLRefs:
        configMapRefs: [{name: sql, key: app.sql}]
        secretRefs: [{name: sql-secret, key: app.sql}]
      import:
        type: microservice
        databases: [app]
        source: {externalCluster: impsrc}
        pgDumpExtraOptions: ["--jobs=2"]
        pgRestoreExtraOptions: ["--jobs=2", "--no-comments"]
        postImportApplicationSQL:
        - INSERT INTO steps (what) VALUES ('post-import')
`+external("app", "impsrc-app-copy")+`---
apiVersion: v1
kind: Secret
metadata:
  name: impsrc-app-copy
stringData:
  password: '`+read("impsrc-app", "password")+`'
---
apiVersion: v1
kind: Secret
metadata:
  name: sql-secret
stringData:
  app.sql: |
    INSERT INTO steps (what) VALUES ('secret');
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: sql
data:
  app.sql: |
    INSERT INTO steps (what) VALUES ('configmap');
  template.sql: CREATE TABLE from_template (x int); GRANT SELECT ON from_template TO PUBLIC;
`)
		for q, want := range map[string]string{
			"SELECT string_agg(what, ',' ORDER BY n) FROM steps":                                                             "inline,secret,configmap,post-import",
			"SELECT count(*), pg_get_userbyid(relowner) FROM items JOIN pg_class ON relname = 'items' GROUP BY 2":            "1000|app",
			"SELECT to_regclass('from_template') IS NOT NULL":                                                                "t",
			"SELECT datlocprovider::text || ' ' || daticulocale || ' ' || datcollate FROM pg_database WHERE datname = 'app'": "i de-DE C.UTF-8",
			"SELECT string_agg(x, '' ORDER BY x) FROM (VALUES ('b'), ('ä'), ('a')) v(x)":                                     "aäb",
			"SHOW wal_segment_size": "32MB",
			"SHOW data_checksums":   "on",
		} {
			if got := appSQL(t, dst, q); got != want {
				t.Errorf("%s: got %q, want %q", q, got, want)
			}
		}
		if _, err := os.Stat(filepath.Join(dst, "instances", "impmicro-1", "conf", "import")); !os.IsNotExist(err) {
			t.Errorf("the dump directory is left behind: %v", err)
		}
		if entries, _ := os.ReadDir(filepath.Join(dst, "instances", "impmicro-1", "conf")); len(entries) > 0 {
			for _, e := range entries {
				if strings.Contains(e.Name(), "pgpass") {
					t.Errorf("a pgpass file is left behind: %s", e.Name())
				}
			}
		}
	})

	t.Run("schema only", func(t *testing.T) {
		dst := upCluster(t, "impschema", `apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: impschema
spec:
  instances: 1
  bootstrap:
    initdb:
      import:
        type: microservice
        schemaOnly: true
        databases: [app]
        source: {externalCluster: impsrc}
`+external("app", "impsrc-app-copy")+`---
apiVersion: v1
kind: Secret
metadata:
  name: impsrc-app-copy
stringData:
  password: '`+read("impsrc-app", "password")+`'
`)
		if got := appSQL(t, dst, "SELECT count(*) FROM items"); got != "0" {
			t.Errorf("schemaOnly: items has %s rows, want the table and no row", got)
		}
	})

	t.Run("a database the source lacks is reported at once", func(t *testing.T) {
		dir := newStateDir(t, "impbad")
		t.Cleanup(func() { _, _ = pgward(context.Background(), "local", "down", "--purge", "--dir", dir) })
		start := time.Now()
		out, err := pgward(ctx, "local", "up", "--timeout", "3m", "-f", writeManifest(t, "impbad.yaml", `apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: impbad
spec:
  instances: 1
  bootstrap:
    initdb:
      import:
        type: microservice
        databases: [nope]
        source: {externalCluster: impsrc}
`+external("app", "impsrc-app-copy")+`---
apiVersion: v1
kind: Secret
metadata:
  name: impsrc-app-copy
stringData:
  password: '`+read("impsrc-app", "password")+`'
`), "--dir", dir)
		if err == nil || !strings.Contains(out, `spec.bootstrap.initdb.import: database "nope"`) || !strings.Contains(out, "pg_dump") {
			t.Fatalf("got %v:\n%s", err, out)
		}
		if d := time.Since(start); d > time.Minute {
			t.Errorf("reported after %s, not at once", d)
		}
	})

	t.Run("monolith with every role", func(t *testing.T) {
		dst := upCluster(t, "impmono", `apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: impmono
spec:
  instances: 1
  enableSuperuserAccess: true
  bootstrap:
    initdb:
      import:
        type: monolith
        databases: [shop]
        roles: ["*"]
        source: {externalCluster: impsrc}
`+external("postgres", "impsrc-su-copy")+`---
apiVersion: v1
kind: Secret
metadata:
  name: impsrc-su-copy
stringData:
  password: '`+read("impsrc-superuser", "password")+`'
`)
		dsu := strings.TrimSpace(mustPgward(t, "local", "uri", "postgres", "--dir", dst))
		for q, want := range map[string]string{
			"SELECT rolcanlogin, rolcreatedb, rolconnlimit, rolpassword IS NULL, rolsuper FROM pg_authid WHERE rolname = 'shopowner'": "t|t|7|t|f",
			"SELECT pg_has_role('shopowner', 'shopreader', 'MEMBER')":                                                                 "t",
			"SELECT count(*) FROM pg_roles WHERE rolname IN ('shopreader', 'shopowner')":                                              "2",
		} {
			if got, err := psql(ctx, "", dsu, q); err != nil || got != want {
				t.Errorf("%s: got %q (%v), want %q", q, got, err, want)
			}
		}
		q := "SELECT count(*), pg_get_userbyid(relowner), has_table_privilege('shopreader', 'orders', 'SELECT') FROM orders JOIN pg_class ON relname = 'orders' GROUP BY 2"
		if got, err := psql(ctx, "", onDB(dsu, "shop", dst, "impmono-superuser"), q); err != nil || got != "500|shopowner|t" {
			t.Errorf("shop: got %q (%v)", got, err)
		}
	})
}
