package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgward/pgward/test/objectstore"
)

// backupManifest is a one-instance cluster archiving into store under
// serverName, plus the store's Secret; extra is appended to its spec
// (indented by two spaces) and docs to the file.
func backupManifest(store *objectstore.Store, name, extra, docs string) string {
	return fmt.Sprintf(`apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: %[1]s
spec:
  instances: 1
  backup:
    retentionPolicy: "30d"
    barmanObjectStore:
      destinationPath: s3://%[2]s/e2e
      endpointURL: %[3]s
      endpointCA: {name: objectstore, key: ca.crt}
      s3Credentials:
        accessKeyId: {name: objectstore, key: ACCESS_KEY_ID}
        secretAccessKey: {name: objectstore, key: ACCESS_SECRET_KEY}
      data: {jobs: 2, immediateCheckpoint: true}
%[4]s---
%[5]s%[6]s`, name, store.Bucket, store.Endpoint, extra, store.SecretManifest("objectstore"), docs)
}

// recoveryManifest recovers cluster "into" from source's backups, with
// target as the recoveryTarget block (indented) or "" for the end of WAL.
func recoveryManifest(store *objectstore.Store, into, source, sourceKey, target string) string {
	extra := fmt.Sprintf(`  bootstrap:
    recovery:
      source: %[1]s
%[4]s  externalClusters:
  - name: %[1]s
    barmanObjectStore:
      destinationPath: s3://%[2]s/e2e
      endpointURL: %[3]s
      endpointCA: {name: objectstore, key: ca.crt}
      s3Credentials:
        accessKeyId: {name: objectstore, key: ACCESS_KEY_ID}
        secretAccessKey: {name: objectstore, key: ACCESS_SECRET_KEY}
      encryptionKey: {name: source-key, key: key}
`, source, store.Bucket, store.Endpoint, target)
	key := fmt.Sprintf("---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: source-key\nstringData:\n  key: %q\n", sourceKey)
	return backupManifest(store, into, extra, key)
}

