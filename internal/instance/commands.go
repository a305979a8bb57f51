package instance

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/safetext"
)

// Observe answers a status request; ack acknowledges an earlier answer
// (see contactTracker).
func (m *Manager) Observe(ack uint64) instanceapi.Status {
	id := m.contact.receive(time.Now(), ack)
	m.trace("status request", "ack", ack, "answer", id)
	return m.Status(id)
}

// Peek is the status without counting as contact: a watch waits on it,
// and only a completed status exchange may keep a primary writing.
func (m *Manager) Peek() instanceapi.Status { return m.Status(0) }

// Submit validates a command and queues it for the manager's loop.
func (m *Manager) Submit(cmd instanceapi.Command) error {
	switch cmd.Kind {
	case instanceapi.CommandFollow, instanceapi.CommandRejoin, instanceapi.CommandRecreate:
		if cmd.Primary == nil || cmd.Primary.Name == "" || cmd.Primary.Host == "" || cmd.Primary.Port <= 0 || cmd.Primary.Port > 65535 {
			return fmt.Errorf("%s needs a primary endpoint", cmd.Kind)
		}
		if cmd.Primary.Name == m.cfg.Name {
			return fmt.Errorf("%s: an instance cannot follow itself", cmd.Kind)
		}
	case instanceapi.CommandBootstrap, instanceapi.CommandPromote:
		if cmd.Epoch == 0 {
			return fmt.Errorf("%s needs an epoch", cmd.Kind)
		}
	case instanceapi.CommandFence, instanceapi.CommandStart, instanceapi.CommandDemote, instanceapi.CommandSetSyncStandbys, instanceapi.CommandRestart:
	default:
		return fmt.Errorf("unknown command %q", cmd.Kind)
	}
	// The value goes into synchronous_standby_names: the same class of
	// characters as every other rendered value is refused.
	if err := safetext.Check(cmd.SyncStandbys); err != nil {
		return fmt.Errorf("syncStandbys %w", err)
	}
	m.debug("command received", "kind", cmd.Kind, "epoch", cmd.Epoch, "primary", endpointName(cmd.Primary))
	return m.submit(cmd)
}

// execute runs one command to its end state. Every command is idempotent.
func (m *Manager) execute(ctx context.Context, cmd instanceapi.Command) {
	start := time.Now()
	m.log.Info("command", "kind", cmd.Kind, "epoch", cmd.Epoch, "primary", endpointName(cmd.Primary))
	err := m.noteEpoch(cmd.Epoch)
	if err == nil {
		err = m.run(ctx, cmd)
	}
	m.mu.Lock()
	m.busy = ""
	m.retry.done(cmd.Kind, err, time.Now())
	m.mu.Unlock()
	if err != nil {
		m.setErr(fmt.Errorf("%s: %w", cmd.Kind, err))
		m.log.Error("command failed", "kind", cmd.Kind, "err", err)
		return
	}
	m.setErr(nil)
	m.debug("command done", "kind", cmd.Kind, "epoch", cmd.Epoch, "took", time.Since(start).Round(time.Millisecond))
}

func (m *Manager) run(ctx context.Context, cmd instanceapi.Command) error {
	switch cmd.Kind {
	case instanceapi.CommandBootstrap:
		return m.doBootstrap(ctx, cmd)
	case instanceapi.CommandPromote:
		return m.doPromote(ctx, cmd)
	case instanceapi.CommandFollow:
		return m.doFollow(ctx, *cmd.Primary)
	case instanceapi.CommandFence:
		m.fence()
		return nil
	case instanceapi.CommandStart:
		return m.doStart(ctx)
	case instanceapi.CommandDemote:
		return m.doDemote()
	case instanceapi.CommandRejoin:
		return m.doRejoin(ctx, *cmd.Primary)
	case instanceapi.CommandRecreate:
		return m.doRecreate(ctx, *cmd.Primary)
	case instanceapi.CommandSetSyncStandbys:
		return m.doSetSync(ctx, cmd.SyncStandbys)
	case instanceapi.CommandRestart:
		return m.doRestart(ctx)
	}
	return fmt.Errorf("unknown command %q", cmd.Kind)
}

