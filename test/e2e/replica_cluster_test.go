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

	"github.com/pgward/pgward/test/objectstore"
)

// replicaStatus is the part of `local status -o json` a replica cluster
// adds.
type replicaStatus struct {
	CurrentPrimary string `json:"currentPrimary"`
	Instances      []struct {
		Name      string `json:"name"`
		Role      string `json:"role"`
		State     string `json:"state"`
		Port      int    `json:"port"`
		SocketDir string `json:"socketDir"`
		Timeline  int    `json:"timeline"`
		Source    string `json:"source"`
		LagBytes  *int64 `json:"lagBytes"`
	} `json:"instances"`
}

func replicaClusterStatus(t *testing.T, dir string) replicaStatus {
	t.Helper()
	var rs replicaStatus
	out := mustPgward(t, "local", "status", "-o", "json", "--dir", dir)
	if err := json.Unmarshal([]byte(out), &rs); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	return rs
}

// socketSQL runs sql on one instance through its socket as postgres (peer
// authentication as the run-as user): a replica cluster's roles are the
// source's until it is promoted, so its own app secret does not log in yet.
func socketSQL(t *testing.T, dir, instance, sql string) (string, error) {
	t.Helper()
	for _, is := range replicaClusterStatus(t, dir).Instances {
		if is.Name == instance {
			conninfo := fmt.Sprintf("host=%s port=%d user=postgres dbname=app", is.SocketDir, is.Port)
			return psql(context.Background(), runAsUser(t), conninfo, sql)
		}
	}
	t.Fatalf("no instance %s", instance)
	return "", nil
}

func replicaManifest(t *testing.T, src string, enabled bool) string {
	t.Helper()
	return replicaManifestWith(t, src, 2, fmt.Sprintf("enabled: %t", enabled))
}

// replicaManifestWith is the replica cluster rcrep of the source rcsrc
// running in src, with instances and the given spec.replica lines (besides
// its source).
func replicaManifestWith(t *testing.T, src string, instances int, replica string) string {
	t.Helper()
	port := instancePorts(t, src)["rcsrc-1"]
	read := func(secret, key string) string {
		b, err := os.ReadFile(filepath.Join(src, "secrets", secret, key))
		if err != nil {
			t.Fatal(err)
		}
		return "    " + strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", "\n    ")
	}
	return fmt.Sprintf(`apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: rcrep
spec:
  instances: %d
  bootstrap:
    pg_basebackup:
      source: rcsrc
  replica:
    %s
    source: rcsrc
  externalClusters:
  - name: rcsrc
    connectionParameters:
      host: localhost
      port: "%d"
      user: streaming_replica
      dbname: postgres
      sslmode: verify-full
    sslCert: {name: rcsrc-replication-copy, key: tls.crt}
    sslKey: {name: rcsrc-replication-copy, key: tls.key}
    sslRootCert: {name: rcsrc-ca-copy, key: ca.crt}
---
apiVersion: v1
kind: Secret
metadata:
  name: rcsrc-replication-copy
stringData:
  tls.crt: |
%s
  tls.key: |
%s
---
apiVersion: v1
kind: Secret
metadata:
  name: rcsrc-ca-copy
stringData:
  ca.crt: |
%s
`, instances, replica, port, read("rcsrc-replication", "tls.crt"), read("rcsrc-replication", "tls.key"), read("rcsrc-ca", "ca.crt"))
}