func writeManifest(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(workRoot, name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// upCluster starts a cluster from manifest in a new state directory and
// stops it (purging it) at the end of the test.
func upCluster(t *testing.T, name, manifest string) string {
	t.Helper()
	dir := newStateDir(t, name)
	t.Cleanup(func() { _, _ = pgward(context.Background(), "local", "down", "--purge", "--dir", dir) })
	mustPgward(t, "local", "up", "-f", writeManifest(t, name+".yaml", manifest), "--dir", dir)
	return dir
}

func appSQL(t *testing.T, dir, sql string) string {
	t.Helper()
	out, err := psql(context.Background(), "", strings.TrimSpace(mustPgward(t, "local", "uri", "app", "--dir", dir)), sql)
	if err != nil {
		t.Fatalf("%s: %v %s", sql, err, out)
	}
	return out
}

type archiveState struct {
	ArchivedCount int64  `json:"archivedCount"`
	LastArchived  string `json:"lastArchivedWAL"`
	FailedCount   int64  `json:"failedCount"`
	Pending       int64  `json:"pending"`
	PGWALBytes    int64  `json:"pgWALBytes"`
}

func archiveStatus(t *testing.T, dir string) *archiveState {
	t.Helper()
	out := mustPgward(t, "local", "status", "-o", "json", "--dir", dir)
	var cs struct {
		Instances []struct {
			Role    string        `json:"role"`
			Archive *archiveState `json:"archive"`
		} `json:"instances"`
	}
	if err := json.Unmarshal([]byte(out), &cs); err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	for _, i := range cs.Instances {
		if i.Role == "primary" {
			if i.Archive == nil {
				return &archiveState{}
			}
			return i.Archive
		}
	}
	return nil
}

// TestBackupAndPointInTimeRecovery: WAL archived and a base backup taken
// into a real S3 store over TLS, encrypted on the client; new clusters
// recovered from them to a time, to an LSN and to the end of the archive
// hold exactly the rows committed before each target; the objects in the
// store hold no plaintext; a wrong key and a target before the first
// backup are refused naming the cause.
func TestBackupAndPointInTimeRecovery(t *testing.T) {
	runAsUser(t)
	store := objectstore.Start(t)
	ctx := context.Background()
	src := upCluster(t, "bk", backupManifest(store, "bk", "", ""))
	const marker = "PGWARD-PLAINTEXT-MARKER"
	appSQL(t, src, `CREATE TABLE t (id int PRIMARY KEY, note text);
		INSERT INTO t SELECT g, '`+marker+`-' || g FROM generate_series(1, 100) g`)
	out := mustPgward(t, "local", "backup", "--dir", src)
	if !strings.Contains(out, "completed") {
		t.Fatalf("backup: %s", out)
	}
	list := mustPgward(t, "local", "backups", "-o", "json", "--dir", src)
	var backups struct {
		Backups []struct {
			Label     string `json:"label"`
			Encrypted bool   `json:"encrypted"`
			StopLSN   string `json:"stopLSN"`
		} `json:"backups"`
	}
	if err := json.Unmarshal([]byte(list), &backups); err != nil || len(backups.Backups) != 1 || !backups.Backups[0].Encrypted {
		t.Fatalf("backups: %v %s", err, list)
	}
	t.Logf("backup %s", backups.Backups[0].Label)

	appSQL(t, src, `INSERT INTO t SELECT g, 'after-backup' FROM generate_series(101, 200) g; CREATE TABLE keep (x int)`)
	// Server clock and WAL position just after rows 101-200 committed.
	at := appSQL(t, src, `SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`)
	lsn := appSQL(t, src, `SELECT pg_current_wal_lsn()`)
	time.Sleep(1100 * time.Millisecond)
	appSQL(t, src, `INSERT INTO t SELECT g, 'after-target' FROM generate_series(201, 300) g; DROP TABLE keep`)
	t.Logf("target time %s, LSN %s", at, lsn)

	// The security audit finds nothing wrong with an archiving cluster
	// (pgBackRest's processes, its configuration file, archive_command).
	if out, err := pgward(ctx, "local", "audit", "--dir", src); err != nil {
		t.Errorf("audit of an archiving cluster: %v\n%s", err, out)
	}
	// Stopping the source archives its last segment: a recovery to the
	// end of the archive has every acknowledged write.
	mustPgward(t, "local", "down", "--dir", src)

	key, err := os.ReadFile(filepath.Join(src, "secrets", "bk-backup-key", "key"))
	if err != nil {
		t.Fatal(err)
	}
	// The store's secret key and the encryption key reached no log, no
	// status and no file but their secrets and pgBackRest's 0600
	// configuration.
	status := mustPgward(t, "local", "status", "-o", "json", "--dir", src)
	for what, secret := range map[string]string{"secret access key": store.SecretAccessKey, "encryption key": strings.TrimSpace(string(key))} {
		if strings.Contains(status, secret) {
			t.Errorf("the status shows the %s", what)
		}
		_ = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.Contains(p, string(filepath.Separator)+"secrets"+string(filepath.Separator)) || strings.Contains(p, "/data/") {
				return nil
			}
			b, _ := os.ReadFile(p)
			if !bytes.Contains(b, []byte(secret)) {
				return nil
			}
			if fi, _ := os.Stat(p); filepath.Base(p) != "pgbackrest.conf" || fi.Mode().Perm() != 0o600 {
				t.Errorf("%s holds the %s", p, what)
			}
			return nil
		})
	}

	// No object in the store holds the marker rows in clear text, and
	// every object is encrypted (OpenSSL's salted format).
	objects := 0
	_ = filepath.WalkDir(filepath.Join(store.Root, store.Bucket, "e2e"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		objects++
		if bytes.Contains(b, []byte(marker)) {
			t.Errorf("%s holds plaintext rows", p)
		}
		if len(b) > 0 && !bytes.HasPrefix(b, []byte("Salted__")) {
			t.Errorf("%s is not encrypted (starts %q)", p, b[:min(8, len(b))])
		}
		return nil
	})
	if objects < 5 {
		t.Fatalf("only %d objects in the store", objects)
	}

	cases := []struct {
		name, target string
		rows         string
		keep         string
	}{
		{"time", "      recoveryTarget:\n        targetTime: \"" + at + "\"\n", "200", "1"},
		{"lsn", "      recoveryTarget:\n        targetLSN: \"" + lsn + "\"\n", "200", "1"},
		{"latest", "", "300", "0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			into := "rt-" + c.name
			m := recoveryManifest(store, into, "bk", strings.TrimSpace(string(key)), c.target)
			if c.name == "latest" {
				// A WAL directory of its own, which the source did not have.
				m = strings.Replace(m, "  bootstrap:\n", "  walStorage:\n    size: 1Gi\n  bootstrap:\n", 1)
			}
			dir := upCluster(t, into, m)
			if c.name == "latest" {
				if target, err := os.Readlink(filepath.Join(dir, "instances", into+"-1", "data", "pg_wal")); err != nil || target != filepath.Join(dir, "instances", into+"-1", "wal") {
					t.Errorf("pg_wal links to %q (%v), want the instance's wal directory", target, err)
				}
			}
			t.Cleanup(func() {
				if t.Failed() {
					log, _ := os.ReadFile(filepath.Join(dir, "instances", into+"-1", "postgres.log"))
					t.Logf("postgres.log of %s:\n%s", into, log[max(0, len(log)-6000):])
				}
			})
			got := appSQL(t, dir, `SELECT count(*) || ' ' || max(id) FROM t`)
			if got != c.rows+" "+c.rows {
				t.Errorf("rows after recovery: %q, want %s", got, c.rows)
			}
			if got := appSQL(t, dir, `SELECT count(*) FROM pg_tables WHERE tablename = 'keep'`); got != c.keep {
				t.Errorf("table keep: %s, want %s", got, c.keep)
			}
			// A new timeline and this cluster's own place in the store.
			if tl := appSQL(t, dir, `SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)::text`); tl == "00000001" {
				t.Errorf("recovered cluster still on timeline 1")
			}
			appSQL(t, dir, `INSERT INTO t VALUES (1000, 'written after recovery')`)
			// Stopping archives the last segment: the new timeline's WAL is
			// in this cluster's own stanza, none in the source's.
			mustPgward(t, "local", "down", "--dir", dir)
			if n := countPrefix(filepath.Join(store.Root, store.Bucket, "e2e", "archive", into), "00000002"); n < 2 {
				t.Errorf("the recovered cluster's stanza %s holds %d files of timeline 2: it does not archive there", into, n)
			}
			if n := countPrefix(filepath.Join(store.Root, store.Bucket, "e2e", "archive", "bk"), "00000002"); n > 0 {
				t.Errorf("the source's stanza holds %d files of timeline 2", n)
			}
		})
	}

	// A wrong key: refused before anything is created, naming the cause.
	bad := writeManifest(t, "rt-badkey.yaml", recoveryManifest(store, "rt-badkey", "bk", strings.Repeat("0", 64), ""))
	out, err = pgward(ctx, "local", "up", "-f", bad, "--dir", filepath.Join(workRoot, "rt-badkey"))
	if err == nil || !strings.Contains(out, "encryptionKey") {
		t.Errorf("recovery with a wrong key: %v\n%s", err, out)
	}
	// A target before the first backup ended: refused, naming the field.
	early := writeManifest(t, "rt-early.yaml", recoveryManifest(store, "rt-early", "bk", strings.TrimSpace(string(key)),
		"      recoveryTarget:\n        targetTime: \"2020-01-01T00:00:00Z\"\n"))
	out, err = pgward(ctx, "local", "up", "-f", early, "--dir", filepath.Join(workRoot, "rt-early"))
	if err == nil || !strings.Contains(out, "targetTime") || !strings.Contains(out, "before the first backup") {
		t.Errorf("recovery to a time before the first backup: %v\n%s", err, out)
	}
	for _, d := range []string{"rt-badkey", "rt-early"} {
		if _, err := os.Stat(filepath.Join(workRoot, d)); err == nil {
			t.Errorf("a refused up created %s", d)
		}
	}
}

