package instance

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/pgconf"
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
)

// FenceCheckInterval is how often a primary checks that it is still in
// contact with the controller.
const FenceCheckInterval = 100 * time.Millisecond

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
	// selfFence is how long a primary may go without contact before it
	// stops accepting writes; zero disables self-fencing (single instance).
	selfFence time.Duration

	wake chan struct{}

	mu      sync.Mutex
	phase   string
	lastErr string
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
	// manifestMod is the manifest file's modification time when last read.
	manifestMod time.Time
}

// sample is PostgreSQL's part of the status, refreshed in the background so
// that a status request never waits on a busy server: answering quickly is
// what keeps the instance in contact with the controller.
type sample struct {
	gen uint64
	at  time.Time
	st  instanceapi.Status
	err error
}

// NewManager loads the cluster spec the config points at.
func NewManager(cfg *Config, log *slog.Logger) (*Manager, error) {
	fi, err := os.Stat(cfg.ClusterFile)
	if err != nil {
		return nil, fmt.Errorf("reading cluster manifest: %w", err)
	}
	b, err := os.ReadFile(cfg.ClusterFile)
	if err != nil {
		return nil, fmt.Errorf("reading cluster manifest: %w", err)
	}
	c, err := v1.LoadAndValidate(b)
	if err != nil {
		return nil, fmt.Errorf("cluster manifest %s: %w", cfg.ClusterFile, err)
	}
	if c.Spec.Bootstrap == nil || c.Spec.Bootstrap.InitDB == nil {
		return nil, errNoBootstrap
	}
	if err := os.MkdirAll(cfg.ConfDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", cfg.ConfDir, err)
	}
	st, err := loadPersisted(cfg.ConfDir, cfg.Primary)
	if err != nil {
		return nil, err
	}
	m := &Manager{
		cfg: cfg, cluster: c, log: log,
		store:   secrets.DirStore{Root: cfg.SecretsRoot},
		contact: newContactTracker(time.Now()),
		wake:    make(chan struct{}, 1),
		phase:   PhaseWaiting,
		st:      st,
		// The modification time from before the read: a change racing
		// with it is picked up at the next check.
		manifestMod: fi.ModTime(),
	}
	if c.Spec.Instances > 1 {
		m.selfFence = cfg.SelfFence
	}
	return m, nil
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
	go func() { srvDone <- serveStatus(srvCtx, srv) }()
	defer func() {
		stopSrv()
		if err := <-srvDone; err != nil {
			m.log.Error("status server", "err", err)
		}
	}()
	if !hasDataDir(m.cfg.DataDir) {
		_ = os.RemoveAll(stagingDir(m.cfg.DataDir))
	}
	sctx, stopSampler := context.WithCancel(ctx)
	samplerDone := make(chan struct{})
	go func() {
		defer close(samplerDone)
		m.sampler(sctx)
	}()
	m.loop(ctx)
	stopSampler()
	<-samplerDone
	return nil
}

// keepTimeline makes a replica's reported timeline monotonic: a WAL
// receiver's timeline is exact, and a later sample taken while the receiver
// is down (reconnecting to a dead primary, say) must not fall back to an
// older one. A new data directory (clone or rewind) starts afresh.
func (m *Manager) keepTimeline(st *instanceapi.Status) {
	if st.Role != instanceapi.RoleReplica {
		return
	}
	if st.Timeline > m.replicaTLI {
		m.replicaTLI = st.Timeline
	}
	st.Timeline = m.replicaTLI
}

// resetTimeline forgets the reported timeline when the data directory is
// replaced.
func (m *Manager) resetTimeline() {
	m.mu.Lock()
	m.replicaTLI = 0
	m.mu.Unlock()
}

// SampleInterval is how often PostgreSQL's state is read.
const SampleInterval = 100 * time.Millisecond

// staleSample is how old a sample may get before the instance counts as
// not ready: its PostgreSQL is not answering simple queries.
const staleSample = 5 * time.Second

