package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWalStorage: with spec.walStorage every instance keeps its WAL in a
// directory of its own (pg_wal links there), the primary's from initdb,
// the replicas' from pg_basebackup, and a switchover works over them.
// The same cluster checks spec.probes' streaming strategy
// (checkStreamingReadiness).
func TestWalStorage(t *testing.T) {
	runAsUser(t)
	dir := upCluster(t, "wal", `apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: wal
spec:
  instances: 2
  switchoverDelay: 90
  walStorage:
    size: 1Gi
`+probesManifest)
	appSQL(t, dir, "CREATE TABLE t AS SELECT g FROM generate_series(1, 100000) g")
	check := func() {
		t.Helper()
		for _, n := range []string{"wal-1", "wal-2"} {
			link := filepath.Join(dir, "instances", n, "data", "pg_wal")
			target, err := os.Readlink(link)
			if err != nil || target != filepath.Join(dir, "instances", n, "wal") {
				t.Errorf("%s: pg_wal links to %q (%v)", n, target, err)
				continue
			}
			segs, _ := filepath.Glob(filepath.Join(target, "0000000*"))
			if len(segs) == 0 {
				t.Errorf("%s: no WAL segment in %s", n, target)
			}
		}
	}
	check()
	checkStreamingReadiness(t, dir, "wal", "wal-1", "wal-2")
	mustPgward(t, "local", "promote", "wal-2", "--dir", dir)
	// spec.switchoverDelay: the old primary's fast shutdown had 90 s.
	if log, err := os.ReadFile(filepath.Join(dir, "instances", "wal-1", "instance.log")); err != nil ||
		!strings.Contains(string(log), `msg="demoting within spec.switchoverDelay" instance=wal-1 switchoverDelay=1m30s plan="fast until 1m30s, immediate until 1m32s, forced"`) {
		t.Errorf("wal-1's demotion did not follow switchoverDelay: %v", err)
	}
	appSQL(t, dir, "INSERT INTO t VALUES (0)")
	check()
	if got := appSQL(t, dir, "SELECT count(*) FROM t"); got != "100001" {
		t.Errorf("rows: %s", got)
	}
}
