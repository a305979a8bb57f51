package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"sigs.k8s.io/yaml"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/backup"
	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/local"
)

// BackupOptions configure `pgward bench backup`.
type BackupOptions struct {
	// Scale is pgbench's scale factor (-i -s): 70 is about 1 GB.
	Scale int
	// Endpoint is the S3 store's https:// URL; Secret the Kubernetes
	// Secret manifest with ACCESS_KEY_ID, ACCESS_SECRET_KEY and ca.crt
	// (what `make objectstore-up` prints and writes).
	Endpoint string
	Secret   []byte
	Bucket   string
	// Compression is the backup block's wal/data compression ("" none,
	// pgward's default).
	Compression string
	// LagSamples is how many WAL switches the archive-lag test times.
	LagSamples int
	Out        io.Writer
	JSON       bool
}

// mb is a megabyte as the report counts them (10^6 bytes).
const mb = 1e6

// BackupReport is what `pgward bench backup` measured.
type BackupReport struct {
	Scale         int    `json:"scale"`
	DatabaseBytes int64  `json:"databaseBytes"`
	Store         string `json:"store"`
	Compression   string `json:"compression"`
	Cores         int    `json:"cores"`

	// pg_basebackup -Ft -X stream -c fast of the same cluster to local disk.
	BasebackupNs    time.Duration `json:"pgBasebackupNs"`
	BasebackupMBps  float64       `json:"pgBasebackupMBps"`
	BasebackupBytes int64         `json:"pgBasebackupBytes"`
	// `pgward local backup`: pgBackRest, encrypted, into the store.
	BackupNs        time.Duration `json:"backupNs"`
	BackupMBps      float64       `json:"backupMBps"`
	BackupRepoBytes int64         `json:"backupRepoBytes"`
	// BackupRatio is BackupMBps / BasebackupMBps (issue 11: >= 0.8).
	BackupRatio float64 `json:"backupRatio"`

	// A bootstrap.recovery of that backup (to the end of the archive)
	// into a new cluster, from `up` to ready.
	RestoreNs   time.Duration `json:"restoreNs"`
	RestoreMBps float64       `json:"restoreMBps"`

	// pg_switch_wal() under pgbench load until the segment is archived.
	LagSamples int           `json:"archiveLagSamples"`
	LagP50     time.Duration `json:"archiveLagP50Ns"`
	LagP99     time.Duration `json:"archiveLagP99Ns"`
	LagMax     time.Duration `json:"archiveLagMaxNs"`

	// A recovery to a time a few seconds before the load ended.
	PITRNs       time.Duration `json:"pitrNs"`
	PITRWALBytes int64         `json:"pitrWALBytes"`
}

// benchCluster is one cluster the benchmark started in work.
type benchCluster struct {
	name, dir string
	socket    string
	port      int
}

