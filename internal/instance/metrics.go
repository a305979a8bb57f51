package instance

import (
	"context"
	"crypto/tls"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/pki"
)

// MetricsPath is where the exporter serves the exposition format.
const MetricsPath = "/metrics"

// A scrape queries PostgreSQL through the manager's pool (the instance's
// socket, peer authentication: no session beyond the manager's budget,
// see api/v1 pgwardSessions), one query at a time, each bounded by
// metricsQueryTimeout: stopping or fencing PostgreSQL closes the pool
// first, which waits for connections in use, so no query may hold one
// longer than the sampler's own (2 s). The manager's lock is never held
// while querying. metricsTimeout bounds the whole scrape.
const (
	metricsQueryTimeout = time.Second
	metricsTimeout      = 5 * time.Second
)

// newMetricsServer builds the exporter: HTTPS, TLS 1.3 only, the cluster's
// server certificate (re-read per connection, like the status port's), a
// client certificate verified against the client CA required in the
// handshake, and only the metrics identity admitted.
func newMetricsServer(addr string, files *tlsFiles, m *Manager) *http.Server {
	reg := prometheus.NewRegistry()
	reg.MustRegister(&exporter{m: m}, newCustomCollector(m))
	mux := http.NewServeMux()
	mux.Handle(MetricsPath, requireMetrics(oneAtATime(promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
	}), metricsTimeout)))
	return &http.Server{
		Addr:    addr,
		Handler: mux,
		TLSConfig: &tls.Config{
			MinVersion:         tls.VersionTLS13,
			GetConfigForClient: files.metricsConfig,
		},
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      2 * metricsTimeout,
		IdleTimeout:       60 * time.Second,
	}
}

// requireMetrics admits only a verified client certificate whose common
// name is the metrics identity: not the replication certificate every
// instance holds, and not the controller's, which commands instances and
// has no business in a monitoring system.
func requireMetrics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			http.Error(w, "client certificate required", http.StatusUnauthorized)
			return
		}
		if cn := r.TLS.VerifiedChains[0][0].Subject.CommonName; cn != pki.MetricsCommonName {
			http.Error(w, "forbidden: certificate is not "+pki.MetricsCommonName, http.StatusForbidden)
			return
		}
		if r.Method != http.MethodGet {
			http.Error(w, "GET only", http.StatusMethodNotAllowed)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// oneAtATime runs scrapes one after the other, so PostgreSQL never answers
// two at once (an HA pair of Prometheus servers scrapes every target
// twice). A scrape waits up to wait for the one before it, then gets 503.
func oneAtATime(next http.Handler, wait time.Duration) http.Handler {
	slot := make(chan struct{}, 1)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case slot <- struct{}{}:
		case <-t.C:
			http.Error(w, "another scrape is still running", http.StatusServiceUnavailable)
			return
		case <-r.Context().Done():
			return
		}
		defer func() { <-slot }()
		next.ServeHTTP(w, r)
	})
}

// exporter collects at scrape time: the manager's own view (no query), the
// certificates' expiry (files) and PostgreSQL's statistics (queries).
type exporter struct{ m *Manager }

// Describe implements prometheus.Collector.
func (e *exporter) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (e *exporter) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	st := e.m.Status(0)
	v := managerView{
		role: st.Role, postmasterRunning: st.PostmasterRunning, ready: st.Ready,
		fenced: st.Fenced, timeline: st.Timeline, epoch: st.Epoch,
	}
	e.m.mu.Lock()
	v.promotedAt = e.m.st.PromotedAt
	pool := e.m.pool
	stats := e.m.cluster == nil || !e.m.cluster.Spec.Monitoring.StatisticsOff()
	e.m.mu.Unlock()
	var snap *pgSnapshot
	if pool != nil && st.PostmasterRunning {
		ctx, cancel := context.WithTimeout(context.Background(), metricsTimeout)
		snap = querySnapshot(ctx, pool, stats)
		cancel()
	}
	emit(ch, v, snap, e.m.certExpiries(), now)
}

