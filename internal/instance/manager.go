package instance

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
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
	PhaseStarting   = "starting"
	PhaseInitDB     = "initdb"
	PhaseBaseBackup = "basebackup"
	PhaseRunning    = "running"
	PhaseRestarting = "restarting"
	PhaseStopping   = "stopping"
)

// Manager owns one PostgreSQL instance.
type Manager struct {
	cfg     *Config
	cluster *v1.Cluster
	store   secrets.Store
	log     *slog.Logger

	mu      sync.Mutex
	phase   string
	lastErr string
	pm      *postmaster
	pool    *pgxpool.Pool
}

// NewManager loads the cluster spec the config points at.
func NewManager(cfg *Config, log *slog.Logger) (*Manager, error) {
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
	return &Manager{
		cfg: cfg, cluster: c, log: log,
		store: secrets.DirStore{Root: cfg.SecretsRoot},
		phase: PhaseStarting,
	}, nil
}

// Run brings the instance up and supervises it until ctx ends, then shuts
// PostgreSQL down cleanly.
func (m *Manager) Run(ctx context.Context) error {
	for _, d := range []string{m.cfg.ConfDir, m.cfg.SocketDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("creating %s: %w", d, err)
		}
	}
	clientCA, err := m.caPool(m.cfg.Secrets.ClientCA)
	if err != nil {
		return err
	}
	srv := newStatusServer(m.cfg.StatusAddress,
		m.secretFile(m.cfg.Secrets.ServerTLS, "tls.crt"), m.secretFile(m.cfg.Secrets.ServerTLS, "tls.key"),
		clientCA, m)
	srvCtx, stopSrv := context.WithCancel(context.Background())
	srvDone := make(chan error, 1)
	go func() { srvDone <- serveStatus(srvCtx, srv) }()
	defer func() {
		stopSrv()
		if err := <-srvDone; err != nil {
			m.log.Error("status server", "err", err)
		}
	}()

	if err := m.ensureDataDir(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	return m.supervise(ctx)
}