// RunBackup runs the backup benchmark: a source cluster archiving into the
// store, pgbench data, pg_basebackup and `pgward local backup` of it, a
// recovery to the end of the archive, archive lag under load and a
// recovery to a time. Every cluster it started is purged on return,
// whatever happened.
func RunBackup(ctx context.Context, o BackupOptions) (BackupReport, error) {
	r := BackupReport{Scale: o.Scale, Compression: o.Compression, Cores: runtime.NumCPU()}
	if r.Compression == "" {
		r.Compression = "none"
	}
	secretName, err := storeSecretName(o.Secret)
	if err != nil {
		return r, err
	}
	work, err := os.MkdirTemp("", "pgward-bench-backup-")
	if err != nil {
		return r, err
	}
	var started []*benchCluster
	defer func() {
		// Cleanup runs after an interrupt too: ctx may be done.
		for _, c := range started {
			_ = local.Down(context.Background(), local.DownOptions{Dir: c.dir, Purge: true, Out: io.Discard})
		}
		_ = os.RemoveAll(work)
	}()
	up := func(name, manifest string) (*benchCluster, time.Duration, error) {
		c := &benchCluster{name: name, dir: filepath.Join(work, name)}
		started = append(started, c)
		doc, secrets, err := local.SplitManifest([]byte(manifest + "---\n" + string(o.Secret)))
		if err != nil {
			return nil, 0, err
		}
		t0 := time.Now()
		err = local.Up(ctx, local.UpOptions{Dir: c.dir, Manifest: doc, Secrets: secrets, Timeout: 2 * time.Hour, Out: io.Discard})
		d := time.Since(t0)
		if err != nil {
			return nil, 0, fmt.Errorf("starting cluster %s: %w", name, err)
		}
		cs, err := local.Observe(ctx, local.Layout{Dir: c.dir})
		if err != nil {
			return nil, 0, err
		}
		c.socket, c.port = cs.Instances[0].SocketDir, cs.Instances[0].Port
		return c, d, nil
	}
	// A path of its own in the bucket for every run: stanzas are named
	// after the clusters, and a store refuses a stanza of another cluster.
	dest := fmt.Sprintf("s3://%s/bench-%s-%s", o.Bucket, time.Now().UTC().Format("20060102T150405"), strings.ToLower(rand.Text()[:6]))
	r.Store = o.Endpoint + " " + dest
	store := storeBlock(dest, o.Endpoint, secretName, o.Compression, false)
	source := storeBlock(dest, o.Endpoint, secretName, "", true)
	say := func(format string, a ...any) {
		if !o.JSON {
			_, _ = fmt.Fprintf(o.Out, format+"\n", a...)
		}
	}

	say("store %s, %s", o.Endpoint, dest)
	src, _, err := up("bench-src", clusterManifest("bench-src", store, ""))
	if err != nil {
		return r, err
	}
	st, err := local.LoadState(local.Layout{Dir: src.dir})
	if err != nil {
		return r, err
	}
	pgBin := st.PGBinDir
	conn, err := src.connect(ctx)
	if err != nil {
		return r, err
	}
	defer func() { _ = conn.Close(context.Background()) }()

	say("pgbench -i -s %d ...", o.Scale)
	t0 := time.Now()
	if err := run(ctx, pgBin, "pgbench", src.pgbench("-i", "-q", "-s", fmt.Sprint(o.Scale))...); err != nil {
		return r, err
	}
	if err := conn.QueryRow(ctx, `SELECT sum(pg_database_size(datname))::bigint FROM pg_database`).Scan(&r.DatabaseBytes); err != nil {
		return r, err
	}
	say("  %.0f MB of databases in %s; waiting for the archive to catch up", float64(r.DatabaseBytes)/mb, time.Since(t0).Round(100*time.Millisecond))
	// The load's WAL is still being archived: the backups are timed on a
	// quiet cluster, not against that upload.
	if _, err := switchAndWait(ctx, conn, 30*time.Minute); err != nil {
		return r, err
	}

	// 1. pg_basebackup to local disk, then `pgward local backup`, of the
	// same data: a checkpoint first for both, so neither pays for the
	// other's dirty pages.
	bb := filepath.Join(work, "basebackup")
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		return r, err
	}
	t0 = time.Now()
	if err := run(ctx, pgBin, "pg_basebackup", "-D", bb, "-Ft", "-X", "stream", "-c", "fast", "--no-password",
		"-d", src.replicationConnInfo()); err != nil {
		return r, err
	}
	r.BasebackupNs = time.Since(t0)
	r.BasebackupBytes = dirSize(bb)
	_ = os.RemoveAll(bb)
	r.BasebackupMBps = mbps(r.DatabaseBytes, r.BasebackupNs)
	say("  pg_basebackup: %s, %.0f MB/s", r.BasebackupNs.Round(10*time.Millisecond), r.BasebackupMBps)

	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		return r, err
	}
	t0 = time.Now()
	if err := local.Backup(ctx, local.BackupOptions{Dir: src.dir, Timeout: 2 * time.Hour, Out: io.Discard}); err != nil {
		return r, err
	}
	r.BackupNs = time.Since(t0)
	r.BackupMBps = mbps(r.DatabaseBytes, r.BackupNs)
	r.BackupRatio = r.BackupMBps / r.BasebackupMBps
	set, err := lastBackup(ctx, src.dir)
	if err != nil {
		return r, err
	}
	r.BackupRepoBytes = set.RepoSize
	say("  pgward local backup: %s, %.0f MB/s (%.0f%% of pg_basebackup), %.0f MB in the store",
		r.BackupNs.Round(10*time.Millisecond), r.BackupMBps, 100*r.BackupRatio, float64(r.BackupRepoBytes)/mb)

	// 2. Recovery of that backup to the end of the archive.
	key, err := os.ReadFile(filepath.Join(src.dir, "secrets", src.name+v1.BackupKeySuffix, v1.BackupKeyKey)) // #nosec G304 -- our own cluster's state
	if err != nil {
		return r, err
	}
	recovery := func(name, target string) string {
		return clusterManifest(name, store, recoveryBlock(src.name, source, target)) +
			fmt.Sprintf("---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: bench-source-key\nstringData:\n  key: %q\n", strings.TrimSpace(string(key)))
	}
	rc, d, err := up("bench-restore", recovery("bench-restore", ""))
	if err != nil {
		return r, err
	}
	r.RestoreNs, r.RestoreMBps = d, mbps(r.DatabaseBytes, d)
	say("  restore (bootstrap.recovery until ready): %s, %.0f MB/s", d.Round(10*time.Millisecond), r.RestoreMBps)
	// One cluster at a time on the machine from here on.
	_ = local.Down(context.Background(), local.DownOptions{Dir: rc.dir, Purge: true, Out: io.Discard})

	// 3. Archive lag under load, and the target of 4. a few seconds
	// before the load ends.
	say("archive lag: %d WAL switches under pgbench -c 2 -R 50 ...", o.LagSamples)
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	// Stopped by stopLoad (a kill): its exit status says nothing.
	load, _ := command(loadCtx, pgBin, "pgbench", src.pgbench("-n", "-c", "2", "-R", "50", "-T", "86400")...)
	if err := load.Start(); err != nil {
		return r, err
	}
	lags, err := archiveLags(ctx, conn, o.LagSamples)
	if err != nil {
		return r, err
	}
	r.LagSamples = len(lags)
	r.LagP50, r.LagP99, r.LagMax = percentile(lags, 50), percentile(lags, 99), lags[len(lags)-1]
	say("  p50 %s, p99 %s, max %s", r.LagP50.Round(time.Millisecond), r.LagP99.Round(time.Millisecond), r.LagMax.Round(time.Millisecond))
	var target time.Time
	var targetLSN string
	if err := conn.QueryRow(ctx, `SELECT clock_timestamp(), pg_current_wal_lsn()::text`).Scan(&target, &targetLSN); err != nil {
		return r, err
	}
	time.Sleep(3 * time.Second)
	stopLoad()
	_ = load.Wait()
	// The WAL past the target must be in the store for recovery to stop there.
	if _, err := switchAndWait(ctx, conn, 5*time.Minute); err != nil {
		return r, err
	}
	from, err1 := backup.ParseLSN(set.StopLSN)
	to, err2 := backup.ParseLSN(targetLSN)
	if err1 == nil && err2 == nil && to > from {
		r.PITRWALBytes = int64(to - from) // #nosec G115 -- a WAL distance, far below 2^63
	}

	// 4. Recovery to that time.
	at := target.UTC().Format(time.RFC3339Nano)
	pc, d, err := up("bench-pitr", recovery("bench-pitr", "      recoveryTarget: {targetTime: \""+at+"\"}\n"))
	if err != nil {
		return r, err
	}
	r.PITRNs = d
	say("  recovery to %s (%.0f MB of WAL after the backup): %s", at, float64(r.PITRWALBytes)/mb, d.Round(10*time.Millisecond))
	if err := pc.checkStoppedAt(ctx, target); err != nil {
		return r, err
	}
	return r, printBackup(o, r)
}