func (m *Manager) sampler(ctx context.Context) {
	tick := time.NewTicker(SampleInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		m.mu.Lock()
		pool, gen := m.pool, m.gen
		m.mu.Unlock()
		if pool == nil {
			continue
		}
		var st instanceapi.Status
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := queryStatus(qctx, pool, &st)
		cancel()
		m.mu.Lock()
		if m.gen == gen {
			if err == nil {
				m.keepTimeline(&st)
				m.sample = sample{gen: gen, at: time.Now(), st: st}
			} else {
				m.sample.err = err
			}
		}
		m.mu.Unlock()
	}
}

// loop runs commands one at a time and watches the postmaster and the
// self-fencing timer.
func (m *Manager) loop(ctx context.Context) {
	tick := time.NewTicker(FenceCheckInterval)
	defer tick.Stop()
	tlsTick := time.NewTicker(TLSCheckInterval)
	defer tlsTick.Stop()
	for {
		var pmDone <-chan struct{}
		if pm := m.postmaster(); pm != nil {
			pmDone = pm.Done()
		}
		select {
		case <-ctx.Done():
			m.stopPostgres(fastStop)
			return
		case <-m.wake:
			if cmd := m.takePending(); cmd != nil {
				m.execute(ctx, *cmd)
			}
		case <-pmDone:
			m.onPostmasterExit()
		case <-tick.C:
			m.checkSelfFence()
		case <-tlsTick.C:
			m.reloadIfChanged(ctx)
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
	m.pending = &cmd
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
	return nil
}

var errStaleEpoch = errors.New("stale epoch")

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

// onPostmasterExit records a crash. Nothing restarts postgres here: the
// controller sees postmasterRunning=false at once and decides.
func (m *Manager) onPostmasterExit() {
	m.mu.Lock()
	pm := m.pm
	m.pm, m.primary = nil, false
	pool := m.pool
	m.pool = nil
	m.phase = PhaseCrashed
	if pm != nil {
		m.lastErr = fmt.Sprintf("postgres exited unexpectedly: %v", pm.ExitErr())
	}
	m.mu.Unlock()
	if pool != nil {
		pool.Close()
	}
	m.log.Warn("postgres exited; waiting for the controller", "err", m.lastError())
}

// checkSelfFence stops a primary that has been out of contact with the
// controller for longer than selfFence: the controller may promote another
// instance after a longer, derived bound (plan.FenceTiming), so the two
// never accept writes at the same time.
func (m *Manager) checkSelfFence() {
	if m.selfFence <= 0 {
		return
	}
	m.mu.Lock()
	primary, fenced := m.pm != nil && m.primary, m.st.Fenced
	m.mu.Unlock()
	if !primary || fenced {
		return
	}
	if away := m.contact.since(time.Now()); away > m.selfFence {
		m.log.Warn("no contact with the controller; fencing (immediate shutdown)", "away", away.Round(time.Millisecond))
		m.fence()
	}
}

// TLSCheckInterval is how often the manager looks for renewed certificates
// and a changed manifest.
const TLSCheckInterval = 10 * time.Second

// reloadIfChanged makes PostgreSQL pick up renewed certificates (it
// re-reads its SSL files on reload; the status port already does per
// connection) and a changed manifest (parameters, pg_hba, pg_ident are
// re-rendered). Parameters that need a restart show as pendingRestart.
func (m *Manager) reloadIfChanged(ctx context.Context) {
	certs, err := m.tls.load()
	if err != nil {
		m.log.Error("TLS material", "err", err)
		return
	}
	spec := m.reloadManifest()
	m.mu.Lock()
	pool, primary := m.pool, m.primary
	m.mu.Unlock()
	if (!certs && !spec) || pool == nil {
		return
	}
	if spec {
		if err := m.renderConfig(primary); err != nil {
			m.log.Error("rendering the changed manifest", "err", err)
			return
		}
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := pool.Exec(rctx, "SELECT pg_reload_conf()"); err != nil {
		m.log.Error("reloading configuration", "err", err)
		return
	}
	m.log.Info("configuration reloaded", "certificates", certs, "manifest", spec)
}

// reloadManifest re-reads the cluster manifest when its file changed and
// adopts it if it is valid and a valid update of the current one. It
// reports whether the spec changed.
func (m *Manager) reloadManifest() bool {
	fi, err := os.Stat(m.cfg.ClusterFile)
	if err != nil || fi.ModTime().Equal(m.manifestMod) {
		return false
	}
	m.manifestMod = fi.ModTime()
	b, err := os.ReadFile(m.cfg.ClusterFile)
	if err != nil {
		m.log.Error("reading the changed manifest", "err", err)
		return false
	}
	c, err := v1.LoadAndValidate(b)
	if err == nil {
		err = v1.ValidateUpdate(m.cluster, c).ToAggregate()
	}
	if err != nil {
		m.log.Error("ignoring an invalid manifest change", "err", err)
		return false
	}
	if reflect.DeepEqual(c.Spec, m.cluster.Spec) {
		return false
	}
	m.cluster = c
	return true
}

// stopKind says how to stop postgres.
type stopKind int

const (
	// fastStop rolls back sessions, sends remaining WAL to the standbys and
	// checkpoints: a clean shutdown.
	fastStop stopKind = iota
	// immediateStop is the quickest way to stop accepting writes.
	immediateStop
)

func (m *Manager) stopPostgres(kind stopKind) {
	m.mu.Lock()
	pm, pool := m.pm, m.pool
	m.pm, m.pool, m.primary = nil, nil, false
	m.phase = PhaseStopping
	m.mu.Unlock()
	if pool != nil {
		pool.Close()
	}
	if pm == nil {
		m.setPhase(PhaseStopped)
		return
	}
	if kind == immediateStop {
		pm.Kill()
	} else {
		pm.Stop(60 * time.Second)
	}
	m.setPhase(PhaseStopped)
	m.log.Info("postgres stopped", "immediate", kind == immediateStop)
}

// startPostgres renders the configuration for the role the data directory
// should run in and starts postgres, returning once it accepts connections.
func (m *Manager) startPostgres(ctx context.Context, primary bool) error {
	if m.postmaster() != nil {
		return nil
	}
	m.setPhase(PhaseStarting)
	if err := m.renderConfig(primary); err != nil {
		return err
	}
	if err := setStandby(m.cfg.DataDir, !primary); err != nil {
		return err
	}
	if err := resetAutoConf(m.cfg.DataDir); err != nil {
		return err
	}
	pm, err := startPostgres(m.cfg.PGBinDir, m.cfg.DataDir, m.confFile(), m.cfg.LogFile)
	if err != nil {
		return err
	}
	conn, err := m.waitConnect(ctx, pm, "postgres")
	if err != nil {
		pm.Stop(10 * time.Second)
		return err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if primary {
		if err := m.reconcileRoles(ctx, conn); err != nil {
			pm.Stop(10 * time.Second)
			return err
		}
	}
	pool, err := newLocalPool(ctx, m.cfg.SocketDir, m.cfg.Port)
	if err != nil {
		pm.Stop(10 * time.Second)
		return err
	}
	var first instanceapi.Status
	if err := queryStatus(ctx, pool, &first); err != nil {
		pool.Close()
		pm.Stop(10 * time.Second)
		return err
	}
	m.mu.Lock()
	m.pm, m.pool, m.primary = pm, pool, primary
	m.phase = PhaseRunning
	m.endLSN = ""
	m.gen++
	m.keepTimeline(&first)
	m.sample = sample{gen: m.gen, at: time.Now(), st: first}
	m.mu.Unlock()
	m.log.Info("postgres is running", "pid", pm.Pid(), "primary", primary)
	return nil
}

// waitConnect connects over the socket once PostgreSQL accepts connections.
func (m *Manager) waitConnect(ctx context.Context, pm *postmaster, dbname string) (*pgx.Conn, error) {
	cc, err := localConnConfig(m.cfg.SocketDir, m.cfg.Port, dbname)
	if err != nil {
		return nil, err
	}
	var lastErr error
	for {
		if !pm.Running() {
			return nil, fmt.Errorf("%w while starting: %w (see %s)", errPostmasterExited, pm.ExitErr(), m.cfg.LogFile)
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.ConnectConfig(cctx, cc)
		cancel()
		if err == nil {
			return conn, nil
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for postgres: %w (last error: %w)", ctx.Err(), lastErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (m *Manager) reconcileRoles(ctx context.Context, conn *pgx.Conn) error {
	cred, err := m.credentials()
	if err != nil {
		return err
	}
	return reconcileRoles(ctx, conn, m.cluster, cred, rand.Reader)
}

func (m *Manager) credentials() (credentials, error) {
	var cred credentials
	app, err := m.store.Get(m.cfg.Secrets.App)
	if err != nil {
		return cred, fmt.Errorf("reading app secret %q: %w", m.cfg.Secrets.App, err)
	}
	cred.appUser, cred.appPassword = string(app["username"]), string(app["password"])
	if cred.appPassword == "" {
		return cred, fmt.Errorf("app secret %q has no password", m.cfg.Secrets.App)
	}
	if m.cfg.Secrets.Superuser != "" {
		su, err := m.store.Get(m.cfg.Secrets.Superuser)
		if err != nil {
			return cred, fmt.Errorf("reading superuser secret %q: %w", m.cfg.Secrets.Superuser, err)
		}
		cred.superPassword = string(su["password"])
		if cred.superPassword == "" {
			return cred, fmt.Errorf("superuser secret %q has no password", m.cfg.Secrets.Superuser)
		}
	}
	return cred, nil
}

// renderConfig writes postgresql.conf, pg_hba.conf and pg_ident.conf into
// ConfDir. They live outside PGDATA: a clone or rewind copies the source's
// files and must not replace this instance's port, paths or conninfo.
func (m *Manager) renderConfig(primary bool) error {
	m.mu.Lock()
	st := m.st
	m.mu.Unlock()
	in := pgconf.Instance{
		Name:            m.cfg.Name,
		ClusterName:     m.cluster.Name,
		Port:            m.cfg.Port,
		ListenAddresses: m.cfg.ListenAddress,
		SocketDir:       m.cfg.SocketDir,
		HBAFile:         filepath.Join(m.cfg.ConfDir, "pg_hba.conf"),
		IdentFile:       filepath.Join(m.cfg.ConfDir, "pg_ident.conf"),
		ServerCertFile:  m.secretFile(m.cfg.Secrets.ServerTLS, "tls.crt"),
		ServerKeyFile:   m.secretFile(m.cfg.Secrets.ServerTLS, "tls.key"),
		ClientCAFile:    m.secretFile(m.cfg.Secrets.ClientCA, "ca.crt"),
		OSUser:          m.cfg.OSUser,
	}
	if primary {
		in.SynchronousStandbyNames = st.SyncStandbys
	} else {
		in.PrimaryConnInfo = m.replicationConnInfo(st.Primary, m.cfg.Name)
	}
	conf, err := pgconf.RenderPostgresConf(m.cluster, in)
	if err != nil {
		return fmt.Errorf("rendering postgresql.conf: %w", err)
	}
	hba, err := pgconf.RenderHBA(m.cluster, m.cfg.OSUser)
	if err != nil {
		return fmt.Errorf("rendering pg_hba.conf: %w", err)
	}
	ident, err := pgconf.RenderIdent(m.cluster, m.cfg.OSUser)
	if err != nil {
		return fmt.Errorf("rendering pg_ident.conf: %w", err)
	}
	for name, data := range map[string][]byte{"postgresql.conf": conf, "pg_hba.conf": hba, "pg_ident.conf": ident} {
		if err := WriteFileAtomic(filepath.Join(m.cfg.ConfDir, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func (m *Manager) confFile() string { return filepath.Join(m.cfg.ConfDir, "postgresql.conf") }

func (m *Manager) secretFile(secret, key string) string {
	return filepath.Join(m.cfg.SecretsRoot, secret, key)
}

// replicationConnInfo is how this instance reaches primary: TLS with full
// verification of the primary's certificate, and streaming_replica's client
// certificate instead of a password.
func (m *Manager) replicationConnInfo(primary Endpoint, appName string) string {
	kv := []string{
		"host=" + quoteConnValue(primary.Host),
		fmt.Sprintf("port=%d", primary.Port),
		"user=" + replicationRole,
		"dbname=postgres",
		"sslmode=verify-full",
		"sslrootcert=" + quoteConnValue(m.secretFile(m.cfg.Secrets.ServerCA, "ca.crt")),
		"sslcert=" + quoteConnValue(m.secretFile(m.cfg.Secrets.Replication, "tls.crt")),
		"sslkey=" + quoteConnValue(m.secretFile(m.cfg.Secrets.Replication, "tls.key")),
		"ssl_min_protocol_version=TLSv1.3",
		"connect_timeout=2",
	}
	if appName != "" {
		kv = append(kv, "application_name="+quoteConnValue(appName))
	}
	return strings.Join(kv, " ")
}

// quoteConnValue quotes a libpq keyword/value conninfo value.
func quoteConnValue(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(v) + "'"
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

// Ready reports whether PostgreSQL accepts connections.
func (m *Manager) Ready() bool {
	m.mu.Lock()
	pool, pm := m.pool, m.pm
	m.mu.Unlock()
	if pool == nil || pm == nil || !pm.Running() {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return pool.Ping(ctx) == nil
}

// Status reports the instance's state without waiting on PostgreSQL: its
// part comes from the latest background sample (at most SampleInterval
// plus one query old). requestID identifies the answer for the contact
// protocol.
func (m *Manager) Status(requestID uint64) instanceapi.Status {
	m.mu.Lock()
	st := instanceapi.Status{
		Name:      m.cfg.Name,
		Role:      instanceapi.RoleUnknown,
		Phase:     m.phase,
		Error:     m.lastErr,
		Busy:      m.busy,
		Host:      m.cfg.Host,
		Port:      m.cfg.Port,
		SocketDir: m.cfg.SocketDir,
		Epoch:     m.st.Epoch,
		Fenced:    m.st.Fenced,
		RequestID: requestID,
	}
	pool, pm, primary, endLSN, follow := m.pool, m.pm, m.primary, m.endLSN, m.st.Primary
	if primary {
		st.SyncStandbyNames = m.st.SyncStandbys
	}
	smp, gen := m.sample, m.gen
	m.mu.Unlock()
	st.ObservedAt = time.Now().UTC()
	st.PostmasterRunning = pm != nil && pm.Running()
	st.Empty = !hasDataDir(m.cfg.DataDir)
	if !st.PostmasterRunning || pool == nil {
		if !st.Empty {
			st.Role = instanceapi.RolePrimary
			if isStandby(m.cfg.DataDir) {
				st.Role = instanceapi.RoleReplica
			}
			st.CurrentLSN = endLSN
		}
		return st
	}
	if smp.gen != gen {
		return st
	}
	st.Role, st.Ready, st.PGVersion, st.SystemID = smp.st.Role, smp.st.Ready, smp.st.PGVersion, smp.st.SystemID
	st.Timeline, st.PendingRestart = smp.st.Timeline, smp.st.PendingRestart
	st.CurrentLSN, st.ReceivedLSN, st.ReplayedLSN = smp.st.CurrentLSN, smp.st.ReceivedLSN, smp.st.ReplayedLSN
	st.WALReceiver, st.Replication = smp.st.WALReceiver, smp.st.Replication
	if age := time.Since(smp.at); age > staleSample {
		st.Ready = false
		st.Error = fmt.Sprintf("PostgreSQL has not answered a status query for %s: %v", age.Round(time.Second), smp.err)
	}
	if st.WALReceiver != nil && st.WALReceiver.Status == "streaming" && st.WALReceiver.SenderPort == follow.Port {
		st.StreamingFrom = follow.Name
	}
	return st
}