// countPrefix counts the files under dir whose name starts with prefix.
func countPrefix(dir, prefix string) int {
	n := 0
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), prefix) {
			n++
		}
		return nil
	})
	return n
}

// TestArchivingThroughOutageAndFailover: the primary keeps serving writes
// while the object store is down (the WAL waiting shows in status), the
// archive catches up when the store returns, a failover's new primary
// archives its new timeline, and a recovery after it has every row.
func TestArchivingThroughOutageAndFailover(t *testing.T) {
	runAsUser(t)
	store := objectstore.Start(t)
	m := strings.Replace(backupManifest(store, "fo", "", ""), "instances: 1", "instances: 2", 1)
	dir := upCluster(t, "fo", m)
	appSQL(t, dir, `CREATE TABLE t (id int PRIMARY KEY, note text)`)
	mustPgward(t, "local", "backup", "--dir", dir)

	store.Stop()
	// About three segments of WAL while nothing can be archived.
	appSQL(t, dir, `CREATE TABLE filler AS SELECT g, md5(g::text) AS h FROM generate_series(1, 400000) g`)
	// archive_command fails once pgBackRest's archive-timeout (30 s) passed.
	eventually(t, 150*time.Second, "archiving failures shown in status", func() error {
		if a := archiveStatus(t, dir); a == nil || a.Pending == 0 || a.FailedCount == 0 {
			return fmt.Errorf("archive status %+v", a)
		}
		return nil
	})
	if out := mustPgward(t, "local", "status", "--dir", dir); !strings.Contains(out, "FAILING since") {
		t.Errorf("status does not show the failing archive:\n%s", out)
	}
	appSQL(t, dir, `INSERT INTO t SELECT g, 'while the store was down' FROM generate_series(1, 100) g`)
	// Stopped while the store is down, the cluster does not wait for it
	// (PostgreSQL's archiver alone held the stop for minutes): each data
	// directory is cleanly shut down, and the segments the store did not
	// take stay in pg_wal, archived once the cluster runs again (the
	// recovery below has every row).
	start := time.Now()
	mustPgward(t, "local", "down", "--dir", dir)
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("down took %s with the store unreachable", took.Round(time.Millisecond))
	}
	t.Logf("down with the store unreachable: %s", time.Since(start).Round(time.Millisecond))
	datas, _ := filepath.Glob(filepath.Join(dir, "instances", "*", "data"))
	for _, d := range datas {
		out, err := exec.CommandContext(t.Context(), filepath.Join(filepath.Dir(psqlPath()), "pg_controldata"), d).CombinedOutput()
		if err != nil || !regexp.MustCompile(`(?m)^Database cluster state: +shut down`).Match(out) {
			t.Errorf("%s after down: %v\n%s", d, err, out)
		}
	}
	store.Restart()
	mustPgward(t, "local", "up", "-f", filepath.Join(workRoot, "fo.yaml"), "--dir", dir)
	eventually(t, 120*time.Second, "the archive caught up", func() error {
		if a := archiveStatus(t, dir); a == nil || a.Pending != 0 {
			return fmt.Errorf("archive status %+v", a)
		}
		return nil
	})

	// Failover: the primary's postmaster killed once its replica has
	// every row (replication is asynchronous here).
	primary := currentPrimary(t, dir)
	eventually(t, 30*time.Second, "the replica caught up", func() error {
		out := mustPgward(t, "local", "status", "-o", "json", "--dir", dir)
		if !strings.Contains(out, `"lagBytes": 0`) {
			return fmt.Errorf("lag: %s", out)
		}
		return nil
	})
	pid, err := os.ReadFile(filepath.Join(dir, "instances", primary, "data", "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := runKill(strings.SplitN(string(pid), "\n", 2)[0]); err != nil {
		t.Fatalf("kill: %v %s", err, out)
	}
	eventually(t, 60*time.Second, "a new primary", func() error {
		if p := currentPrimary(t, dir); p == "" || p == primary {
			return fmt.Errorf("primary %q", p)
		}
		return nil
	})
	appSQL(t, dir, `INSERT INTO t SELECT g, 'after failover' FROM generate_series(101, 200) g`)
	mustPgward(t, "local", "down", "--dir", dir)
	if n := countPrefix(filepath.Join(store.Root, store.Bucket, "e2e", "archive", "fo"), "00000002"); n < 2 {
		t.Errorf("the new timeline is not archived (%d files)", n)
	}

	key, err := os.ReadFile(filepath.Join(dir, "secrets", "fo-backup-key", "key"))
	if err != nil {
		t.Fatal(err)
	}
	rt := upCluster(t, "fo-rt", recoveryManifest(store, "fo-rt", "fo", strings.TrimSpace(string(key)), ""))
	if got := appSQL(t, rt, `SELECT count(*) || ' ' || count(*) FILTER (WHERE note = 'after failover') FROM t`); got != "200 100" {
		t.Errorf("rows recovered after the failover: %q, want 200 of which 100 after it", got)
	}
	if got := appSQL(t, rt, `SELECT count(*) FROM filler`); got != "400000" {
		t.Errorf("filler rows recovered: %s", got)
	}
}