// update changes the persisted state and saves it before anything acts on
// it, so a restart resumes from what was decided.
func (m *Manager) update(f func(*persisted)) error {
	m.mu.Lock()
	st := m.st
	f(&st)
	m.st = st
	m.mu.Unlock()
	return st.save(m.cfg.ConfDir)
}

func (m *Manager) noteEpoch(epoch uint64) error {
	m.mu.Lock()
	seen := m.st.SeenEpoch
	m.mu.Unlock()
	if epoch < seen {
		return fmt.Errorf("%w: command at epoch %d, this instance has seen %d", errStaleEpoch, epoch, seen)
	}
	if epoch == seen {
		return nil
	}
	return m.update(func(p *persisted) { p.SeenEpoch = epoch })
}

func (m *Manager) self() Endpoint {
	return Endpoint{Name: m.cfg.Name, Host: m.cfg.Host, Port: m.cfg.Port}
}

// doBootstrap creates the cluster (initdb) and starts it as the primary.
func (m *Manager) doBootstrap(ctx context.Context, cmd instanceapi.Command) error {
	if hasDataDir(m.cfg.DataDir) {
		m.mu.Lock()
		epoch := m.st.Epoch
		m.mu.Unlock()
		if epoch != cmd.Epoch {
			return fmt.Errorf("refusing to bootstrap over existing data (epoch %d)", epoch)
		}
		return m.doStart(ctx)
	}
	m.setPhase(PhaseInitDB)
	staging := stagingDir(m.cfg.DataDir)
	// The bootstrap SQL runs without synchronous standbys (there are none
	// yet); the requested ones apply from the first real start.
	if err := m.update(func(p *persisted) {
		p.Primary, p.Fenced, p.SyncStandbys, p.Designated = m.self(), false, "", cmd.Designated
	}); err != nil {
		return err
	}
	bootstrap := m.bootstrapPrimary
	switch {
	case cmd.Designated:
		bootstrap = m.bootstrapReplicaHead
	case m.cluster.Spec.SnapshotDataSource() != nil:
		// The restored data waits where prepareSnapshotImport put it:
		// not in staging, which a start clears.
		bootstrap, staging = m.bootstrapSnapshot, snapshotDir(m.cfg.DataDir)
	case m.cluster.Spec.Bootstrap.Recovery != nil:
		bootstrap = m.bootstrapRecovery
	case m.cluster.Spec.Bootstrap.PgBaseBackup != nil:
		bootstrap = m.bootstrapClone
	}
	if err := bootstrap(ctx, staging); err != nil {
		return err
	}
	if err := promoteStaging(staging, m.cfg.DataDir); err != nil {
		return err
	}
	if err := m.update(func(p *persisted) { p.Epoch, p.SyncStandbys = cmd.Epoch, cmd.SyncStandbys }); err != nil {
		return err
	}
	return m.startPostgres(ctx, !cmd.Designated)
}

// bootstrapPrimary runs initdb in staging, then starts PostgreSQL there once
// (socket only, no synchronous standbys) to create roles and the application
// database and run the post-init SQL. Only a fully bootstrapped directory is
// moved into place.
func (m *Manager) bootstrapPrimary(ctx context.Context, staging string) error {
	init := m.cluster.Spec.Bootstrap.InitDB
	refs, err := m.resolvedSQL()
	if err != nil {
		return err
	}
	// A new cluster has no tablespace yet: what a failed attempt or an
	// earlier data directory left would make CREATE TABLESPACE fail.
	if err := emptyTablespaceDirs(m.tablespaceDirs()); err != nil {
		return err
	}
	if err := initdb(ctx, m.cfg.PGBinDir, staging, m.cfg.WalDir, init); err != nil {
		return err
	}
	// The stanza comes first: the bootstrap's own WAL is archived.
	if err := m.createStanza(ctx, staging); err != nil {
		return err
	}
	m.pgdata = staging
	defer func() { m.pgdata = "" }()
	if err := m.renderConfig(true); err != nil {
		return err
	}
	pm, err := startPostgres(m.cfg.PGBinDir, staging, m.confFile(), m.cfg.LogFile)
	if err != nil {
		return err
	}
	defer pm.Stop(30 * time.Second)
	// Before the application database is made from template1 (which
	// must then have no session).
	if len(init.PostInitTemplateSQL) > 0 || len(refs.PostInitTemplateSQL) > 0 {
		tconn, err := m.waitConnect(ctx, pm, "template1")
		if err != nil {
			return err
		}
		err = runPostInit(ctx, tconn, init.PostInitTemplateSQL, "spec.bootstrap.initdb.postInitTemplateSQL")
		if err == nil {
			err = runPostInit(ctx, tconn, refs.PostInitTemplateSQL, "spec.bootstrap.initdb.postInitTemplateSQLRefs")
		}
		_ = tconn.Close(context.Background())
		if err != nil {
			return err
		}
	}
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
	if err := runPostInit(ctx, conn, refs.PostInitSQL, "spec.bootstrap.initdb.postInitSQLRefs"); err != nil {
		return err
	}
	appConn, err := m.waitConnect(ctx, pm, init.Database)
	if err != nil {
		return err
	}
	defer func() { _ = appConn.Close(context.Background()) }()
	if err := runPostInit(ctx, appConn, init.PostInitApplicationSQL, "spec.bootstrap.initdb.postInitApplicationSQL"); err != nil {
		return err
	}
	if err := runPostInit(ctx, appConn, refs.PostInitApplicationSQL, "spec.bootstrap.initdb.postInitApplicationSQLRefs"); err != nil {
		return err
	}
	if init.Import == nil {
		return nil
	}
	return m.importDatabases(ctx, conn, appConn)
}

