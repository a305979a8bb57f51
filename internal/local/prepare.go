package local

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/customqueries"
	"github.com/pgward/pgward/internal/instance"
	"github.com/pgward/pgward/internal/pgconf"
	"github.com/pgward/pgward/internal/secrets"
)

// loopback is where every local instance listens; localhost is the name
// clients verify the certificates against.
const (
	loopback  = "127.0.0.1"
	localhost = "localhost"
)

// orphanAfter is how long an instance manager runs on without any
// controller (none answering, none that can be started) before it stops
// PostgreSQL and exits: a controller crash costs nothing, a cluster whose
// controller cannot run does not linger unsupervised.
const orphanAfter = time.Minute

// prepared is a state directory ready for the controller to start.
type prepared struct {
	layout  Layout
	cluster *v1.Cluster
	state   *State
	user    *Owner
	tls     tlsSecrets
	app     string
	super   string
	// sqlFile holds the SQL of bootstrap.initdb's references, if any.
	sqlFile string
}

// prepare turns a manifest into a state directory: it validates the spec
// (against the stored one when resuming), fixes ports, creates the PKI and
// the credentials, and writes each instance manager's config. It is
// idempotent: on an existing directory it reuses everything it finds.
func prepare(l Layout, manifest []byte, c *v1.Cluster, docs, configMaps SecretDocs, dbs []*v1.Database, runAs, pgBin string, ha HAOptions, progress func(string)) (*prepared, error) {
	if err := checkSecretDocs(c, docs); err != nil {
		return nil, err
	}
	if err := CheckDatabases(c, dbs); err != nil {
		return nil, err
	}
	// Before anything is written: a reference that cannot be read is
	// refused now, not at initdb.
	sql, err := resolveSQLRefs(c, docs, configMaps, secrets.DirStore{Root: l.SecretsDir()})
	if err != nil {
		return nil, err
	}
	if err := checkResume(l, c); err != nil {
		return nil, err
	}
	queries, err := resolveCustomQueries(l, c, docs, configMaps)
	if err != nil {
		return nil, err
	}
	u, err := currentOwner(runAs)
	if err != nil {
		return nil, err
	}
	if err := ClaimDir(l.Dir, u); err != nil {
		return nil, err
	}
	st, err := ensureState(l, c, u, pgBin, ha)
	if err != nil {
		return nil, err
	}
	// Before the manifest that declares them reaches the running managers:
	// a replica replays the primary's CREATE TABLESPACE into its own
	// directory, which must then exist.
	if err := ensureTablespaceDirs(l, c, st); err != nil {
		return nil, err
	}
	if err := instance.WriteFileAtomic(l.ClusterFile(), manifest, 0o600); err != nil {
		return nil, err
	}
	store := secrets.DirStore{Root: l.SecretsDir()}
	names, notes, err := ensurePKI(store, c, rand.Reader, time.Now())
	if err != nil {
		return nil, fmt.Errorf("certificates: %w", err)
	}
	progress(fmt.Sprintf("PKI: CA, server and client certificates ready (ECDSA P-256) %v", notes))
	p := &prepared{layout: l, cluster: c, state: st, user: u, tls: names}
	if err := p.ensureCredentials(store, progress); err != nil {
		return nil, err
	}
	for _, name := range slices.Sorted(maps.Keys(docs)) {
		if err := store.Put(name, docs[name]); err != nil {
			return nil, fmt.Errorf("writing the file's Secret %q: %w", name, err)
		}
		progress("secrets: " + name + " written from the manifest file")
	}
	if created, err := ensureBackupKey(c, store, rand.Reader); err != nil {
		return nil, fmt.Errorf("backup encryption key: %w", err)
	} else if created {
		progress("secrets: generated the backup encryption key in " + c.Name + v1.BackupKeySuffix + " (keep a copy: restoring needs it)")
	}
	if err := checkReferencedSecrets(c, store); err != nil {
		return nil, err
	}
	if c.Spec.HasSQLRefs() {
		b, err := json.Marshal(sql)
		if err != nil {
			return nil, err
		}
		p.sqlFile = filepath.Join(l.Dir, bootstrapSQLFile)
		if err := instance.WriteFileAtomic(p.sqlFile, b, 0o600); err != nil {
			return nil, fmt.Errorf("writing the bootstrap SQL: %w", err)
		}
	}
	if err := writeCustomQueries(l, c, queries, configMaps, progress); err != nil {
		return nil, err
	}
	if err := writeDatabases(l, dbs, progress); err != nil {
		return nil, err
	}
	if err := p.writeInstanceConfigs(); err != nil {
		return nil, err
	}
	if err := installBinary(l); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(l.LogDir(), 0o700); err != nil {
		return nil, err
	}
	if err := touch(l.LockFile()); err != nil {
		return nil, err
	}
	return p, nil
}