// storeSecretName checks the store's Secret names the keys the cluster
// manifests refer to, and returns its name.
func storeSecretName(secret []byte) (string, error) {
	var s struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Data       map[string]string `json:"data"`
		StringData map[string]string `json:"stringData"`
	}
	if err := yaml.Unmarshal(secret, &s); err != nil || s.Kind != "Secret" || s.Metadata.Name == "" {
		return "", errors.New("the store's secret file is not a Kubernetes Secret manifest with a name (the secret.yaml `make objectstore-up` writes)")
	}
	for _, k := range []string{"ACCESS_KEY_ID", "ACCESS_SECRET_KEY", "ca.crt"} {
		if _, ok := s.StringData[k]; !ok {
			if _, ok := s.Data[k]; !ok {
				return "", fmt.Errorf("the store's Secret %q has no key %s (it needs ACCESS_KEY_ID, ACCESS_SECRET_KEY and ca.crt)", s.Metadata.Name, k)
			}
		}
	}
	return s.Metadata.Name, nil
}

// storeBlock is a barmanObjectStore block (indented for spec.backup)
// without its encryption key.
func storeBlock(dest, endpoint, secret, compression string, source bool) string {
	data := "data: {immediateCheckpoint: true}"
	wal := ""
	switch {
	case source:
		// A recovery source is only read: no checkpoint, compression
		// comes from its backups.
		data = ""
	case compression != "":
		data = fmt.Sprintf("data: {immediateCheckpoint: true, compression: %s}", compression)
		wal = fmt.Sprintf("      wal: {compression: %s}\n", compression)
	}
	return fmt.Sprintf(`      destinationPath: %[1]s
      endpointURL: %[2]s
      endpointCA: {name: %[3]s, key: ca.crt}
      s3Credentials:
        accessKeyId: {name: %[3]s, key: ACCESS_KEY_ID}
        secretAccessKey: {name: %[3]s, key: ACCESS_SECRET_KEY}
      %[4]s
%[5]s`, dest, endpoint, secret, data, wal)
}

