package instance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/secrets"
)

// Phases the manager reports.
const (
	PhaseWaiting    = "waiting"
	PhaseInitDB     = "initdb"
	PhaseBaseBackup = "basebackup"
	PhaseRewind     = "rewind"
	PhaseStarting   = "starting"
	PhaseRunning    = "running"
	PhaseStopped    = "stopped"
	PhaseCrashed    = "crashed"
	PhaseFenced     = "fenced"
	PhaseStopping   = "stopping"
	// PhaseStanza: creating the cluster's place in its object store.
	PhaseStanza = "stanza-create"
	// PhaseRestore and PhaseRecovery: bootstrap.recovery restoring a base
	// backup, then replaying WAL up to the target. PhaseClone:
	// bootstrap.pg_basebackup copying another cluster.
	PhaseClone    = "clone"
	PhaseRestore  = "restore"
	PhaseRecovery = "recovery"
	// PhaseImport: bootstrap.initdb.import dumping and restoring.
	PhaseImport = "import"
)

// Manager owns one PostgreSQL instance. It starts, stops, promotes and
// rejoins it only when the controller commands it (see commands.go): after
// a crash postgres stays down until told, so the controller, not a race,
// decides between restarting it and failing over.
type Manager struct {
	cfg     *Config
	cluster *v1.Cluster
	store   secrets.Store
	log     *slog.Logger
	contact *contactTracker
	// sup watches the controller, when this manager must keep one alive.
	sup *supervisorWatch
	// selfFence is how long a primary may go without contact before it
	// stops accepting writes; zero disables self-fencing (single instance).
	selfFence time.Duration
	// lease renews the primary Lease (Kubernetes); nil in the local
	// runtime.
	lease LeaseRenewer

	wake chan struct{}
	// reloadWake wakes the loop for a reload request (reloadnow.go);
	// reloadReq is the one waiting, reloadRes the last outcome.
	reloadWake chan struct{}
	reloadReq  *pendingReload
	reloadRes  *instanceapi.ReloadResult

	mu      sync.Mutex
	phase   string
	lastErr string
	// retry backs off commands that (re)start PostgreSQL after failures.
	retry   backoff
	busy    string
	pending *instanceapi.Command
	pm      *postmaster
	primary bool // pm runs as a primary
	pool    *pgxpool.Pool
	st      persisted
	// endLSN is where the WAL ends after a clean shutdown.
	endLSN string
	// gen counts postgres starts; a sample belongs to one.
	gen    uint64
	sample sample
	tls    *tlsFiles
	// replicaTLI is the highest timeline this data directory has reported
	// as a replica.
	replicaTLI uint32
	// backupRun is the last base backup started here (backup.go).
	backupRun *instanceapi.BackupRun
	// recovery and pgdata belong to the loop's goroutine while it
	// bootstraps: the recovery settings to render, and the directory
	// PostgreSQL runs in when it is not PGDATA (the staging directory).
	recovery *recoverySettings
	pgdata   string
	// manifestMod is the manifest file's modification time when last read.
	manifestMod time.Time
	// configErr says why the latest manifest was not applied (see reload.go).
	configErr string
	// clusterSum identifies (hex SHA-256 of the file's bytes) the manifest
	// cluster was read from; loadedSum the one whose configuration
	// PostgreSQL has loaded: set when it starts on cluster's files and
	// when it confirmed a reload of them (reload.go), never earlier, so a
	// sample that reads loadedSum before its query reports a pending
	// restart that belongs to that manifest (Status.ManifestSHA256).
	clusterSum, loadedSum string
	// appliedCreds identifies the credentials last set on the roles, and
	// secretErr the last failure to read or apply them (passwords.go).
	// Both belong to the loop's goroutine.
	appliedCreds [32]byte
	secretErr    string
	// hbaSecretsSum is the digest of the secrets in the pg_hba.conf last
	// rendered (hbaSecretsChanged).
	hbaSecretsSum [sha256.Size]byte
	// rolesDigest identifies the managed roles (and their passwords) last
	// reconciled, at rolesCheckedAt; rolesErr is the last failure, in the
	// status (managedroles.go).
	rolesDigest    [32]byte
	rolesCheckedAt time.Time
	// slotsAt is when the replication slots were last maintained
	// (maintainSlots).
	slotsAt   time.Time
	slotsBusy bool
	// slotsPrefix is the prefix of the slots last maintained, so that
	// they are dropped when the spec stops wanting them.
	slotsPrefix string
	rolesErr    string
	// tablespacesDigest identifies spec.tablespaces last reconciled, at
	// tablespacesCheckedAt; tablespacesErr is the last failure, in the
	// status (tablespaces.go).
	tablespacesDigest    [32]byte
	tablespacesCheckedAt time.Time
	tablespacesErr       string
	// dbDigest identifies the declared databases last reconciled, at
	// dbCheckedAt; dbResults are their outcomes, in the status
	// (databases.go).
	dbDigest    [32]byte
	dbCheckedAt time.Time
	dbResults   []instanceapi.DatabaseResult
	// pgTLS is the TLS material PostgreSQL last read, at start or reload.
	pgTLS tlsState
	// level is the logger's level, kept at spec.logLevel (logging.go).
	level *slog.LevelVar
}