// checkResume refuses to reuse a state directory for another cluster, and
// applies the same update rules as the admission webhook.
func checkResume(l Layout, c *v1.Cluster) error {
	old, err := os.ReadFile(l.ClusterFile())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading stored manifest: %w", err)
	}
	prev, err := v1.LoadAndValidate(old)
	if err != nil {
		return fmt.Errorf("stored manifest %s: %w", l.ClusterFile(), err)
	}
	if prev.Name != c.Name {
		return fmt.Errorf("%s holds cluster %q, not %q; use another --dir", l.Dir, prev.Name, c.Name)
	}
	if errs := v1.ValidateUpdate(prev, c); len(errs) > 0 {
		return errs.ToAggregate()
	}
	return nil
}

// ensureState fixes the ports and the run-as user on the first run. Ports
// are chosen by the kernel (bind to :0) so several clusters can coexist.
func ensureState(l Layout, c *v1.Cluster, u *Owner, pgBin string, ha HAOptions) (*State, error) {
	st, err := LoadState(l)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if st == nil {
		st = &State{Cluster: c.Name, RunAs: u.Name}
	}
	if st.RunAs != u.Name {
		return nil, fmt.Errorf("%s belongs to OS user %q, not %q", l.Dir, st.RunAs, u.Name)
	}
	if pgBin == "" {
		pgBin = st.PGBinDir
	}
	if pgBin == "" {
		if pgBin, err = findPGBinDir(); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(filepath.Join(pgBin, "postgres")); err != nil {
		return nil, fmt.Errorf("no postgres in %s: %w", pgBin, err)
	}
	st.PGBinDir = pgBin
	if err := st.assignPorts(c); err != nil {
		return nil, err
	}
	if st.TargetPrimary == "" {
		st.TargetPrimary = st.Instances[0].Name
	}
	if st.HA, err = st.HA.withDefaults(ha.UnreachableTimeout, ha.SelfFence); err != nil {
		return nil, err
	}
	return st, st.Save(l)
}

// assignPorts gives every instance of c its three ports, keeping those
// already fixed. All new ports come from one call that holds every listener
// until it has them all: ports asked for one at a time can come back the
// same (the kernel reuses a port just released), and two instances then
// fight over one (seen: two of three instances on one port). A state file
// that already has such a clash is repaired the same way.
func (st *State) assignPorts(c *v1.Cluster) error {
	for i := len(st.Instances); i < c.Spec.Instances; i++ {
		st.Instances = append(st.Instances, InstanceState{Name: fmt.Sprintf("%s-%d", c.Name, i+1)})
	}
	seen := map[int]bool{}
	need := 0
	for _, is := range st.Instances {
		for _, p := range []int{is.Port, is.StatusPort, is.MetricsPort} {
			if p == 0 || seen[p] {
				need++
			}
			seen[p] = true
		}
	}
	if need == 0 {
		return nil
	}
	fresh, err := freePorts(need, seen)
	if err != nil {
		return err
	}
	used := map[int]bool{}
	take := func(p *int) {
		if *p == 0 || used[*p] {
			*p, fresh = fresh[0], fresh[1:]
		}
		used[*p] = true
	}
	for i := range st.Instances {
		take(&st.Instances[i].Port)
		take(&st.Instances[i].StatusPort)
		take(&st.Instances[i].MetricsPort)
	}
	return nil
}

// findPGBinDir picks the newest supported PostgreSQL under /usr/lib/postgresql.
func findPGBinDir() (string, error) {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	best, bestV := "", 0
	for _, m := range matches {
		v, err := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(m))))
		if err == nil && v >= 13 && v > bestV {
			best, bestV = filepath.Dir(m), v
		}
	}
	if best == "" {
		return "", errors.New("no PostgreSQL 13+ server found under /usr/lib/postgresql (apt-get install postgresql-15, or pass --pg-bin)")
	}
	return best, nil
}

// freePorts returns n distinct free ports on loopback, none in taken.
func freePorts(n int, taken map[int]bool) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	for len(ports) < n {
		ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", loopback+":0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		lns = append(lns, ln)
		if p := ln.Addr().(*net.TCPAddr).Port; !taken[p] {
			ports = append(ports, p)
		}
		if len(lns) > 10*n+100 {
			return nil, errors.New("finding free ports: the kernel keeps returning ports already taken")
		}
	}
	return ports, nil
}