// supervise keeps postgres running. restart_after_crash is off in the
// rendered config, so a crash comes back here and the restart is ours to
// decide (and to report), not PostgreSQL's.
func (m *Manager) supervise(ctx context.Context) error {
	backoff := time.Second
	for {
		pm, err := m.startAndConfigure(ctx)
		if err != nil {
			m.setErr(err)
			m.log.Error("starting postgres", "err", err)
		}
		if pm != nil {
			select {
			case <-ctx.Done():
				m.shutdown(pm)
				return nil
			case <-pm.Done():
				m.log.Warn("postgres exited", "err", pm.ExitErr())
				m.setErr(fmt.Errorf("postgres exited: %w", pm.ExitErr()))
				m.closePool()
			}
		}
		m.setPhase(PhaseRestarting)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

func (m *Manager) shutdown(pm *postmaster) {
	m.setPhase(PhaseStopping)
	m.closePool()
	pm.Stop(30 * time.Second)
	m.log.Info("postgres stopped")
}

// ensureDataDir creates PGDATA when it does not exist yet: initdb on the
// primary, a clone of the primary on a replica.
func (m *Manager) ensureDataDir(ctx context.Context) error {
	if hasDataDir(m.cfg.DataDir) {
		return nil
	}
	staging := stagingDir(m.cfg.DataDir)
	if m.cfg.IsPrimary() {
		m.setPhase(PhaseInitDB)
		m.log.Info("initialising a new cluster", "dir", m.cfg.DataDir)
		if err := m.bootstrapPrimary(ctx, staging); err != nil {
			m.setErr(err)
			return err
		}
		return promoteStaging(staging, m.cfg.DataDir)
	}
	m.setPhase(PhaseBaseBackup)
	for attempt := 1; ; attempt++ {
		m.log.Info("cloning the primary", "primary", m.cfg.Primary.Name, "attempt", attempt)
		err := basebackup(ctx, m.cfg.PGBinDir, staging, m.replicationConnInfo(""))
		if err == nil {
			break
		}
		m.setErr(err)
		m.log.Warn("pg_basebackup failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	return promoteStaging(staging, m.cfg.DataDir)
}

// bootstrapPrimary runs initdb in staging, then starts PostgreSQL there once
// to create roles and the application database and run the post-init SQL.
// Only a fully bootstrapped directory is moved into place.
func (m *Manager) bootstrapPrimary(ctx context.Context, staging string) error {
	init := m.cluster.Spec.Bootstrap.InitDB
	if err := initdb(ctx, m.cfg.PGBinDir, staging, init); err != nil {
		return err
	}
	if err := m.renderConfig(); err != nil {
		return err
	}
	pm, err := startPostgres(m.cfg.PGBinDir, staging, m.confFile(), m.cfg.LogFile)
	if err != nil {
		return err
	}
	defer pm.Stop(30 * time.Second)
	conn, err := m.waitConnect(ctx, pm, "postgres")
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if err := m.reconcileRoles(ctx, conn); err != nil {
		return err
	}
	if err := runPostInit(ctx, conn, init.PostInitSQL, "spec.bootstrap.initdb.postInitSQL"); err != nil {
		return err
	}
	appConn, err := m.waitConnect(ctx, pm, init.Database)
	if err != nil {
		return err
	}
	defer func() { _ = appConn.Close(context.Background()) }()
	return runPostInit(ctx, appConn, init.PostInitApplicationSQL, "spec.bootstrap.initdb.postInitApplicationSQL")
}

// startAndConfigure renders the configuration, starts postgres and, on a
// primary, reconciles roles.
func (m *Manager) startAndConfigure(ctx context.Context) (*postmaster, error) {
	if err := m.renderConfig(); err != nil {
		return nil, err
	}
	if err := setStandby(m.cfg.DataDir, !m.cfg.IsPrimary()); err != nil {
		return nil, err
	}
	if err := resetAutoConf(m.cfg.DataDir); err != nil {
		return nil, err
	}
	pm, err := startPostgres(m.cfg.PGBinDir, m.cfg.DataDir, m.confFile(), m.cfg.LogFile)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.pm = pm
	m.mu.Unlock()
	conn, err := m.waitConnect(ctx, pm, "postgres")
	if err != nil {
		return pm, err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if m.cfg.IsPrimary() {
		if err := m.reconcileRoles(ctx, conn); err != nil {
			return pm, err
		}
	}
	pool, err := newLocalPool(ctx, m.cfg.SocketDir, m.cfg.Port)
	if err != nil {
		return pm, err
	}
	m.mu.Lock()
	m.pool = pool
	m.phase = PhaseRunning
	m.lastErr = ""
	m.mu.Unlock()
	m.log.Info("postgres is running", "pid", pm.Pid(), "primary", m.cfg.IsPrimary())
	return pm, nil
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
		case <-time.After(100 * time.Millisecond):
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
func (m *Manager) renderConfig() error {
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
	if !m.cfg.IsPrimary() {
		in.PrimaryConnInfo = m.replicationConnInfo(m.cfg.Name)
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

// replicationConnInfo is how this instance reaches the primary: TLS with
// full verification of the primary's certificate, and streaming_replica's
// client certificate instead of a password.
func (m *Manager) replicationConnInfo(appName string) string {
	kv := []string{
		"host=" + quoteConnValue(m.cfg.Primary.Host),
		fmt.Sprintf("port=%d", m.cfg.Primary.Port),
		"user=" + replicationRole,
		"dbname=postgres",
		"sslmode=verify-full",
		"sslrootcert=" + quoteConnValue(m.secretFile(m.cfg.Secrets.ServerCA, "ca.crt")),
		"sslcert=" + quoteConnValue(m.secretFile(m.cfg.Secrets.Replication, "tls.crt")),
		"sslkey=" + quoteConnValue(m.secretFile(m.cfg.Secrets.Replication, "tls.key")),
		"ssl_min_protocol_version=TLSv1.3",
		"connect_timeout=5",
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

func (m *Manager) caPool(secret string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(m.secretFile(secret, "ca.crt"))
	if err != nil {
		return nil, fmt.Errorf("reading CA %q: %w", secret, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA secret %q holds no PEM certificate", secret)
	}
	return pool, nil
}

func (m *Manager) setPhase(p string) {
	m.mu.Lock()
	m.phase = p
	m.mu.Unlock()
}

func (m *Manager) setErr(err error) {
	m.mu.Lock()
	m.lastErr = err.Error()
	m.mu.Unlock()
}

func (m *Manager) closePool() {
	m.mu.Lock()
	p := m.pool
	m.pool = nil
	m.mu.Unlock()
	if p != nil {
		p.Close()
	}
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

// Status reports the instance's state; PostgreSQL's part comes from live
// queries, so it is never older than the request.
func (m *Manager) Status(ctx context.Context) instanceapi.Status {
	m.mu.Lock()
	st := instanceapi.Status{
		Name:      m.cfg.Name,
		Role:      instanceapi.RoleUnknown,
		Phase:     m.phase,
		Error:     m.lastErr,
		Host:      m.cfg.Host,
		Port:      m.cfg.Port,
		SocketDir: m.cfg.SocketDir,
	}
	pool, pm := m.pool, m.pm
	m.mu.Unlock()
	st.ObservedAt = time.Now().UTC()
	st.PostmasterRunning = pm != nil && pm.Running()
	if pool == nil || !st.PostmasterRunning {
		return st
	}
	if err := queryStatus(ctx, pool, &st); err != nil {
		st.Ready = false
		if st.Error == "" || errors.Is(err, context.DeadlineExceeded) {
			st.Error = err.Error()
		}
	}
	return st
}
