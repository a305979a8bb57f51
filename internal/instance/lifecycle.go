package instance

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgward/pgward/internal/instanceapi"
)

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
		m.lastErr = "postgres exited unexpectedly: " + pm.exitReason(m.cfg.DataDir)
	}
	m.mu.Unlock()
	if pool != nil {
		pool.Close()
	}
	m.log.Warn("postgres exited; waiting for the controller", "err", m.lastError())
}

// stopKind says how to stop postgres.
type stopKind int

const (
	// fastStop rolls back sessions, sends remaining WAL to the standbys and
	// checkpoints: a clean shutdown.
	fastStop stopKind = iota
	// immediateStop is the quickest way to stop accepting writes.
	immediateStop
	// demoteStop is fastStop within spec.switchoverDelay when set, then
	// an immediate shutdown (demotePlan).
	demoteStop
)

func (m *Manager) stopPostgres(kind stopKind) {
	m.mu.Lock()
	pm, pool := m.pm, m.pool
	m.pm, m.pool, m.primary = nil, nil, false
	m.phase = PhaseStopping
	m.mu.Unlock()
	var w *stopWatch
	if pm != nil && kind != immediateStop {
		// A fast shutdown past its checkpoint may only be waiting for
		// the archiver, retrying a store that does not answer (cutArchiver):
		// a switchover, a fence or a restart does not wait on it either.
		w = &stopWatch{probe: m.stopProbe(pm), grace: m.archiverGrace(pool), every: 200 * time.Millisecond}
	}
	if pool != nil {
		pool.Close()
	}
	if pm == nil {
		m.setPhase(PhaseStopped)
		return
	}
	switch kind {
	case immediateStop:
		// Self-fencing: nothing but the kill, read nothing first.
		pm.Kill()
	case demoteStop:
		if steps := demotePlan(&m.cluster.Spec); steps != nil {
			m.log.Info("demoting within spec.switchoverDelay", "switchoverDelay", m.cluster.Spec.SwitchoverDelay(), "plan", describePlan(steps))
			pm.stopPlanned(time.Now(), steps, m.log.Info, w)
			break
		}
		pm.stopPlanned(time.Now(), fastStopPlan, m.log.Info, w)
	default:
		pm.stopPlanned(time.Now(), fastStopPlan, m.log.Info, w)
	}
	m.setPhase(PhaseStopped)
	m.log.Info("postgres stopped", "immediate", kind == immediateStop)
}

// fastStopPlan is how the manager stops PostgreSQL for a command (a
// switchover without switchoverDelay, a fence, a restart): a fast
// shutdown for a minute, then an immediate one for a minute, then SIGKILL.
var fastStopPlan = []stopStep{
	{Mode: "fast", Signal: syscall.SIGINT, Until: time.Minute},
	{Mode: "immediate", Signal: syscall.SIGQUIT, Until: 2 * time.Minute},
	{Mode: "forced", Signal: syscall.SIGKILL},
}