// ensureCredentials creates (or keeps) the app owner's secret and, with
// superuser access on, the superuser's.
func (p *prepared) ensureCredentials(store secrets.Store, progress func(string)) error {
	c := p.cluster
	init := c.Spec.Bootstrap.Application()
	p.app = c.Name + "-app"
	if init.Secret != nil {
		p.app = init.Secret.Name
	}
	info := p.connectionInfo()
	if _, created, err := secrets.EnsureCredentials(store, p.app, init.Owner, init.Database, info, rand.Reader); err != nil {
		return fmt.Errorf("app credentials: %w", err)
	} else if created {
		progress("secrets: generated credentials for " + init.Owner + " in " + p.app)
	}
	if c.Spec.EnableSuperuserAccess != nil && *c.Spec.EnableSuperuserAccess {
		p.super = c.Name + "-superuser"
		if c.Spec.SuperuserSecret != nil {
			p.super = c.Spec.SuperuserSecret.Name
		}
		if _, created, err := secrets.EnsureCredentials(store, p.super, "postgres", "postgres", info, rand.Reader); err != nil {
			return fmt.Errorf("superuser credentials: %w", err)
		} else if created {
			progress("secrets: generated credentials for postgres in " + p.super)
		}
	}
	return nil
}

// connectionInfo describes how clients reach the cluster locally: every
// instance of the manifest, so `up` after a change of size rewrites the
// URIs.
func (p *prepared) connectionInfo() secrets.ConnectionInfo {
	return connectionInfo(p.layout, p.state, p.cluster.Spec.Instances, p.tlsServerCA())
}

func (p *prepared) tlsServerCA() string {
	if p.tls.ServerCA != "" {
		return p.tls.ServerCA
	}
	return p.cluster.Name + "-ca"
}

// writeInstanceConfigs writes each instance manager's config.json.
func (p *prepared) writeInstanceConfigs() error {
	primary, _ := p.state.Instance(p.state.TargetPrimary)
	for _, is := range p.state.Instances[:p.cluster.Spec.Instances] {
		dir := p.layout.InstanceDir(is.Name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		cfg := &instance.Config{
			Name:          is.Name,
			ClusterFile:   p.layout.ClusterFile(),
			PGBinDir:      p.state.PGBinDir,
			DataDir:       filepath.Join(dir, "data"),
			WalDir:        walDir(p.cluster, dir),
			ConfDir:       filepath.Join(dir, "conf"),
			SocketDir:     filepath.Join(dir, "run"),
			LogFile:       filepath.Join(dir, "postgres.log"),
			ListenAddress: loopback,
			Host:          localhost,
			Port:          is.Port,
			StatusAddress: net.JoinHostPort(loopback, strconv.Itoa(is.StatusPort)),
			// The exporter listens on loopback like the status port;
			// scraping needs the pgward-metrics certificate.
			MetricsAddress: net.JoinHostPort(loopback, strconv.Itoa(is.MetricsPort)),
			// Always named, so that queries added later reach running
			// exporters, which re-read the file.
			CustomQueriesFile: p.layout.CustomQueriesFile(),
			// Always named, as the queries are: a Database added later
			// reaches the running primary.
			DatabasesFile: p.layout.DatabasesFile(),
			OSUser:        p.user.Name,
			SecretsRoot:   p.layout.SecretsDir(),
			Secrets: instance.Secrets{
				ServerTLS: p.tls.ServerTLS, ServerCA: p.tls.ServerCA, ClientCA: p.tls.ClientCA,
				Replication: p.tls.Replication, App: p.app, Superuser: p.super,
			},
			BootstrapSQLFile: p.sqlFile,
			Primary:          instance.Endpoint{Name: primary.Name, Host: localhost, Port: primary.Port},
			SelfFence:        p.state.HA.SelfFence.Duration,
			Supervisor: &instance.Supervisor{
				Command:     p.layout.ControllerCommand(),
				PidFile:     p.layout.PidFile(),
				StopFile:    p.layout.StopFile(),
				LogFile:     p.layout.ControllerLog(),
				OrphanAfter: orphanAfter,
			},
		}
		// Every instance's tablespaces beside its data directory, under
		// one location string (instance.LocalTablespaceLocation). Always
		// set: a running manager keeps the config it started with, and a
		// tablespace may be declared later.
		cfg.TablespacesDir, cfg.TablespaceLocation = filepath.Join(dir, "tablespaces"), instance.LocalTablespaceLocation
		if err := instance.SaveConfig(cfg, p.layout.InstanceConfig(is.Name)); err != nil {
			return err
		}
	}
	return nil
}

// installBinary copies the running pgward into the state directory, so the
// controller runs the same binary whatever happens to the one we run. It
// is the only copy of pgward on disk (a root run hands its unprivileged
// child an in-memory one), it is reused when its content is the same, and
// anything else in bin/ is what a killed run left half-written, removed
// here: copies never pile up. up.lock is held, so no other run is writing.
func installBinary(l Layout) error {
	// /proc/self/exe, not the path: run as root's child we execute from
	// an in-memory copy that has no path (see cli.execImage).
	src, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		return fmt.Errorf("reading pgward's own binary: %w", err)
	}
	if err := os.MkdirAll(l.BinDir(), 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(l.BinDir())
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() != "pgward" {
			if err := os.RemoveAll(filepath.Join(l.BinDir(), e.Name())); err != nil {
				return fmt.Errorf("removing what a killed run left: %w", err)
			}
		}
	}
	dst := filepath.Join(l.BinDir(), "pgward")
	if cur, err := os.ReadFile(dst); err == nil && bytes.Equal(cur, src) { // #nosec G304 -- inside the state dir
		return nil
	}
	return instance.WriteFileAtomic(dst, src, 0o700)
}