// clusterManifest is a one-instance cluster archiving into store, with
// extra appended to its spec.
func clusterManifest(name, store, extra string) string {
	return fmt.Sprintf(`apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: %s
spec:
  instances: 1
  backup:
    barmanObjectStore:
%s%s`, name, store, extra)
}

// recoveryBlock bootstraps from source's backups in store, to target (a
// recoveryTarget line, indented) or to the end of the archive ("").
func recoveryBlock(source, store, target string) string {
	return fmt.Sprintf(`  bootstrap:
    recovery:
      source: %[1]s
%[3]s  externalClusters:
  - name: %[1]s
    barmanObjectStore:
%[2]s      encryptionKey: {name: bench-source-key, key: key}
`, source, store, target)
}

// connect opens a superuser session over the instance's socket (peer
// authentication maps our OS user to postgres).
func (c *benchCluster) connect(ctx context.Context) (*pgx.Conn, error) {
	return pgx.Connect(ctx, fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres", c.socket, c.port))
}

// command is one of PostgreSQL's client programs, with nothing of our
// environment but the locale.
func command(ctx context.Context, pgBin, prog string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	cmd := exec.CommandContext(ctx, filepath.Join(pgBin, prog), args...) // #nosec G204 -- PostgreSQL's own programs with arguments built here
	cmd.Env = []string{"LC_ALL=C", "PGCONNECT_TIMEOUT=10"}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	return cmd, &out
}

func run(ctx context.Context, pgBin, prog string, args ...string) error {
	cmd, out := command(ctx, pgBin, prog, args...)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w\n%s", prog, err, tailString(out.String(), 2000))
	}
	return nil
}

// pgbench runs pgbench against the app database as postgres, over the
// socket.
func (c *benchCluster) pgbench(args ...string) []string {
	return append(append([]string{"-h", c.socket, "-p", fmt.Sprint(c.port), "-U", "postgres"}, args...), "app")
}

// replicationConnInfo is how a replica of this cluster clones it: TLS,
// the server verified, streaming_replica's client certificate (pgward
// lets no other role open a replication connection).
func (c *benchCluster) replicationConnInfo() string {
	sec := filepath.Join(c.dir, "secrets")
	return fmt.Sprintf("host=localhost port=%d user=%s dbname=postgres sslmode=verify-full sslrootcert=%s sslcert=%s sslkey=%s ssl_min_protocol_version=TLSv1.3",
		c.port, v1.ReplicationUser, filepath.Join(sec, c.name+"-ca", "ca.crt"),
		filepath.Join(sec, c.name+"-replication", "tls.crt"), filepath.Join(sec, c.name+"-replication", "tls.key"))
}

// checkStoppedAt makes sure a recovery to target did stop there: the
// newest pgbench transaction it has is before the target, and not long
// before (the load committed about 50 a second until 3 s after it).
func (c *benchCluster) checkStoppedAt(ctx context.Context, target time.Time) error {
	conn, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%d user=postgres dbname=app", c.socket, c.port))
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	var newest time.Time
	// mtime is a timestamp without time zone, in the server's zone.
	if err := conn.QueryRow(ctx, `SELECT max(mtime) AT TIME ZONE current_setting('TimeZone') FROM pgbench_history`).Scan(&newest); err != nil {
		return fmt.Errorf("the recovered cluster: %w", err)
	}
	if newest.After(target) || newest.Before(target.Add(-2*time.Second)) {
		return fmt.Errorf("recovery to %s: the newest transaction recovered is from %s", target.Format(time.RFC3339Nano), newest.Format(time.RFC3339Nano))
	}
	return nil
}

