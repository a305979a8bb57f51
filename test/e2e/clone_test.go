package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCloneWithPgBaseBackup: bootstrap.pg_basebackup copies a running
// cluster over verified TLS, authenticated by the source's replication
// certificate (CloudNativePG's sample shape: connectionParameters plus
// sslCert/sslKey/sslRootCert secrets), into an independent primary with
// credentials of its own; an unverified sslmode is refused.
func TestCloneWithPgBaseBackup(t *testing.T) {
	runAsUser(t)
	src := upCluster(t, "clsrc", `apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: clsrc
spec:
  instances: 1
`)
	appSQL(t, src, "CREATE TABLE t AS SELECT g FROM generate_series(1, 5000) g")
	port := instancePorts(t, src)["clsrc-1"]
	read := func(secret, key string) string {
		b, err := os.ReadFile(filepath.Join(src, "secrets", secret, key))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	indent := func(s string) string { return "    " + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n    ") }
	manifest := func(sslmode string) string {
		return fmt.Sprintf(`apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: clone
spec:
  instances: 2
  bootstrap:
    pg_basebackup:
      source: clsrc
  externalClusters:
  - name: clsrc
    connectionParameters:
      host: localhost
      port: "%d"
      user: streaming_replica
      dbname: postgres
      sslmode: %s
    sslCert: {name: clsrc-replication-copy, key: tls.crt}
    sslKey: {name: clsrc-replication-copy, key: tls.key}
    sslRootCert: {name: clsrc-ca-copy, key: ca.crt}
---
apiVersion: v1
kind: Secret
metadata:
  name: clsrc-replication-copy
stringData:
  tls.crt: |
%s
  tls.key: |
%s
---
apiVersion: v1
kind: Secret
metadata:
  name: clsrc-ca-copy
stringData:
  ca.crt: |
%s
`, port, sslmode, indent(read("clsrc-replication", "tls.crt")), indent(read("clsrc-replication", "tls.key")), indent(read("clsrc-ca", "ca.crt")))
	}
	out, err := pgward(t.Context(), "local", "up", "-f", writeManifest(t, "clone-bad.yaml", manifest("require")), "--dir", filepath.Join(workRoot, "clone-bad"))
	if err == nil || !strings.Contains(out, "sslmode") {
		t.Errorf("sslmode require: want a refusal naming it, got %v\n%s", err, out)
	}
	dst := upCluster(t, "clone", manifest("verify-full"))
	if got := appSQL(t, dst, "SELECT count(*) FROM t"); got != "5000" {
		t.Errorf("rows in the clone: %s", got)
	}
	// Independent: writes to one do not reach the other, and each has its
	// own app password.
	appSQL(t, dst, "INSERT INTO t VALUES (0)")
	if got := appSQL(t, src, "SELECT count(*) FROM t"); got != "5000" {
		t.Errorf("the source changed: %s", got)
	}
	a, _ := os.ReadFile(filepath.Join(src, "secrets", "clsrc-app", "password"))
	b, _ := os.ReadFile(filepath.Join(dst, "secrets", "clone-app", "password"))
	if len(a) == 0 || string(a) == string(b) {
		t.Error("the clone shares the source's app password")
	}
	if _, err := os.Stat(filepath.Join(dst, "instances", "clone-1", "conf", "clone.pgpass")); err == nil {
		t.Error("a pgpass file of the clone is left")
	}
}