// NewManager loads the cluster spec the config points at.
func NewManager(cfg *Config, log *slog.Logger) (*Manager, error) {
	// The image decides where PostgreSQL is, and which: a user's image
	// (spec.imageName) may keep it elsewhere, or be another major.
	bin, err := ResolvePGBinDir(context.Background(), cfg.PGBinDir)
	if err != nil {
		return nil, err
	}
	if bin != cfg.PGBinDir {
		log.Info("PostgreSQL found elsewhere than configured", "configured", cfg.PGBinDir, "found", bin)
		cfg.PGBinDir = bin
	}
	fi, err := os.Stat(cfg.ClusterFile)
	if err != nil {
		return nil, fmt.Errorf("reading cluster manifest: %w", err)
	}
	b, err := os.ReadFile(cfg.ClusterFile)
	if err != nil {
		return nil, fmt.Errorf("reading cluster manifest: %w", err)
	}
	if err := os.MkdirAll(cfg.ConfDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", cfg.ConfDir, err)
	}
	// Before anything of ConfDir is read: it may be another cluster's.
	if err := prepareSnapshotImport(cfg, b, log); err != nil {
		return nil, err
	}
	c, sum, configErr, err := startingManifest(cfg, b)
	if err != nil {
		return nil, err
	}
	if b := c.Spec.Bootstrap; b == nil || (b.InitDB == nil && b.Recovery == nil && b.PgBaseBackup == nil) {
		return nil, errNoBootstrap
	}
	st, err := loadPersisted(cfg.ConfDir, cfg.Primary)
	if err != nil {
		return nil, err
	}
	m := &Manager{
		cfg: cfg, cluster: c, log: log,
		store:      secrets.DirStore{Root: cfg.SecretsRoot},
		contact:    newContactTracker(time.Now()),
		wake:       make(chan struct{}, 1),
		reloadWake: make(chan struct{}, 1),
		phase:      PhaseWaiting,
		st:         st,
		// The modification time from before the read: a change racing
		// with it is picked up at the next check.
		manifestMod: fi.ModTime(),
		configErr:   configErr,
		clusterSum:  sum,
	}
	if configErr != "" {
		// Checked against the running server at the first reload check.
		m.manifestMod = time.Time{}
	}
	if c.Spec.Instances > 1 {
		m.selfFence = cfg.SelfFence
	}
	if cfg.Lease != nil {
		if m.lease, err = newAPILease(cfg.Lease, cfg.Name); err != nil {
			return nil, err
		}
	}
	m.sup = newSupervisorWatch(cfg.Supervisor, log)
	return m, nil
}

// appliedFile keeps the manifest the instance last applied.
func appliedFile(cfg *Config) string { return filepath.Join(cfg.ConfDir, "applied-cluster.yaml") }

func (m *Manager) appliedFile() string { return appliedFile(m.cfg) }

// startingManifest picks the manifest to start with (and its manifestSum). The first time, it is
// the manifest file. After that, a manifest that changed while the manager
// was not running (a pod restarted with a new Secret) is not trusted to
// start PostgreSQL: the instance starts on the last manifest it applied,
// and the new one is then checked against the running server and applied
// like any live change (reload.go), or refused with the reason in status,
// instead of leaving an instance that cannot start.
func startingManifest(cfg *Config, manifest []byte) (*v1.Cluster, string, string, error) {
	c, err := v1.LoadAndValidate(manifest)
	prevBytes, prevErr := os.ReadFile(appliedFile(cfg))
	if errors.Is(prevErr, fs.ErrNotExist) {
		if err != nil {
			return nil, "", "", fmt.Errorf("cluster manifest %s: %w", cfg.ClusterFile, err)
		}
		return c, manifestSum(manifest), "", WriteFileAtomic(appliedFile(cfg), manifest, 0o600)
	}
	prev, prevErr := v1.LoadAndValidate(prevBytes)
	switch {
	case prevErr != nil && err != nil:
		return nil, "", "", fmt.Errorf("cluster manifest %s: %w", cfg.ClusterFile, err)
	case prevErr != nil:
		return c, manifestSum(manifest), "", WriteFileAtomic(appliedFile(cfg), manifest, 0o600)
	case err != nil:
		return prev, manifestSum(prevBytes), "manifest change refused: " + err.Error(), nil
	case reflect.DeepEqual(prev.Spec, c.Spec):
		return c, manifestSum(manifest), "", nil
	}
	return prev, manifestSum(prevBytes), "manifest changed while the instance was down: starting on the last applied one until PostgreSQL has checked the new one", nil
}

