package instance

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgward/pgward/internal/instanceapi"
)

// localConnConfig connects through the instance's own socket as postgres;
// pg_hba's peer map admits only the instance's OS user there.
// ownConn opens a connection of its own to the instance's PostgreSQL, as
// postgres through the socket (peer authentication), for work whose session
// settings must not stay on the sampler's pooled connections; purpose names
// the work in the error. The caller closes it.
func (m *Manager) ownConn(ctx context.Context, purpose string) (*pgx.Conn, error) {
	cc, err := localConnConfig(m.cfg.SocketDir, m.cfg.Port, "postgres")
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", purpose, err)
	}
	return conn, nil
}

// quietConn is ownConn with quietSession applied: statements that carry
// passwords are not logged.
func (m *Manager) quietConn(ctx context.Context, purpose string) (*pgx.Conn, error) {
	conn, err := m.ownConn(ctx, purpose)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, quietSession); err != nil {
		_ = conn.Close(context.Background())
		return nil, fmt.Errorf("preparing the session to %s: %w", purpose, err)
	}
	return conn, nil
}

func localConnConfig(socketDir string, port int, dbname string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		return nil, fmt.Errorf("building connection config: %w", err)
	}
	cfg.Host = socketDir
	cfg.Port = uint16(port) // #nosec G115 -- port validated to 1..65535
	cfg.User = "postgres"
	cfg.Database = dbname
	cfg.Password = ""
	cfg.TLSConfig = nil
	cfg.Fallbacks = nil
	cfg.RuntimeParams["application_name"] = "pgward-instance-manager"
	return cfg, nil
}

func newLocalPool(ctx context.Context, socketDir string, port int) (*pgxpool.Pool, error) {
	cc, err := localConnConfig(socketDir, port, "postgres")
	if err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig("")
	if err != nil {
		return nil, fmt.Errorf("building pool config: %w", err)
	}
	pc.ConnConfig = cc
	pc.MaxConns = 2
	return pgxpool.NewWithConfig(ctx, pc)
}

// queryStatus fills st from PostgreSQL's own views. It is one round trip per
// query on a pooled socket connection, cheap enough for sub-second polling.
func queryStatus(ctx context.Context, q pgxQuerier, st *instanceapi.Status) error {
	var inRecovery bool
	var sysid int64
	var version string
	if err := q.QueryRow(ctx, `SELECT pg_is_in_recovery(), (SELECT system_identifier FROM pg_control_system()),
		current_setting('server_version'),
		(SELECT count(*) > 0 FROM pg_settings WHERE pending_restart)`).Scan(&inRecovery, &sysid, &version, &st.PendingRestart); err != nil {
		return fmt.Errorf("reading instance state: %w", err)
	}
	st.SystemID = strconv.FormatInt(sysid, 10)
	st.PGVersion = version
	st.Ready = true
	if !inRecovery {
		st.Role = instanceapi.RolePrimary
		return queryPrimary(ctx, q, st)
	}
	st.Role = instanceapi.RoleReplica
	return queryReplica(ctx, q, st)
}

type pgxQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func queryPrimary(ctx context.Context, q pgxQuerier, st *instanceapi.Status) error {
	// The timeline comes from the current WAL file name: pg_control's copy
	// lags until the first checkpoint after a promotion.
	var tli string
	if err := q.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text, substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)`).Scan(&st.CurrentLSN, &tli); err != nil {
		return fmt.Errorf("reading WAL position: %w", err)
	}
	t, err := strconv.ParseUint(tli, 16, 32)
	if err != nil {
		return fmt.Errorf("parsing timeline %q: %w", tli, err)
	}
	st.Timeline = uint32(t)
	if err := queryPeers(ctx, q, st); err != nil {
		return err
	}
	return queryArchive(ctx, q, st)
}

// queryPeers lists the standbys streaming from this instance: a
// primary's, or a designated primary's cascading replicas (their lag
// counted from what it has replayed).
func queryPeers(ctx context.Context, q pgxQuerier, st *instanceapi.Status) error {
	rows, err := q.Query(ctx, `SELECT coalesce(r.application_name, ''), coalesce(r.state, ''), coalesce(r.sync_state, ''),
		coalesce(r.sent_lsn::text, ''), coalesce(r.replay_lsn::text, ''),
		coalesce(pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END, r.replay_lsn), 0)::bigint,
		coalesce(s.ssl, false), coalesce(s.version, ''), coalesce(s.client_dn, '')
		FROM pg_stat_replication r LEFT JOIN pg_stat_ssl s ON s.pid = r.pid
		ORDER BY r.application_name`)
	if err != nil {
		return fmt.Errorf("reading pg_stat_replication: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var p instanceapi.Peer
		if err := rows.Scan(&p.ApplicationName, &p.State, &p.SyncState, &p.SentLSN, &p.ReplayLSN, &p.LagBytes, &p.SSL, &p.TLSVersion, &p.ClientDN); err != nil {
			return fmt.Errorf("reading pg_stat_replication: %w", err)
		}
		st.Replication = append(st.Replication, p)
	}
	return rows.Err()
}

// queryArchive reads the archiver's progress when archive_mode is on:
// what was archived last, what failed last, and how much WAL waits (it
// stays in pg_wal, growing it, while the object store is unreachable).
func queryArchive(ctx context.Context, q pgxQuerier, st *instanceapi.Status) error {
	var a instanceapi.Archive
	var mode string
	err := q.QueryRow(ctx, `SELECT current_setting('archive_mode'), archived_count, coalesce(last_archived_wal, ''),
		last_archived_time, failed_count, coalesce(last_failed_wal, ''), last_failed_time,
		(SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'),
		(SELECT coalesce(sum(size), 0) FROM pg_ls_waldir())::bigint
		FROM pg_stat_archiver`).Scan(&mode, &a.ArchivedCount, &a.LastArchivedWAL, &a.LastArchivedTime,
		&a.FailedCount, &a.LastFailedWAL, &a.LastFailedTime, &a.Pending, &a.PGWALBytes)
	if err != nil {
		return fmt.Errorf("reading pg_stat_archiver: %w", err)
	}
	if mode != "off" {
		st.Archive = &a
	}
	return nil
}

func queryReplica(ctx context.Context, q pgxQuerier, st *instanceapi.Status) error {
	var received, replayed *string
	var tli int64
	// A replica's timeline: the WAL receiver's while it runs; otherwise the
	// best PostgreSQL offers (the last restartpoint's or the minimum
	// recovery point's), which lags a timeline switch until the next
	// restartpoint. The sampler keeps the highest value seen (see
	// Manager.sampler): reporting an old timeline for a replica would make
	// the planner rank it below a less advanced one.
	//
	// The received position is never reported below the replayed one: a
	// restarted WAL receiver starts pg_last_wal_receive_lsn() over at the
	// start of the segment it asks for, behind WAL this standby already has
	// (and has replayed), and the planner ranks candidates by it first.
	if err := q.QueryRow(ctx, `SELECT greatest(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::text, pg_last_wal_replay_lsn()::text,
		coalesce((SELECT received_tli FROM pg_stat_wal_receiver),
		         greatest((SELECT timeline_id FROM pg_control_checkpoint()),
		                  (SELECT min_recovery_end_timeline FROM pg_control_recovery())))::bigint`).Scan(&received, &replayed, &tli); err != nil {
		return fmt.Errorf("reading replay position: %w", err)
	}
	if received != nil {
		st.ReceivedLSN = *received
	}
	if replayed != nil {
		st.ReplayedLSN = *replayed
	}
	st.Timeline = uint32(tli) // #nosec G115 -- timelines are 32-bit in PostgreSQL
	var wr instanceapi.WALReceiver
	err := q.QueryRow(ctx, `SELECT status, coalesce(sender_host, ''), coalesce(sender_port, 0),
		greatest(coalesce(pg_wal_lsn_diff(latest_end_lsn, pg_last_wal_replay_lsn()), 0), 0)::bigint,
		CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
		     ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0) END::float8
		FROM pg_stat_wal_receiver`).Scan(&wr.Status, &wr.SenderHost, &wr.SenderPort, &wr.LagBytes, &wr.ReplayDelaySeconds)
	switch {
	case err == nil:
		st.WALReceiver = &wr
	case errors.Is(err, pgx.ErrNoRows):
	default:
		return fmt.Errorf("reading pg_stat_wal_receiver: %w", err)
	}
	return queryPeers(ctx, q, st)
}