// currentPrimary is the instance reporting itself primary ("" if none).
func currentPrimary(t *testing.T, dir string) string {
	t.Helper()
	out, err := pgward(context.Background(), "local", "status", "-o", "json", "--dir", dir)
	if err != nil {
		return ""
	}
	var cs struct {
		Instances []struct {
			Name  string `json:"name"`
			Role  string `json:"role"`
			State string `json:"state"`
		} `json:"instances"`
	}
	if json.Unmarshal([]byte(out), &cs) != nil {
		return ""
	}
	for _, i := range cs.Instances {
		if i.Role == "primary" && i.State == "running" {
			return i.Name
		}
	}
	return ""
}

// TestBackupBadInput: every mistake in the object store's configuration
// is refused by `up` before anything is created, naming the field or the
// cause.
func TestBackupBadInput(t *testing.T) {
	runAsUser(t)
	store := objectstore.Start(t)
	other := objectstore.Start(t) // another CA
	good := backupManifest(store, "bad", "", "")
	for _, c := range []struct {
		name, manifest, want string
	}{
		{"unreachable endpoint", strings.Replace(good, store.Endpoint, "https://localhost:1", 1), "endpointURL: the object store does not answer"},
		{"IP endpoint", strings.Replace(good, "https://localhost:", "https://127.0.0.1:", 1), "endpointURL"},
		{"plain HTTP", strings.Replace(good, "https://", "http://", 1), "must be https://"},
		{"wrong secret key", strings.Replace(good, store.SecretAccessKey, "wrong"+store.SecretAccessKey[5:], 1), "check s3Credentials"},
		{"missing bucket", strings.Replace(good, "s3://"+store.Bucket+"/", "s3://nosuchbucket/", 1), "check destinationPath"},
		{"not S3", strings.Replace(good, "s3://"+store.Bucket+"/", "gs://"+store.Bucket+"/", 1), "destinationPath"},
		{"another CA", strings.Replace(good, string(bytes.TrimSpace(indentPEM(store.CACertPEM))), string(bytes.TrimSpace(indentPEM(other.CACertPEM))), 1), "endpointCA"},
		{"missing secret", strings.Replace(good, "endpointCA: {name: objectstore", "endpointCA: {name: nosuch", 1), "nosuch"},
		{"secret key in the credentials' secret", strings.Replace(good, "data: {jobs", "encryptionKey: {name: objectstore, key: ACCESS_KEY_ID}\n      data: {jobs", 1), "encryptionKey"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.manifest == good {
				t.Fatal("the case changes nothing")
			}
			d := filepath.Join(workRoot, "bad-"+strings.ReplaceAll(c.name, " ", "-"))
			start := time.Now()
			out, err := pgward(context.Background(), "local", "up", "-f", writeManifest(t, "bad.yaml", c.manifest), "--dir", d)
			if err == nil || !strings.Contains(out, c.want) {
				t.Errorf("want a refusal naming %q, got %v:\n%s", c.want, err, out)
			}
			if _, err := os.Stat(d); err == nil {
				_, _ = pgward(context.Background(), "local", "down", "--purge", "--dir", d)
				t.Errorf("a refused up created %s", d)
			}
			t.Logf("refused in %s: %s", time.Since(start).Round(time.Millisecond), lastLine(out))
		})
	}
}