// certExpiries reads the certificates this instance uses.
func (m *Manager) certExpiries() []certExpiry {
	s := m.cfg.Secrets
	files := []struct{ name, secret, key string }{
		{"server", s.ServerTLS, "tls.crt"},
		{"replication", s.Replication, "tls.crt"},
		{"server-ca", s.ServerCA, "ca.crt"},
		{"client-ca", s.ClientCA, "ca.crt"},
	}
	var out []certExpiry
	for _, f := range files {
		if f.secret == "" {
			continue
		}
		ce := certExpiry{name: f.name}
		b, err := m.store.Get(f.secret)
		if err == nil {
			c, perr := pki.ParseCertificatePEM(b[f.key])
			if perr == nil {
				ce.notAfter = c.NotAfter
			}
			err = perr
		}
		ce.err = err
		out = append(out, ce)
	}
	return out
}

// managerView is what the instance manager knows without asking PostgreSQL.
type managerView struct {
	role                             string
	postmasterRunning, ready, fenced bool
	timeline                         uint32
	epoch                            uint64
	promotedAt                       time.Time
}

type certExpiry struct {
	name     string
	notAfter time.Time
	err      error
}

// pgSnapshot is one scrape's answers from PostgreSQL. Positions are bytes
// since 0/0 (pg_wal_lsn_diff), nil when PostgreSQL has none.
type pgSnapshot struct {
	// answered: PostgreSQL answered the first query; nothing else was
	// asked otherwise.
	answered   bool
	inRecovery bool
	// Primary.
	currentLSN *float64
	standbys   []standby
	// Replica.
	receivedLSN, replayedLSN *float64
	replayLagSeconds         *float64
	walReceiverUp            bool
	// Both.
	walBytes    *float64
	connections []countBy
	locks       []countBy
	databases   []countBy
	bgwriter    *bgwriter
	archiver    *archiver
	// failed maps a collector to its error; a failed collector emits
	// nothing of its own. skipped are the collectors not run.
	failed  map[string]error
	skipped []string
}

// standby is one row of pg_stat_replication: how far behind the primary's
// current position each stage is, in bytes, and PostgreSQL's own time lags.
type standby struct {
	name, state, syncState        string
	sent, write, flush, replay    *float64
	writeLag, flushLag, replayLag *float64
}

// archiver is pg_stat_archiver.
type archiver struct {
	archived, failed                 float64
	lastArchivedTime, lastFailedTime *float64
}

type countBy struct {
	a, b  string
	value float64
}

type bgwriter struct {
	checkpointsTimed, checkpointsReq                float64
	checkpointWriteMS, checkpointSyncMS             float64
	buffersCheckpoint, buffersClean, buffersBackend float64
}

// Collector names, for pgward_exporter_collector_success.
const (
	collectorRecovery    = "recovery"
	collectorWAL         = "wal"
	collectorReplication = "replication"
	collectorConnections = "connections"
	collectorLocks       = "locks"
	collectorDatabases   = "databases"
	collectorBgwriter    = "bgwriter"
	collectorArchiver    = "archiver"
)

var collectors = []string{collectorRecovery, collectorWAL, collectorReplication, collectorConnections, collectorLocks, collectorDatabases, collectorBgwriter, collectorArchiver}

// statsCollectors are the "default queries" spec.monitoring's
// disableDefaultQueries turns off.
var statsCollectors = []string{collectorConnections, collectorLocks, collectorDatabases, collectorBgwriter, collectorArchiver}