// switchAndWait closes the current WAL segment and waits until the
// archiver reports it archived, pgBackRest's archive-push returning only
// once the segment is in the store. It returns how long that took.
func switchAndWait(ctx context.Context, conn *pgx.Conn, limit time.Duration) (time.Duration, error) {
	var seg string
	// pg_switch_wal returns the end of the segment it closed.
	if err := conn.QueryRow(ctx, `SELECT pg_walfile_name(pg_switch_wal() - 1)`).Scan(&seg); err != nil {
		return 0, err
	}
	t0 := time.Now()
	deadline := t0.Add(limit)
	for {
		var done bool
		if err := conn.QueryRow(ctx, `SELECT coalesce(last_archived_wal >= $1, false) FROM pg_stat_archiver`, seg).Scan(&done); err != nil {
			return 0, err
		}
		if done {
			return time.Since(t0), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("WAL segment %s not archived after %s", seg, limit)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// archiveLags times n WAL switches, half a second apart, sorted.
func archiveLags(ctx context.Context, conn *pgx.Conn, n int) ([]time.Duration, error) {
	lags := make([]time.Duration, 0, n)
	for range n {
		d, err := switchAndWait(ctx, conn, time.Minute)
		if err != nil {
			return nil, err
		}
		lags = append(lags, d)
		time.Sleep(500 * time.Millisecond)
	}
	if len(lags) == 0 {
		return nil, errors.New("no archive lag samples")
	}
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	return lags, nil
}

// percentile is the nearest-rank p-th percentile of sorted ds.
func percentile(ds []time.Duration, p int) time.Duration {
	return ds[max(0, min(len(ds)-1, (len(ds)*p+99)/100-1))]
}

func mbps(bytes int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(bytes) / mb / d.Seconds()
}

// lastBackup is the newest backup in the cluster's store.
func lastBackup(ctx context.Context, dir string) (instanceapi.BackupInfo, error) {
	var out bytes.Buffer
	if err := local.Backups(ctx, local.BackupOptions{Dir: dir, JSON: true, Out: &out}); err != nil {
		return instanceapi.BackupInfo{}, err
	}
	var list instanceapi.BackupList
	if err := json.Unmarshal(out.Bytes(), &list); err != nil {
		return instanceapi.BackupInfo{}, fmt.Errorf("listing the backup: %w", err)
	}
	if len(list.Backups) == 0 {
		return instanceapi.BackupInfo{}, errors.New("the backup finished but the store lists none")
	}
	return list.Backups[len(list.Backups)-1], nil
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func tailString(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func printBackup(o BackupOptions, r BackupReport) error {
	if o.JSON {
		enc := json.NewEncoder(o.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	ms := func(d time.Duration) string { return d.Round(10 * time.Millisecond).String() }
	w := tabwriter.NewWriter(o.Out, 0, 4, 2, ' ', 0)
	_, _ = fmt.Fprintf(w, "\ndatabase\tpgbench -s %d, %.0f MB (MB = 10^6 bytes; %d cores, %s)\n", r.Scale, float64(r.DatabaseBytes)/mb, r.Cores, runtime.GOOS)
	_, _ = fmt.Fprintf(w, "pg_basebackup -Ft -X stream to local disk\t%s\t%.0f MB/s\n", ms(r.BasebackupNs), r.BasebackupMBps)
	_, _ = fmt.Fprintf(w, "pgward local backup (pgBackRest, encrypted, compression %s)\t%s\t%.0f MB/s\t%.0f%% of pg_basebackup (goal >= 80%%)\n",
		r.Compression, ms(r.BackupNs), r.BackupMBps, 100*r.BackupRatio)
	_, _ = fmt.Fprintf(w, "restore: bootstrap.recovery until ready\t%s\t%.0f MB/s\n", ms(r.RestoreNs), r.RestoreMBps)
	_, _ = fmt.Fprintf(w, "WAL archive lag, %d switches under load\tp50 %s\tp99 %s (goal <= 2s)\tmax %s\n", r.LagSamples,
		r.LagP50.Round(time.Millisecond), r.LagP99.Round(time.Millisecond), r.LagMax.Round(time.Millisecond))
	_, _ = fmt.Fprintf(w, "recovery to a time (%.0f MB of WAL after the backup)\t%s\n", float64(r.PITRWALBytes)/mb, ms(r.PITRNs))
	return w.Flush()
}