// indentPEM is how SecretManifest writes a PEM block in stringData.
func indentPEM(pem []byte) []byte {
	return bytes.ReplaceAll(bytes.TrimSpace(pem), []byte("\n"), []byte("\n    "))
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestBackupRetention: the retentionPolicy ("30d") pgward writes into
// pgBackRest's configuration keeps every backup younger than the policy,
// expires older full backups and the WAL only they needed, and never the
// newest full backup. Backups cannot be made old (pgBackRest takes their
// times from PostgreSQL), so pgBackRest's clock is moved instead, with
// libfaketime: S3 refuses requests signed that far off, so the expiry runs
// on a copy of the store's repository on local disk, with pgward's
// configuration but for the repository's type and path.
func TestBackupRetention(t *testing.T) {
	runAsUser(t)
	if _, err := exec.LookPath("faketime"); err != nil {
		t.Fatal("faketime is missing: run hack/install-deps.sh (Debian package faketime)")
	}
	store := objectstore.Start(t)
	dir := upCluster(t, "ret", backupManifest(store, "ret", "", ""))
	appSQL(t, dir, `CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g`)
	mustPgward(t, "local", "backup", "--dir", dir)
	appSQL(t, dir, `INSERT INTO t SELECT g FROM generate_series(1, 1000) g`)
	mustPgward(t, "local", "backup", "--dir", dir)
	mustPgward(t, "local", "down", "--dir", dir) // the last WAL archived, nothing moves
	conf, err := os.ReadFile(filepath.Join(dir, "instances", "ret-1", "conf", "pgbackrest.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(conf), "repo1-retention-full-type=time\nrepo1-retention-full=30\n") {
		t.Fatalf("the retention policy is not in pgBackRest's configuration:\n%s", conf)
	}
	posix := filepath.Join(workRoot, "ret-posix")
	copyTree(t, filepath.Join(store.Root, store.Bucket, "e2e"), posix)
	var lines []string
	for _, l := range strings.Split(string(conf), "\n") {
		switch {
		case strings.HasPrefix(l, "repo1-s3-"), strings.HasPrefix(l, "repo1-storage-"):
		case l == "repo1-type=s3":
			lines = append(lines, "repo1-type=posix")
		case strings.HasPrefix(l, "repo1-path="):
			lines = append(lines, "repo1-path="+posix)
		default:
			lines = append(lines, l)
		}
	}
	posixConf := filepath.Join(workRoot, "ret-posix.conf")
	if err := os.WriteFile(posixConf, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	chownRunAs(t, posix, posixConf)
	pgbackrest := func(clock string, args ...string) string {
		t.Helper()
		argv := append([]string{"-f", clock, "pgbackrest", "--config=" + posixConf, "--stanza=ret"}, args...)
		cmd := exec.CommandContext(context.Background(), "faketime", argv...) // #nosec G204 -- test
		asRunAsUser(t, cmd)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("faketime %v: %v\n%s", argv, err, out)
		}
		return string(out)
	}
	labels := func() []string {
		var info []struct {
			Backup []struct {
				Label string `json:"label"`
			} `json:"backup"`
		}
		out := pgbackrest("+0d", "--output=json", "info")
		if err := json.Unmarshal([]byte(out), &info); err != nil || len(info) != 1 {
			t.Fatalf("info: %v\n%s", err, out)
		}
		var l []string
		for _, b := range info[0].Backup {
			l = append(l, b.Label)
		}
		return l
	}
	wal := func() int { return countPrefix(filepath.Join(posix, "archive", "ret"), "0000000100") }
	before, walBefore := labels(), wal()
	if len(before) != 2 {
		t.Fatalf("two backups expected, got %v", before)
	}
	pgbackrest("+10d", "expire")
	if got := labels(); len(got) != 2 || wal() != walBefore {
		t.Errorf("10 days later (within 30d): %v and %d WAL files, want every backup and WAL file kept", got, wal())
	}
	pgbackrest("+40d", "expire")
	got, walAfter := labels(), wal()
	if len(got) != 1 || got[0] != before[1] {
		t.Errorf("40 days later: %v, want only the newest full backup %s", got, before[1])
	}
	if walAfter >= walBefore || walAfter == 0 {
		t.Errorf("40 days later: %d archived WAL files of %d, want those before the kept backup expired", walAfter, walBefore)
	}
	t.Logf("backups %v -> %v, archived WAL files %d -> %d", before, got, walBefore, walAfter)
}

// copyTree copies the regular files under from into to, replacing them.
func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.Type()&fs.ModeSymlink != 0 {
			return nil // pgBackRest's "latest" link: not an object
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o750)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o640)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// chownRunAs gives paths (recursively) to the run-as user.
func chownRunAs(t *testing.T, paths ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return
	}
	u, err := user.Lookup(runAsUser(t))
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	for _, root := range paths {
		_ = filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
			if err == nil {
				err = os.Chown(p, uid, gid)
			}
			return err
		})
	}
}