// doPromote makes this replica the primary at cmd.Epoch. The synchronous
// standbys are configured before the promotion so that no write is
// acknowledged on the new timeline without them.
func (m *Manager) doPromote(ctx context.Context, cmd instanceapi.Command) error {
	if cmd.Designated {
		return m.designate(ctx, cmd)
	}
	m.mu.Lock()
	pm, primary, pool := m.pm, m.primary, m.pool
	m.mu.Unlock()
	if pm != nil && primary {
		if err := m.update(func(p *persisted) {
			if cmd.Epoch > p.Epoch {
				p.Epoch = cmd.Epoch
			}
		}); err != nil {
			return err
		}
		return m.doSetSync(ctx, cmd.SyncStandbys)
	}
	if pm == nil || pool == nil {
		return errors.New("cannot promote: postgres is not running as a replica")
	}
	if err := m.update(func(p *persisted) {
		p.Epoch, p.Primary, p.Fenced, p.SyncStandbys, p.Designated = cmd.Epoch, m.self(), false, cmd.SyncStandbys, false
	}); err != nil {
		return err
	}
	if err := m.renderConfig(true); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		return fmt.Errorf("reloading before promotion: %w", err)
	}
	var ok bool
	if err := pool.QueryRow(ctx, "SELECT pg_promote(true, 60)").Scan(&ok); err != nil {
		return fmt.Errorf("promoting: %w", err)
	}
	if !ok {
		return errors.New("pg_promote did not complete within 60s")
	}
	m.mu.Lock()
	m.primary = true
	m.mu.Unlock()
	m.log.Info("promoted", "epoch", cmd.Epoch)
	m.forgetSource()
	if err := m.update(func(p *persisted) { p.PromotedAt = time.Now().UTC() }); err != nil {
		m.log.Warn("recording the promotion's time", "err", err)
	}
	// A checkpoint moves pg_control to the new timeline, which pg_rewind
	// reads when the old primary rejoins (otherwise it finds no divergence).
	go func() {
		// Detached on purpose: the checkpoint must finish even though the
		// command that asked for it has returned.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if _, err := pool.Exec(cctx, "CHECKPOINT"); err != nil {
			m.log.Warn("checkpoint after promotion", "err", err)
		}
	}()
	return nil
}

// doFollow makes this instance a replica streaming from primary.
func (m *Manager) doFollow(ctx context.Context, primary Endpoint) error {
	if !hasDataDir(m.cfg.DataDir) {
		return errors.New("no data directory: needs recreate")
	}
	m.mu.Lock()
	pm, isPrimary, pool, old := m.pm, m.primary, m.pool, m.st.Primary
	m.mu.Unlock()
	if pm != nil && isPrimary {
		return errors.New("running as a primary: needs rejoin")
	}
	if pm == nil && !isStandby(m.cfg.DataDir) {
		return errors.New("the data directory is a primary's: needs rejoin")
	}
	if err := m.update(func(p *persisted) { p.Primary, p.Fenced, p.Designated = primary, false, false }); err != nil {
		return err
	}
	m.forgetSource()
	if pm == nil {
		return m.startPostgres(ctx, false)
	}
	if old == primary {
		return nil
	}
	if err := m.renderConfig(false); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		return fmt.Errorf("reloading primary_conninfo: %w", err)
	}
	m.log.Info("following", "primary", primary.Name)
	return nil
}