// TestReplicaCluster: a whole cluster follows a running source over TLS
// it verifies, authenticated by the source's replication client
// certificate: its designated primary streams from the source and its
// other instance cascades from it; rows written to the source arrive on
// both; the replica cluster refuses writes; killing its designated primary
// makes the other instance the designated primary, following the source;
// setting replica.enabled to false promotes it into a writable cluster on
// a new timeline with its own credentials, and the source is untouched.
func TestReplicaCluster(t *testing.T) {
	runAsUser(t)
	src := upCluster(t, "rcsrc", `apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: rcsrc
spec:
  instances: 1
`)
	appSQL(t, src, "CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g")

	rep := newStateDir(t, "rcrep")
	t.Cleanup(func() { _, _ = pgward(context.Background(), "local", "down", "--purge", "--dir", rep) })
	out := mustPgward(t, "local", "up", "-f", writeManifest(t, "rcrep.yaml", replicaManifest(t, src, true)), "--dir", rep)
	for _, want := range []string{"designated primary, streaming from the source cluster rcsrc", "replica cluster: the designated primary follows rcsrc"} {
		if !strings.Contains(out, want) {
			t.Errorf("up does not say %q:\n%s", want, out)
		}
	}

	// The designated primary and the lag from the source in the status.
	head := ""
	for _, is := range replicaClusterStatus(t, rep).Instances {
		if is.Role == "designated primary" {
			head = is.Name
			if is.Source != "rcsrc" || is.LagBytes == nil || is.State != "streaming" {
				t.Errorf("designated primary %s: source %q, lag %v, state %q", is.Name, is.Source, is.LagBytes, is.State)
			}
		}
	}
	if head == "" {
		t.Fatalf("no designated primary in the status:\n%s", mustPgward(t, "local", "status", "--dir", rep))
	}
	if table := mustPgward(t, "local", "status", "--dir", rep); !strings.Contains(table, "follows the source cluster rcsrc") {
		t.Errorf("the status table does not say whom the cluster follows:\n%s", table)
	}
	other := map[string]string{"rcrep-1": "rcrep-2", "rcrep-2": "rcrep-1"}[head]

	rowsOn := func(instance, want string) {
		t.Helper()
		eventually(t, 60*time.Second, instance+" has "+want+" rows", func() error {
			got, err := socketSQL(t, rep, instance, "SELECT count(*) FROM t")
			if err != nil || got != want {
				return fmt.Errorf("%q: %w", got, err)
			}
			return nil
		})
	}
	rowsOn(head, "1000")
	rowsOn(other, "1000")

	// The source sees the designated primary as a standby over TLS, with
	// the replication certificate's identity.
	srcSocket := func(sql string) string {
		t.Helper()
		st := replicaClusterStatus(t, src).Instances[0]
		out, err := psql(context.Background(), runAsUser(t), fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres", st.SocketDir, st.Port), sql)
		if err != nil {
			t.Fatalf("%s: %v %s", sql, err, out)
		}
		return out
	}
	if got := srcSocket("SELECT r.application_name || ' ' || s.ssl || ' ' || s.client_dn FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)"); !strings.Contains(got, head+" true /CN=streaming_replica") {
		t.Errorf("the source's standbys: %q, want %s over TLS as CN=streaming_replica", got, head)
	}

	// No writes in a replica cluster.
	for _, n := range []string{head, other} {
		if out, err := socketSQL(t, rep, n, "INSERT INTO t VALUES (0)"); err == nil || !strings.Contains(out, "read-only") {
			t.Errorf("a write on %s: %v %s, want it refused as read-only", n, err, out)
		}
	}

	// The security controls hold for a replica cluster too (its streams
	// cascade over TLS with certificates, nothing answers a password).
	if out, err := pgward(t.Context(), "local", "audit", "--dir", rep); err != nil {
		t.Errorf("audit of the replica cluster: %v\n%s", err, out)
	}

	appSQL(t, src, "INSERT INTO t SELECT g FROM generate_series(1001, 2000) g")
	rowsOn(head, "2000")
	rowsOn(other, "2000")

	// Stopped and started again, the replica cluster resumes following
	// the source with the same designated primary.
	mustPgward(t, "local", "down", "--dir", rep)
	appSQL(t, src, "INSERT INTO t SELECT g FROM generate_series(2001, 2100) g")
	if out := mustPgward(t, "local", "up", "-f", filepath.Join(workRoot, "rcrep.yaml"), "--dir", rep); !strings.Contains(out, "designated primary "+head) {
		t.Errorf("up again does not name %s the designated primary:\n%s", head, out)
	}
	rowsOn(head, "2100")
	rowsOn(other, "2100")

	// Failover inside the replica cluster: the other instance becomes the
	// designated primary and follows the source itself.
	pidFile, err := os.ReadFile(filepath.Join(rep, "instances", head, "data", "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := runKill(strings.SplitN(string(pidFile), "\n", 2)[0]); err != nil {
		t.Fatalf("kill: %v %s", err, out)
	}
	eventually(t, 60*time.Second, other+" becomes the designated primary", func() error {
		for _, is := range replicaClusterStatus(t, rep).Instances {
			if is.Name == other && (is.Role != "designated primary" || is.State != "streaming") {
				return fmt.Errorf("%s is %s, %s", other, is.Role, is.State)
			}
		}
		return nil
	})
	appSQL(t, src, "INSERT INTO t SELECT g FROM generate_series(2101, 3000) g")
	rowsOn(other, "3000")
	rowsOn(head, "3000") // the old designated primary back, cascading from the new one
	head, other = other, head

	// Promotion: replica.enabled false through the live-change path.
	srcTL := replicaClusterStatus(t, src).Instances[0].Timeline
	out = mustPgward(t, "local", "up", "-f", writeManifest(t, "rcrep-promoted.yaml", replicaManifest(t, src, false)), "--dir", rep)
	t.Logf("promotion:\n%s", out)
	eventually(t, 30*time.Second, "the promoted cluster takes writes with its own credentials", func() error {
		out, err := psql(context.Background(), "", strings.TrimSpace(mustPgward(t, "local", "uri", "app", "--dir", rep)), "INSERT INTO t VALUES (-1)")
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		return nil
	})
	st := replicaClusterStatus(t, rep)
	for _, is := range st.Instances {
		if is.Name == head && (is.Role != "primary" || is.Timeline <= srcTL) {
			t.Errorf("%s after promotion: role %s, timeline %d (the source's is %d)", head, is.Role, is.Timeline, srcTL)
		}
	}
	rowsOn(other, "3001")
	if got := appSQL(t, src, "SELECT count(*) FROM t"); got != "3000" {
		t.Errorf("the source changed: %s rows", got)
	}
	if got := srcSocket("SELECT count(*) FROM pg_stat_replication"); got != "0" {
		t.Errorf("the promoted cluster still streams from the source: %s standbys", got)
	}
	a, _ := os.ReadFile(filepath.Join(src, "secrets", "rcsrc-app", "password"))
	b, _ := os.ReadFile(filepath.Join(rep, "secrets", "rcrep-app", "password"))
	if len(a) == 0 || string(a) == string(b) {
		t.Error("the promoted cluster shares the source's app password")
	}
	for _, n := range []string{head, other} {
		if _, err := os.Stat(filepath.Join(rep, "instances", n, "conf", "replica-source.pgpass")); err == nil {
			t.Errorf("%s keeps a replica source password file", n)
		}
	}
	// Promotion is one way.
	if out, err := pgward(t.Context(), "local", "up", "-f", writeManifest(t, "rcrep-again.yaml", replicaManifest(t, src, true)), "--dir", rep); err == nil ||
		!strings.Contains(out, "spec.replica") {
		t.Errorf("making the promoted cluster a replica again: %v\n%s", err, out)
	}

}

// TestReplicaClusterFromObjectStore: the object-store variant. The
// designated primary restores the source's base backup from its store and
// replays the WAL the source archives there (pgBackRest archive-get,
// decrypted with the source's key), with no connection to the source at
// all; rows written to the source arrive once archived; the cluster
// refuses writes; replica.enabled: false promotes it.
func TestReplicaClusterFromObjectStore(t *testing.T) {
	runAsUser(t)
	store := objectstore.Start(t)
	src := upCluster(t, "rcbk", backupManifest(store, "rcbk", "", ""))
	appSQL(t, src, "CREATE TABLE t AS SELECT g FROM generate_series(1, 100) g")
	if out := mustPgward(t, "local", "backup", "--dir", src); !strings.Contains(out, "completed") {
		t.Fatalf("backup: %s", out)
	}
	key, err := os.ReadFile(filepath.Join(src, "secrets", "rcbk-backup-key", "key"))
	if err != nil {
		t.Fatal(err)
	}
	manifest := func(enabled bool) string {
		return fmt.Sprintf(`apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: rcobj
spec:
  instances: 1
  bootstrap:
    recovery:
      source: rcbk
  replica:
    enabled: %t
    source: rcbk
  externalClusters:
  - name: rcbk
    barmanObjectStore:
      destinationPath: s3://%s/e2e
      endpointURL: %s
      endpointCA: {name: objectstore, key: ca.crt}
      s3Credentials:
        accessKeyId: {name: objectstore, key: ACCESS_KEY_ID}
        secretAccessKey: {name: objectstore, key: ACCESS_SECRET_KEY}
      encryptionKey: {name: source-key, key: key}
---
%s---
apiVersion: v1
kind: Secret
metadata:
  name: source-key
stringData:
  key: %q
`, enabled, store.Bucket, store.Endpoint, store.SecretManifest("objectstore"), strings.TrimSpace(string(key)))
	}
	rep := newStateDir(t, "rcobj")
	t.Cleanup(func() { _, _ = pgward(context.Background(), "local", "down", "--purge", "--dir", rep) })
	out := mustPgward(t, "local", "up", "-f", writeManifest(t, "rcobj.yaml", manifest(true)), "--dir", rep)
	if !strings.Contains(out, "designated primary, following the source cluster rcbk") {
		t.Errorf("up does not show the designated primary:\n%s", out)
	}
	rows := func(want string) {
		t.Helper()
		eventually(t, 90*time.Second, "rcobj-1 has "+want+" rows", func() error {
			got, err := socketSQL(t, rep, "rcobj-1", "SELECT count(*) FROM t")
			if err != nil || got != want {
				return fmt.Errorf("%q: %w", got, err)
			}
			return nil
		})
	}
	rows("100")
	if out, err := socketSQL(t, rep, "rcobj-1", "INSERT INTO t VALUES (0)"); err == nil || !strings.Contains(out, "read-only") {
		t.Errorf("a write: %v %s, want it refused as read-only", err, out)
	}
	// New rows reach the replica cluster through the archive only: the
	// source closes its WAL segment, archives it, and the designated
	// primary's restore_command fetches it.
	appSQL(t, src, "INSERT INTO t SELECT g FROM generate_series(101, 200) g")
	st := replicaClusterStatus(t, src).Instances[0]
	if out, err := psql(context.Background(), runAsUser(t), fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres", st.SocketDir, st.Port), "SELECT pg_switch_wal()"); err != nil {
		t.Fatalf("pg_switch_wal: %v %s", err, out)
	}
	rows("200")

	mustPgward(t, "local", "up", "-f", writeManifest(t, "rcobj-promoted.yaml", manifest(false)), "--dir", rep)
	eventually(t, 30*time.Second, "the promoted cluster takes writes", func() error {
		out, err := psql(context.Background(), "", strings.TrimSpace(mustPgward(t, "local", "uri", "app", "--dir", rep)), "INSERT INTO t VALUES (-1)")
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		return nil
	})
	if got := appSQL(t, src, "SELECT count(*) FROM t"); got != "200" {
		t.Errorf("the source changed: %s rows", got)
	}
	if _, err := os.Stat(filepath.Join(rep, "instances", "rcobj-1", "conf", "pgbackrest-source.conf")); err == nil {
		t.Error("the promoted cluster keeps the source's store configuration (its credentials and key)")
	}
}

// TestDelayedReplicaCluster: spec.replica.minApplyDelay holds every
// transaction back on the replica cluster (recovery_min_apply_delay on its
// standbys) until that long after its commit on the source; promotion ends
// the delay.
func TestDelayedReplicaCluster(t *testing.T) {
	runAsUser(t)
	src := upCluster(t, "rcsrc", `apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: rcsrc
spec:
  instances: 1
`)
	appSQL(t, src, "CREATE TABLE t AS SELECT g FROM generate_series(1, 10) g")
	rep := newStateDir(t, "rcrep")
	t.Cleanup(func() { _, _ = pgward(context.Background(), "local", "down", "--purge", "--dir", rep) })
	mustPgward(t, "local", "up", "-f", writeManifest(t, "rcrep-delayed.yaml", replicaManifestWith(t, src, 1, "enabled: true\n    minApplyDelay: 8s")), "--dir", rep)
	if got, err := socketSQL(t, rep, "rcrep-1", "SHOW recovery_min_apply_delay"); err != nil || got != "8s" {
		t.Fatalf("recovery_min_apply_delay: %q %v", got, err)
	}
	// Timed from before the INSERT: the server's commit (which the delay
	// counts from) is after that, but before psql returns, and the row may
	// show a few milliseconds less than 8 s after the client saw the commit.
	sent := time.Now()
	appSQL(t, src, "INSERT INTO t VALUES (11)")
	time.Sleep(3 * time.Second)
	if got, err := socketSQL(t, rep, "rcrep-1", "SELECT count(*) FROM t"); err != nil || got != "10" {
		t.Errorf("3 s after the commit the delayed replica has %q rows (%v), want 10", got, err)
	}
	eventually(t, 60*time.Second, "the row arrives after the delay", func() error {
		got, err := socketSQL(t, rep, "rcrep-1", "SELECT count(*) FROM t")
		if err != nil || got != "11" {
			return fmt.Errorf("%q: %w", got, err)
		}
		return nil
	})
	if waited := time.Since(sent); waited < 8*time.Second {
		t.Errorf("the row arrived %s after the INSERT was sent, before the 8 s delay", waited.Round(time.Millisecond))
	}
	// Promotion does not wait for the delay.
	appSQL(t, src, "INSERT INTO t VALUES (12)")
	mustPgward(t, "local", "up", "-f", writeManifest(t, "rcrep-delayed-promoted.yaml", replicaManifestWith(t, src, 1, "enabled: false\n    minApplyDelay: 8s")), "--dir", rep)
	// The promoted primary sets the cluster's own credentials (the source's
	// came with the data) once it is writable, as TestReplicaCluster waits
	// for too.
	uri := strings.TrimSpace(mustPgward(t, "local", "uri", "app", "--dir", rep))
	eventually(t, 30*time.Second, "the promoted primary runs without the delay", func() error {
		out, err := psql(context.Background(), "", uri, "SHOW recovery_min_apply_delay")
		if err != nil || out != "0" {
			return fmt.Errorf("recovery_min_apply_delay %q: %w", out, err)
		}
		return nil
	})
}