// asRunAsUser makes cmd run as the OS user PostgreSQL runs as.
func asRunAsUser(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	u, err := user.Lookup(runAsUser(t))
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	}
	cmd.Dir = "/"
}

// TestBenchBackupSmoke runs `pgward bench backup` small against a real
// store and checks it measured every phase. Numbers only: benchmarks have
// no thresholds in tests.
func TestBenchBackupSmoke(t *testing.T) {
	runAsUser(t)
	store := objectstore.Start(t)
	// As `make objectstore-up` writes it: 0600, readable by root only
	// when the tests run as root (the bench hands it over on stdin).
	secret := writeManifest(t, "bench-store-secret.yaml", store.SecretManifest("objectstore"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	out, err := pgward(ctx, "bench", "backup", "--scale", "2", "--lag-samples", "3", "--json",
		"--s3-endpoint", store.Endpoint, "--s3-secret-file", secret, "--s3-bucket", store.Bucket)
	if err != nil {
		t.Fatalf("bench backup: %v\n%s", err, out)
	}
	var r map[string]any
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &r); err != nil {
		t.Fatalf("bench output: %v\n%s", err, out)
	}
	for _, k := range []string{"databaseBytes", "pgBasebackupNs", "pgBasebackupMBps", "backupNs", "backupMBps", "backupRatio",
		"restoreNs", "restoreMBps", "archiveLagSamples", "archiveLagP50Ns", "archiveLagP99Ns", "archiveLagMaxNs", "pitrNs", "pitrWALBytes"} {
		if v, ok := r[k].(float64); !ok || v <= 0 {
			t.Errorf("%s = %v, want a positive number\n%s", k, r[k], out)
		}
	}
	t.Logf("%s", out)
	// Its objects stay in the store, under a path of their own.
	if m, _ := filepath.Glob(filepath.Join(store.Root, store.Bucket, "bench-*", "backup", "bench-src")); len(m) != 1 {
		t.Errorf("no backup of bench-src under a per-run path: %v", m)
	}
}