// archiverGrace is the archiver's grace in a stop (cutArchiver): none when
// its last attempt failed (the store is not taking WAL now), else
// ArchiverShutdownGrace.
func (m *Manager) archiverGrace(pool *pgxpool.Pool) time.Duration {
	if pool == nil || m.cluster.Spec.Backup == nil {
		return ArchiverShutdownGrace
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var failing bool
	err := pool.QueryRow(ctx, `SELECT coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false) FROM pg_stat_archiver`).Scan(&failing)
	if err == nil && failing {
		return 0
	}
	return ArchiverShutdownGrace
}

// startPostgres renders the configuration for the role the data directory
// should run in and starts postgres, returning once it accepts connections.
func (m *Manager) startPostgres(ctx context.Context, primary bool) error {
	if m.postmaster() != nil {
		return nil
	}
	m.setPhase(PhaseStarting)
	// WAL replay of CREATE TABLESPACE needs the directory in place.
	if err := ensureTablespaceDirs(m.cfg, m.cluster); err != nil {
		return err
	}
	// What renderConfig renders: PostgreSQL starts on that manifest.
	m.mu.Lock()
	sum := m.clusterSum
	m.mu.Unlock()
	if err := m.renderConfig(primary); err != nil {
		return err
	}
	if err := setStandby(m.cfg.DataDir, !primary); err != nil {
		return err
	}
	if err := resetAutoConf(m.cfg.DataDir); err != nil {
		return err
	}
	var tlsLoadedBefore tlsState
	if m.tls != nil {
		if _, err := m.tls.load(); err != nil {
			return err
		}
		tlsLoadedBefore = m.tls.state()
	}
	pm, err := startPostgres(m.cfg.PGBinDir, m.cfg.DataDir, m.confFile(), m.cfg.LogFile, m.ldapEnv(m.cluster)...)
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
	if m.tls != nil {
		// Loaded before postgres started, so never newer than what it read:
		// a change in between shows as a newer load and a reload.
		m.pgTLS = tlsLoadedBefore
	}
	m.phase = PhaseRunning
	m.endLSN = ""
	m.gen++
	m.loadedSum = sum
	first.ManifestSHA256 = sum
	m.keepTimeline(&first)
	m.sample = sample{gen: m.gen, at: time.Now(), st: first}
	m.mu.Unlock()
	m.log.Info("postgres is running", "pid", pm.Pid(), "primary", primary)
	if primary {
		// At once rather than at the next tick: a new primary creates
		// what the manifest declares before anyone waits for it.
		m.reconcileTablespaces(ctx, time.Time{})
	}
	return nil
}

// waitConnect connects over the socket once PostgreSQL accepts connections.
func (m *Manager) waitConnect(ctx context.Context, pm *postmaster, dbname string) (*pgx.Conn, error) {
	cc, err := localConnConfig(m.cfg.SocketDir, m.cfg.Port, dbname)
	if err != nil {
		return nil, err
	}
	var lastErr error
	// spec.startDelay bounds the wait (crash recovery, a long replay): the
	// caller then stops PostgreSQL and the error reaches the status.
	limit := m.cluster.Spec.StartDelay()
	deadline := time.Now().Add(limit)
	for {
		if !pm.Running() {
			return nil, fmt.Errorf("%w while starting: %s (see %s)", errPostmasterExited, pm.exitReason(m.cfg.DataDir), m.cfg.LogFile)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("postgres did not accept connections within spec.startDelay (%s): last error: %w", limit, lastErr)
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

// LeaveWindow is how long the instance manager of a primary told to stop
// for good (SIGTERM: on Kubernetes, its pod deleted) keeps running after
// PostgreSQL has stopped, answering on its status port that postgres is
// down. Without it the manager exits the moment postgres is down, the
// kubelet tears the pod's network down right after, and for the operator
// the primary is merely silent: it may not promote another instance before
// the self-fencing bound (seconds), and clients of the read-write Service,
// which still leads to that address, wait out their connect timeout
// instead of being refused. Seen stopped, the primary is failed over at
// once, as after a crash (the operator reacts within a few hundred
// milliseconds through /pg/watch). The window covers that reaction, the
// label move and kube-proxy's next sync (at most its minimum sync period,
// 1 s by default, after the previous one), during which the address still
// refuses connections at once. It delays only the pod's own end, not the
// failover; the pod's termination grace period bounds it anyway.
const LeaveWindow = 2 * time.Second

// leaveWindow is how long to stay after the final stop: LeaveWindow for a
// primary of a cluster that fails over on Kubernetes (it holds a Lease and
// has a self-fencing timer, which only clusters with replicas have), none
// otherwise: a replica's address leaves no write waiting, a single
// instance has nobody to hand over to, and the local runtime's controller
// stops its instances itself.
func leaveWindow(primary, kubernetes bool, selfFence time.Duration) time.Duration {
	if primary && kubernetes && selfFence > 0 {
		return LeaveWindow
	}
	return 0
}