func touch(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o600) // #nosec G304 -- inside the state dir
	if err != nil {
		return err
	}
	return f.Close()
}

// Preflight asks PostgreSQL on this machine whether it accepts the
// manifest (see instance.PreflightCluster), as the OS user it will run as,
// before anything is written. pgBin "" means the newest installed.
func Preflight(ctx context.Context, c *v1.Cluster, docs, cms SecretDocs, dir, pgBin string, owner *Owner) error {
	if err := checkSecretDocs(c, docs); err != nil {
		return err
	}
	// Root reads nothing inside the state directory: Secrets not in the
	// file are checked by the unprivileged run (prepare).
	if _, err := resolveSQLRefs(c, docs, cms, nil); err != nil {
		return err
	}
	if err := checkSocketPath(dir, c); err != nil {
		return err
	}
	if b := c.Spec.Bootstrap; b != nil && b.Recovery != nil && b.Recovery.Backup != nil {
		// A Backup object exists only on Kubernetes; here it would name nothing.
		return errors.New("spec.bootstrap.recovery.backup names a Kubernetes Backup object: locally, name the object store in spec.externalClusters (barmanObjectStore), set bootstrap.recovery.source to it, and the backup in recoveryTarget.backupID (`pgward local backups --dir` of the source lists them)")
	}
	if f := c.Spec.KubernetesOnlySnapshotFields(); len(f) > 0 {
		// There are no volumes to snapshot here: accepted, it would do nothing.
		return fmt.Errorf("%s: volume snapshots are Kubernetes-only (CSI VolumeSnapshots of an instance's persistent volumes): locally, back up with `pgward local backup` to spec.backup.barmanObjectStore and recover with bootstrap.recovery.source", strings.Join(f, ", "))
	}
	if err := refuseFailureDomains(c); err != nil {
		return err
	}
	if err := refusePodSelectors(c); err != nil {
		return err
	}
	if _, ok := c.Annotations[v1.RotateCAAnnotation]; ok {
		// The operator's trigger; here it would be accepted and ignored.
		return fmt.Errorf("metadata.annotations[%s]: the operator's trigger for a CA rotation; locally, run `pgward local rotate-ca`", v1.RotateCAAnnotation)
	}
	if _, ok := c.Annotations[v1.SwitchoverAnnotation]; ok {
		return fmt.Errorf("metadata.annotations[%s]: the operator's switchover request; locally, run `pgward local promote INSTANCE`", v1.SwitchoverAnnotation)
	}
	if pgBin == "" {
		var err error
		if pgBin, err = findPGBinDir(); err != nil {
			return err
		}
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		cred = &syscall.Credential{Uid: owner.UID, Gid: owner.GID}
	}
	if err := instance.PreflightCluster(ctx, pgBin, c, cred); err != nil {
		return err
	}
	return preflightBackup(ctx, c, docs, dir, owner)
}