// fence stops accepting writes by the quickest means and stays down.
func (m *Manager) fence() {
	if err := m.update(func(p *persisted) { p.Fenced = true }); err != nil {
		m.log.Error("persisting fence", "err", err)
	}
	m.stopPostgres(immediateStop)
	m.setPhase(PhaseFenced)
}

// doStart unfences and starts postgres in its data directory's role.
func (m *Manager) doStart(ctx context.Context) error {
	if !hasDataDir(m.cfg.DataDir) {
		return errors.New("no data directory")
	}
	if err := m.update(func(p *persisted) { p.Fenced = false }); err != nil {
		return err
	}
	return m.startPostgres(ctx, !isStandby(m.cfg.DataDir))
}

// doDemote shuts a primary down cleanly, which sends the rest of its WAL to
// the connected standbys, and keeps it fenced; a replica (the user's
// fencing or hibernation) is shut down cleanly and kept fenced too.
func (m *Manager) doDemote() error {
	m.checkpointBeforeShutdown()
	if err := m.update(func(p *persisted) { p.Fenced = true }); err != nil {
		return err
	}
	m.stopPostgres(demoteStop)
	if isStandby(m.cfg.DataDir) {
		// A replica fenced or hibernated on request: pg_controldata says
		// "shut down in recovery", and it has no WAL of its own to report.
		m.setPhase(PhaseFenced)
		return nil
	}
	end, err := shutdownEndLSN(context.Background(), m.cfg.PGBinDir, m.cfg.DataDir)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.endLSN = end
	m.phase = PhaseFenced
	m.mu.Unlock()
	return nil
}

// preShutdownCheckpoint bounds the checkpoint before a primary's clean
// shutdown; a switchover's own timeout (30 s by default) counts from the
// same command.
const preShutdownCheckpointTimeout = 10 * time.Second

// checkpointBeforeShutdown runs a CHECKPOINT on a running primary while it
// still accepts writes. The clean shutdown that follows writes everything
// still dirty in its own checkpoint while nothing can be written, and a
// switchover's window starts there: after this one, only what changed in
// the meantime is left for it. A failure only leaves the work to the
// shutdown checkpoint.
func (m *Manager) checkpointBeforeShutdown() {
	m.mu.Lock()
	pool, primary := m.pool, m.primary
	m.mu.Unlock()
	if pool == nil || !primary {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), preShutdownCheckpointTimeout)
	defer cancel()
	start := time.Now()
	if _, err := pool.Exec(ctx, "CHECKPOINT"); err != nil {
		m.log.Warn("checkpoint before shutdown", "err", err)
		return
	}
	m.log.Info("checkpoint before shutdown", "took", time.Since(start).Round(time.Millisecond).String())
}

// doRejoin turns a former primary into a replica of primary: pg_rewind
// after a CHECKPOINT on the new primary, or a fresh clone if that fails.
func (m *Manager) doRejoin(ctx context.Context, primary Endpoint) error {
	m.stopPostgres(fastStop)
	if err := m.update(func(p *persisted) { p.Primary, p.Designated = primary, false }); err != nil {
		return err
	}
	m.forgetSource()
	if hasDataDir(m.cfg.DataDir) {
		m.setPhase(PhaseRewind)
		err := m.rewind(ctx, primary)
		if errors.Is(err, errPrimaryUnreachable) {
			// Nothing was rewound: the new primary did not answer (on
			// Kubernetes, -rw may not lead to it yet, seconds after a
			// switchover). A clone could not reach it either, and would
			// copy the whole database instead of the few changed blocks
			// once it can: the planner asks again.
			m.setPhase(PhaseStopped)
			return err
		}
		if err == nil {
			m.resetTimeline()
			if err := setStandby(m.cfg.DataDir, true); err != nil {
				return err
			}
			if err := m.update(func(p *persisted) { p.Fenced = false }); err != nil {
				return err
			}
			return m.startPostgres(ctx, false)
		}
		m.log.Warn("pg_rewind failed; cloning afresh", "err", err)
	}
	return m.doRecreate(ctx, primary)
}