// querySnapshot asks PostgreSQL within ctx, each collector's queries
// within metricsQueryTimeout. Each collector's failure is recorded and the
// others still run.
//
// Without stats (spec.monitoring.disableDefaultQueries), the statistics
// collectors (connections, locks, databases, bgwriter, archiver) are not
// run and report no success line; health, replication and WAL always are.
func querySnapshot(ctx context.Context, q pgxQuerier, stats bool) *pgSnapshot {
	s := &pgSnapshot{failed: map[string]error{}}
	first, cancel := context.WithTimeout(ctx, metricsQueryTimeout)
	err := q.QueryRow(first, `SELECT pg_is_in_recovery()`).Scan(&s.inRecovery)
	cancel()
	if err != nil {
		for _, c := range collectors {
			s.failed[c] = err
		}
		return s
	}
	s.answered = true
	run := func(name string, f func(ctx context.Context) error) {
		if !stats && slices.Contains(statsCollectors, name) {
			s.skipped = append(s.skipped, name)
			return
		}
		cctx, cancel := context.WithTimeout(ctx, metricsQueryTimeout)
		defer cancel()
		if err := f(cctx); err != nil {
			s.failed[name] = err
		}
	}
	run(collectorRecovery, func(ctx context.Context) error {
		if !s.inRecovery {
			return nil
		}
		// pg_replication_lag as CloudNativePG computes it: 0 when all
		// received WAL is replayed, else the age of the last replayed
		// transaction.
		return q.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), '0/0')::float8,
			pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::float8,
			CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
			     ELSE greatest(0, extract(epoch FROM now() - pg_last_xact_replay_timestamp())) END::float8,
			EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming')`).
			Scan(&s.receivedLSN, &s.replayedLSN, &s.replayLagSeconds, &s.walReceiverUp)
	})
	run(collectorWAL, func(ctx context.Context) error {
		if !s.inRecovery {
			if err := q.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8`).Scan(&s.currentLSN); err != nil {
				return err
			}
		}
		return q.QueryRow(ctx, `SELECT wal_bytes::float8 FROM pg_stat_wal`).Scan(&s.walBytes)
	})
	run(collectorReplication, func(ctx context.Context) error {
		if s.inRecovery {
			return nil
		}
		rows, err := q.Query(ctx, `SELECT coalesce(application_name, ''), coalesce(state, ''), coalesce(sync_state, ''),
			pg_wal_lsn_diff(pg_current_wal_lsn(), sent_lsn)::float8, pg_wal_lsn_diff(pg_current_wal_lsn(), write_lsn)::float8,
			pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn)::float8, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8,
			extract(epoch FROM write_lag)::float8, extract(epoch FROM flush_lag)::float8, extract(epoch FROM replay_lag)::float8
			FROM pg_stat_replication ORDER BY application_name`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var sb standby
			if err := rows.Scan(&sb.name, &sb.state, &sb.syncState, &sb.sent, &sb.write, &sb.flush, &sb.replay,
				&sb.writeLag, &sb.flushLag, &sb.replayLag); err != nil {
				return err
			}
			s.standbys = append(s.standbys, sb)
		}
		return rows.Err()
	})
	run(collectorConnections, func(ctx context.Context) error {
		var err error
		s.connections, err = countRows(ctx, q, `SELECT coalesce(datname, ''), coalesce(state, 'unknown'), count(*)::float8
			FROM pg_stat_activity WHERE backend_type = 'client backend' GROUP BY 1, 2 ORDER BY 1, 2`)
		return err
	})
	run(collectorLocks, func(ctx context.Context) error {
		var err error
		s.locks, err = countRows(ctx, q, `SELECT mode, granted::text, count(*)::float8 FROM pg_locks GROUP BY 1, 2 ORDER BY 1, 2`)
		return err
	})
	run(collectorDatabases, func(ctx context.Context) error {
		var err error
		s.databases, err = countRows(ctx, q, `SELECT datname, '', pg_database_size(oid)::float8 FROM pg_database WHERE datallowconn ORDER BY 1`)
		return err
	})
	run(collectorBgwriter, func(ctx context.Context) error {
		var b bgwriter
		if err := q.QueryRow(ctx, `SELECT checkpoints_timed::float8, checkpoints_req::float8, checkpoint_write_time, checkpoint_sync_time,
			buffers_checkpoint::float8, buffers_clean::float8, buffers_backend::float8 FROM pg_stat_bgwriter`).
			Scan(&b.checkpointsTimed, &b.checkpointsReq, &b.checkpointWriteMS, &b.checkpointSyncMS,
				&b.buffersCheckpoint, &b.buffersClean, &b.buffersBackend); err != nil {
			return err
		}
		s.bgwriter = &b
		return nil
	})
	run(collectorArchiver, func(ctx context.Context) error {
		var a archiver
		if err := q.QueryRow(ctx, `SELECT archived_count::float8, failed_count::float8,
			extract(epoch FROM last_archived_time)::float8, extract(epoch FROM last_failed_time)::float8
			FROM pg_stat_archiver`).Scan(&a.archived, &a.failed, &a.lastArchivedTime, &a.lastFailedTime); err != nil {
			return err
		}
		s.archiver = &a
		return nil
	})
	return s
}

func countRows(ctx context.Context, q pgxQuerier, sql string) ([]countBy, error) {
	rows, err := q.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []countBy
	for rows.Next() {
		var c countBy
		if err := rows.Scan(&c.a, &c.b, &c.value); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	descUp                = desc("pgward_up", "1 if PostgreSQL answered this scrape's queries, else 0.")
	descPostmaster        = desc("pgward_postmaster_running", "1 if the instance manager's postgres child is running.")
	descReady             = desc("pgward_ready", "1 if PostgreSQL answers the manager's status queries (its latest sample is fresh).")
	descRole              = desc("pgward_role", "The instance's role: 1 for the current one, 0 for the others.", "role")
	descTimeline          = desc("pgward_timeline", "The instance's timeline (a replica's never goes back).")
	descFenced            = desc("pgward_fenced", "1 if the instance is fenced (PostgreSQL kept down until commanded).")
	descEpoch             = desc("pgward_epoch", "The fencing epoch of the last bootstrap or promotion this instance executed.")
	descPromoted          = desc("pgward_last_promotion_timestamp_seconds", "When this instance last completed a promotion (failover or switchover onto it), Unix time; 0 if never.")
	descCertExpiry        = desc("pgward_certificate_expiry_seconds", "Seconds until the certificate expires (negative once expired).", "certificate")
	descCollector         = desc("pgward_exporter_collector_success", "1 if the collector's queries succeeded in this scrape.", "collector")
	descInRecovery        = desc("pg_replication_in_recovery", "1 if PostgreSQL is in recovery (a replica).")
	descReceiverUp        = desc("pg_replication_is_wal_receiver_up", "1 if the replica's WAL receiver is streaming.")
	descReplicaLagSeconds = desc("pg_replication_lag", "Replica: seconds since the last replayed transaction when WAL is waiting to be replayed, else 0 (CloudNativePG's definition).")
	descReplicaLagBytes   = desc("pgward_replica_replay_lag_bytes", "Replica: bytes received but not yet replayed.")
	descCurrentLSN        = desc("pgward_wal_current_lsn_bytes", "Primary: the current WAL write position, in bytes since 0/0.")
	descReceivedLSN       = desc("pgward_wal_received_lsn_bytes", "Replica: the last WAL position received, in bytes since 0/0.")
	descReplayedLSN       = desc("pgward_wal_replayed_lsn_bytes", "Replica: the last WAL position replayed, in bytes since 0/0.")
	descWALBytes          = desc("pg_stat_wal_bytes_total", "WAL generated by this server since its statistics were reset, in bytes (pg_stat_wal.wal_bytes).")
	descStandbyLagBytes   = desc("pgward_replication_lag_bytes", "Primary: bytes between the current WAL position and what the standby has reached at each stage.", "application_name", "stage")
	descStandbyLagSeconds = desc("pgward_replication_lag_seconds", "Primary: PostgreSQL's measured lag of each stage for the standby (pg_stat_replication *_lag).", "application_name", "stage")
	descStandby           = desc("pgward_replication_standby", "Primary: 1 per connected standby, labelled with its WAL sender state and sync state.", "application_name", "state", "sync_state")
	descConnections       = desc("pgward_connections", "Client backends by database and state (pg_stat_activity).", "datname", "state")
	descLocks             = desc("pg_locks_count", "Locks by mode and whether they are granted (pg_locks).", "mode", "granted")
	descDatabaseSize      = desc("pg_database_size_bytes", "Size of each database that accepts connections.", "datname")
	descCheckpointsTimed  = desc("pg_stat_bgwriter_checkpoints_timed_total", "Scheduled checkpoints performed.")
	descCheckpointsReq    = desc("pg_stat_bgwriter_checkpoints_req_total", "Requested checkpoints performed.")
	descCheckpointWrite   = desc("pg_stat_bgwriter_checkpoint_write_time_seconds_total", "Time spent writing checkpoint files to disk.")
	descCheckpointSync    = desc("pg_stat_bgwriter_checkpoint_sync_time_seconds_total", "Time spent synchronizing checkpoint files to disk.")
	descBuffersCheckpoint = desc("pg_stat_bgwriter_buffers_checkpoint_total", "Buffers written during checkpoints.")
	descBuffersClean      = desc("pg_stat_bgwriter_buffers_clean_total", "Buffers written by the background writer.")
	descArchived          = desc("pg_stat_archiver_archived_count", "WAL files archived successfully (pg_stat_archiver).")
	descArchiveFailed     = desc("pg_stat_archiver_failed_count", "Failed attempts to archive WAL files (pg_stat_archiver).")
	descLastArchived      = desc("pgward_archiver_last_archived_timestamp_seconds", "When the last WAL file was archived successfully, Unix time; absent if never.")
	descLastArchiveFailed = desc("pgward_archiver_last_failed_timestamp_seconds", "When archiving last failed, Unix time; absent if never.")
	descBuffersBackend    = desc("pg_stat_bgwriter_buffers_backend_total", "Buffers written directly by backends.")
)

var allDescs = []*prometheus.Desc{
	descUp, descPostmaster, descReady, descRole, descTimeline, descFenced, descEpoch, descPromoted, descCertExpiry,
	descCollector, descInRecovery, descReceiverUp, descReplicaLagSeconds, descReplicaLagBytes, descCurrentLSN,
	descReceivedLSN, descReplayedLSN, descWALBytes, descStandbyLagBytes, descStandbyLagSeconds, descStandby,
	descConnections, descLocks, descDatabaseSize, descCheckpointsTimed, descCheckpointsReq, descCheckpointWrite,
	descCheckpointSync, descBuffersCheckpoint, descBuffersClean, descBuffersBackend,
	descArchived, descArchiveFailed, descLastArchived, descLastArchiveFailed,
}

// roles are the values of pgward_role's label, each always present.
var roles = []string{instanceapi.RolePrimary, instanceapi.RoleReplica, instanceapi.RoleUnknown}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// emit turns what one scrape learned into metrics. It is pure: the
// decisions (which families exist for a primary or a replica, what a
// failed query hides) are tested without PostgreSQL.
func emit(ch chan<- prometheus.Metric, v managerView, s *pgSnapshot, certs []certExpiry, now time.Time) {
	g := func(d *prometheus.Desc, val float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, val, labels...)
	}
	c := func(d *prometheus.Desc, val float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, val)
	}
	opt := func(d *prometheus.Desc, val *float64, labels ...string) {
		if val != nil {
			g(d, *val, labels...)
		}
	}
	up := s != nil && s.answered
	g(descUp, b2f(up))
	g(descPostmaster, b2f(v.postmasterRunning))
	g(descReady, b2f(v.ready))
	for _, r := range roles {
		g(descRole, b2f(v.role == r), r)
	}
	if v.timeline > 0 {
		g(descTimeline, float64(v.timeline))
	}
	g(descFenced, b2f(v.fenced))
	g(descEpoch, float64(v.epoch))
	promoted := 0.0
	if !v.promotedAt.IsZero() {
		promoted = float64(v.promotedAt.UnixMilli()) / 1000
	}
	g(descPromoted, promoted)
	for _, ce := range certs {
		if ce.err == nil {
			g(descCertExpiry, ce.notAfter.Sub(now).Seconds(), ce.name)
		}
	}
	if s == nil {
		return
	}
	for _, name := range collectors {
		if !slices.Contains(s.skipped, name) {
			g(descCollector, b2f(s.failed[name] == nil), name)
		}
	}
	if !up {
		return
	}
	g(descInRecovery, b2f(s.inRecovery))
	if s.inRecovery && s.failed[collectorRecovery] == nil {
		g(descReceiverUp, b2f(s.walReceiverUp))
		opt(descReplicaLagSeconds, s.replayLagSeconds)
		opt(descReceivedLSN, s.receivedLSN)
		opt(descReplayedLSN, s.replayedLSN)
		if s.receivedLSN != nil && s.replayedLSN != nil {
			g(descReplicaLagBytes, max(0, *s.receivedLSN-*s.replayedLSN))
		}
	}
	if !s.inRecovery {
		// A primary has no replay to wait for (CloudNativePG reports 0).
		g(descReplicaLagSeconds, 0)
	}
	if s.failed[collectorWAL] == nil {
		opt(descCurrentLSN, s.currentLSN)
		if s.walBytes != nil {
			c(descWALBytes, *s.walBytes)
		}
	}
	if s.failed[collectorReplication] == nil {
		for _, sb := range s.standbys {
			g(descStandby, 1, sb.name, sb.state, sb.syncState)
			for _, st := range []struct {
				stage string
				v     *float64
			}{{"sent", sb.sent}, {"write", sb.write}, {"flush", sb.flush}, {"replay", sb.replay}} {
				if st.v != nil {
					g(descStandbyLagBytes, max(0, *st.v), sb.name, st.stage)
				}
			}
			for _, st := range []struct {
				stage string
				v     *float64
			}{{"write", sb.writeLag}, {"flush", sb.flushLag}, {"replay", sb.replayLag}} {
				// NULL once the standby has caught up and is idle:
				// PostgreSQL's way of saying no lag.
				val := 0.0
				if st.v != nil {
					val = *st.v
				}
				g(descStandbyLagSeconds, val, sb.name, st.stage)
			}
		}
	}
	if s.failed[collectorConnections] == nil {
		for _, r := range s.connections {
			g(descConnections, r.value, r.a, r.b)
		}
	}
	if s.failed[collectorLocks] == nil {
		for _, r := range s.locks {
			g(descLocks, r.value, r.a, r.b)
		}
	}
	if s.failed[collectorDatabases] == nil {
		for _, r := range s.databases {
			g(descDatabaseSize, r.value, r.a)
		}
	}
	if a := s.archiver; a != nil && s.failed[collectorArchiver] == nil {
		c(descArchived, a.archived)
		c(descArchiveFailed, a.failed)
		opt(descLastArchived, a.lastArchivedTime)
		opt(descLastArchiveFailed, a.lastFailedTime)
	}
	if b := s.bgwriter; b != nil && s.failed[collectorBgwriter] == nil {
		c(descCheckpointsTimed, b.checkpointsTimed)
		c(descCheckpointsReq, b.checkpointsReq)
		c(descCheckpointWrite, b.checkpointWriteMS/1000)
		c(descCheckpointSync, b.checkpointSyncMS/1000)
		c(descBuffersCheckpoint, b.buffersCheckpoint)
		c(descBuffersClean, b.buffersClean)
		c(descBuffersBackend, b.buffersBackend)
	}
}