// walDir is an instance's WAL directory with spec.walStorage, beside its
// data directory (locally both are on the state directory's filesystem:
// walStorage's size and class apply on Kubernetes); "" without.
func walDir(c *v1.Cluster, instanceDir string) string {
	if c.Spec.WalStorage == nil {
		return ""
	}
	return filepath.Join(instanceDir, "wal")
}

// checkSocketPath refuses a state directory so deep that PostgreSQL's Unix
// socket path would not fit in sun_path: every start would fail, after
// initdb, over and over.
func checkSocketPath(dir string, c *v1.Cluster) error {
	if dir == "" {
		return nil
	}
	longest := filepath.Join(Layout{Dir: dir}.InstanceDir(fmt.Sprintf("%s-%d", c.Name, c.Spec.Instances)), "run", ".s.PGSQL.65535")
	if len(longest) > pgconf.MaxSocketPath {
		return fmt.Errorf("--dir %s is too deep: PostgreSQL's socket would be %s, %d bytes, more than Linux's %d: use a shorter path",
			dir, longest, len(longest), pgconf.MaxSocketPath)
	}
	return nil
}

// resolveCustomQueries resolves spec.monitoring's custom queries from the
// file's ConfigMaps and Secrets, else those already in the state directory,
// and checks them (every problem named with its field, ConfigMap or
// Secret, query and key). It writes nothing: a refusal leaves the state
// directory as it was.
func resolveCustomQueries(l Layout, c *v1.Cluster, docs, configMaps SecretDocs) (*customqueries.Set, error) {
	cms := secrets.DirStore{Root: l.ConfigMapsDir()}
	store := secrets.DirStore{Root: l.SecretsDir()}
	sources, err := CustomQuerySources(c, func(kind, name string) (map[string][]byte, error) {
		if kind == "ConfigMap" {
			if d, ok := configMaps[name]; ok {
				return d, nil
			}
			d, err := cms.Get(name)
			if errors.Is(err, fs.ErrNotExist) {
				return nil, errors.New("not found (add it to the manifest file)")
			}
			return d, err
		}
		if d, ok := docs[name]; ok {
			return d, nil
		}
		d, err := store.Get(name)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errors.New("not found (add it to the manifest file, or to the state directory's secrets/)")
		}
		return d, err
	})
	if err != nil {
		return nil, err
	}
	return customqueries.Parse(sources)
}

// writeCustomQueries keeps the file's ConfigMaps in the state directory
// and writes the checked queries as the file the exporters read. It says
// what applies on Kubernetes only.
func writeCustomQueries(l Layout, c *v1.Cluster, set *customqueries.Set, configMaps SecretDocs, progress func(string)) error {
	cms := secrets.DirStore{Root: l.ConfigMapsDir()}
	for _, name := range slices.Sorted(maps.Keys(configMaps)) {
		if err := cms.Put(name, configMaps[name]); err != nil {
			return fmt.Errorf("writing the file's ConfigMap %q: %w", name, err)
		}
		progress("configmaps: " + name + " written from the manifest file")
	}
	b, err := set.Encode()
	if err != nil {
		return err
	}
	if err := instance.WriteFileAtomic(l.CustomQueriesFile(), b, 0o600); err != nil {
		return err
	}
	if n := len(set.Queries); n > 0 {
		progress(fmt.Sprintf("monitoring: %d custom queries, run by each exporter as %s (read-only, %s each)", n, v1.MonitorRole, instance.CustomQueryTimeout))
	}
	if m := c.Spec.Monitoring; m != nil && m.EnablePodMonitor {
		progress("note: spec.monitoring.enablePodMonitor (and its relabelings) applies on Kubernetes only; locally scrape the addresses below")
	}
	return nil
}

// ensureTablespaceDirs makes instances/<i>/tablespaces/<name>/data (0700)
// for every instance of the manifest: the instance managers make them too,
// but only once they read the new manifest, and the primary may create a
// tablespace before a replica's manager has.
func ensureTablespaceDirs(l Layout, c *v1.Cluster, st *State) error {
	if len(c.Spec.Tablespaces) == 0 {
		return nil
	}
	n := min(c.Spec.Instances, len(st.Instances))
	for _, is := range st.Instances[:n] {
		dir := l.InstanceDir(is.Name)
		cfg := &instance.Config{DataDir: filepath.Join(dir, "data"), TablespacesDir: filepath.Join(dir, "tablespaces"),
			TablespaceLocation: instance.LocalTablespaceLocation}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		if err := instance.EnsureTablespaceDirs(cfg, c); err != nil {
			return err
		}
	}
	return nil
}