// manifestSum identifies a manifest file's content as the status reports
// it (Status.ManifestSHA256) and a reload request names it.
func manifestSum(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Run serves the status port and executes commands until ctx ends, then
// shuts PostgreSQL down cleanly.
func (m *Manager) Run(ctx context.Context) error {
	if err := os.MkdirAll(m.cfg.SocketDir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", m.cfg.SocketDir, err)
	}
	files := &tlsFiles{
		certFile:     m.secretFile(m.cfg.Secrets.ServerTLS, "tls.crt"),
		keyFile:      m.secretFile(m.cfg.Secrets.ServerTLS, "tls.key"),
		clientCAFile: m.secretFile(m.cfg.Secrets.ClientCA, "ca.crt"),
	}
	if _, err := files.load(); err != nil {
		return err
	}
	m.tls = files
	srv := newStatusServer(m.cfg.StatusAddress, files, m)
	srvCtx, stopSrv := context.WithCancel(context.Background())
	srvDone := make(chan error, 1)
	go func() { srvDone <- serveHTTPS(srvCtx, srv, "status server") }()
	defer func() {
		stopSrv()
		if err := <-srvDone; err != nil {
			m.log.Error("status server", "err", err)
		}
	}()
	if m.cfg.MetricsAddress != "" {
		msrv := newMetricsServer(m.cfg.MetricsAddress, files, m)
		mDone := make(chan struct{})
		go func() {
			defer close(mDone)
			if err := serveHTTPS(srvCtx, msrv, "metrics exporter"); err != nil {
				// Said at once: the instance runs on without metrics.
				m.log.Error("metrics exporter", "err", err)
			}
		}()
		defer func() {
			stopSrv()
			<-mDone
		}()
	}
	if !hasDataDir(m.cfg.DataDir) {
		_ = os.RemoveAll(stagingDir(m.cfg.DataDir))
	}
	sctx, stopSampler := context.WithCancel(ctx)
	samplerDone := make(chan struct{})
	go func() {
		defer close(samplerDone)
		m.sampler(sctx)
	}()
	leaseDone := make(chan struct{})
	go func() {
		defer close(leaseDone)
		// Only a cluster that can fail over has a self-fencing timer for
		// the renewals to feed: a single instance writes nothing to etcd.
		if l := m.cfg.Lease; l != nil && m.lease != nil && m.selfFence > 0 {
			m.renewLease(sctx, l.RenewPeriod, l.RequestTimeout)
		}
	}()
	err := m.loop(ctx)
	stopSampler()
	<-samplerDone
	<-leaseDone
	return err
}

// loop runs commands one at a time and watches the postmaster, the
// self-fencing timer and, in the local runtime, the controller. It returns
// an error only when the manager must exit without a controller.
func (m *Manager) loop(ctx context.Context) error {
	tick := time.NewTicker(FenceCheckInterval)
	defer tick.Stop()
	tlsTick := time.NewTicker(TLSCheckInterval)
	defer tlsTick.Stop()
	secretTick := time.NewTicker(SecretCheckInterval)
	defer secretTick.Stop()
	var supTick <-chan time.Time
	if m.sup != nil {
		t := time.NewTicker(SupervisorCheckInterval)
		defer t.Stop()
		supTick = t.C
	}
	for {
		var pmDone <-chan struct{}
		if pm := m.postmaster(); pm != nil {
			pmDone = pm.Done()
		}
		select {
		case <-ctx.Done():
			m.mu.Lock()
			stay := leaveWindow(m.primary, m.cfg.Lease != nil, m.selfFence)
			m.mu.Unlock()
			m.shutdown(time.Now())
			if stay > 0 {
				// The status server (and the pod's address) stay up:
				// Run stops them on return.
				m.log.Info("postgres stopped; staying to report it before the pod goes", "for", stay)
				time.Sleep(stay)
			}
			return nil
		case <-supTick:
			now := time.Now()
			if err := m.sup.check(now, m.contact.since(now)); err != nil {
				m.log.Error("stopping postgres and exiting", "err", err)
				m.stopPostgres(fastStop)
				return err
			}
		case <-m.wake:
			if cmd := m.takePending(); cmd != nil {
				m.execute(ctx, *cmd)
			}
		case <-pmDone:
			m.onPostmasterExit()
		case <-tick.C:
			m.checkSelfFence()
			m.maintainSlots(ctx, time.Now())
		case <-tlsTick.C:
			m.reloadIfChanged(ctx)
		case <-m.reloadWake:
			m.reloadRequested(ctx)
		case <-secretTick.C:
			m.applyChangedPasswords(ctx)
			// A bind password rotated in its secret: pg_hba.conf again
			// within a second, as for the roles' passwords.
			if m.hbaSecretsChanged() {
				m.reloadIfChanged(ctx)
			}
			m.reconcileManagedRoles(ctx, time.Now())
			m.reconcileTablespaces(ctx, time.Now())
			m.reconcileDatabases(ctx, time.Now())
			m.revertAlterSystem(ctx)
		}
	}
}

// submit queues cmd; a newer command replaces one not yet started.
func (m *Manager) submit(cmd instanceapi.Command) error {
	m.mu.Lock()
	if cmd.Epoch < m.st.SeenEpoch {
		m.mu.Unlock()
		return fmt.Errorf("%w: command at epoch %d, this instance has seen epoch %d", errStaleEpoch, cmd.Epoch, m.st.SeenEpoch)
	}
	if wait := m.retry.wait(cmd.Kind, time.Now()); wait > 0 {
		err := fmt.Errorf("%w: %s refused for another %s after %d failures in a row (last: %s)",
			errBackingOff, cmd.Kind, wait.Round(100*time.Millisecond), m.retry.failures, m.lastErr)
		m.mu.Unlock()
		return err
	}
	m.pending = &cmd
	m.mu.Unlock()
	// Only an accepted command (current epoch) closes an exchange.
	m.contact.acknowledge(cmd.Ack)
	select {
	case m.wake <- struct{}{}:
	default:
	}
	return nil
}

var errStaleEpoch = errors.New("stale epoch")

var errBackingOff = errors.New("backing off")

// backoff spaces out commands that (re)start PostgreSQL when they keep
// failing: on a full disk, postgres that dies at start, or a pg_rewind or
// pg_basebackup that cannot succeed, the controller asks again at every
// observation (5 times a second locally). The first retry waits 200 ms,
// each failure doubles the wait, up to 15 s; a success resets it. Other
// commands (fence above all) are never delayed.
type backoff struct {
	failures int
	until    time.Time
}

// restarting lists the commands backoff applies to.
var restarting = map[string]bool{
	instanceapi.CommandStart: true, instanceapi.CommandBootstrap: true,
	instanceapi.CommandRejoin: true, instanceapi.CommandRecreate: true,
	// follow starts a stopped replica too.
	instanceapi.CommandFollow: true,
}

// wait is how long a command of this kind must still wait.
func (b *backoff) wait(kind string, now time.Time) time.Duration {
	if !restarting[kind] || now.After(b.until) {
		return 0
	}
	return b.until.Sub(now)
}

// done records a command's result.
func (b *backoff) done(kind string, err error, now time.Time) {
	if !restarting[kind] {
		return
	}
	if err == nil {
		*b = backoff{}
		return
	}
	b.failures++
	d := 200 * time.Millisecond << min(b.failures-1, 7)
	b.until = now.Add(min(d, 15*time.Second))
}

func (m *Manager) takePending() *instanceapi.Command {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.pending
	m.pending = nil
	if c != nil {
		m.busy = c.Kind
	}
	return c
}

func (m *Manager) postmaster() *postmaster {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pm
}

func (m *Manager) setPhase(p string) {
	m.mu.Lock()
	m.phase = p
	m.mu.Unlock()
}

func (m *Manager) setErr(err error) {
	m.mu.Lock()
	if err == nil {
		m.lastErr = ""
	} else {
		m.lastErr = err.Error()
	}
	m.mu.Unlock()
}

func (m *Manager) lastError() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastErr
}