// errPrimaryUnreachable is a rejoin that could not connect to the new
// primary: retried, not a reason to clone.
var errPrimaryUnreachable = errors.New("the new primary is not reachable yet")

func (m *Manager) rewind(ctx context.Context, primary Endpoint) error {
	if err := m.checkpointOn(ctx, primary); err != nil {
		return err
	}
	// Its tablespace links may resolve through /proc/self/cwd (see
	// rewindDir).
	dir, err := rewindDir(m.cfg)
	if err != nil {
		return err
	}
	return runToolIn(ctx, dir, m.cfg.PGBinDir, "pg_rewind", nil,
		"--target-pgdata", m.cfg.DataDir,
		"--source-server", m.replicationConnInfo(primary, ""),
		"--config-file", m.confFile())
}

// checkpointOn runs CHECKPOINT on the new primary as streaming_replica
// (pg_checkpoint), so its pg_control shows the new timeline to pg_rewind.
func (m *Manager) checkpointOn(ctx context.Context, primary Endpoint) error {
	cfg, err := pgx.ParseConfig(m.replicationConnInfo(primary, ""))
	if err != nil {
		return fmt.Errorf("conninfo for %s: %w", primary.Name, err)
	}
	// libpq's ssl_min_protocol_version is a connection option; pgx would
	// send it to the server as a setting, which the server refuses.
	delete(cfg.RuntimeParams, "ssl_min_protocol_version")
	if cfg.TLSConfig == nil {
		return errors.New("replication conninfo without TLS")
	}
	cfg.TLSConfig.MinVersion = tls.VersionTLS13
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return fmt.Errorf("%w: connecting to %s for CHECKPOINT: %w", errPrimaryUnreachable, primary.Name, err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if _, err := conn.Exec(cctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("CHECKPOINT on %s: %w", primary.Name, err)
	}
	return nil
}

// doRecreate replaces the data directory with a fresh clone of primary.
func (m *Manager) doRecreate(ctx context.Context, primary Endpoint) error {
	m.stopPostgres(fastStop)
	if err := m.update(func(p *persisted) { p.Primary, p.Designated = primary, false }); err != nil {
		return err
	}
	m.forgetSource()
	m.setPhase(PhaseBaseBackup)
	staging := stagingDir(m.cfg.DataDir)
	if err := basebackup(ctx, m.cfg.PGBinDir, staging, m.cfg.WalDir, m.replicationConnInfo(primary, ""), m.tablespacePaths()); err != nil {
		return err
	}
	if err := os.RemoveAll(m.cfg.DataDir); err != nil {
		return fmt.Errorf("removing the old data directory: %w", err)
	}
	m.resetTimeline()
	if err := promoteStaging(staging, m.cfg.DataDir); err != nil {
		return err
	}
	if err := m.update(func(p *persisted) { p.Fenced = false }); err != nil {
		return err
	}
	return m.startPostgres(ctx, false)
}

// doSetSync changes synchronous_standby_names on a running primary.
func (m *Manager) doSetSync(ctx context.Context, names string) error {
	m.mu.Lock()
	same := m.st.SyncStandbys == names
	pool, primary := m.pool, m.primary
	m.mu.Unlock()
	if err := m.update(func(p *persisted) { p.SyncStandbys = names }); err != nil {
		return err
	}
	if same || pool == nil || !primary {
		return nil
	}
	if err := m.renderConfig(true); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		return fmt.Errorf("reloading synchronous_standby_names: %w", err)
	}
	m.log.Info("synchronous standbys", "names", names)
	return nil
}

func endpointName(e *instanceapi.Endpoint) string {
	if e == nil {
		return ""
	}
	return e.Name
}

// doRestart restarts postgres in the role it runs in, so that settings
// needing a restart take effect. A fenced or stopped instance is left as
// it is: the restart is for a running one.
func (m *Manager) doRestart(ctx context.Context) error {
	m.mu.Lock()
	running, primary, fenced := m.pm != nil, m.primary, m.st.Fenced
	m.mu.Unlock()
	if !running || fenced {
		return nil
	}
	m.log.Info("restarting postgres to apply settings that need a restart", "primary", primary)
	m.stopPostgres(fastStop)
	return m.startPostgres(ctx, primary)
}
