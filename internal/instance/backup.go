package instance

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/backup"
	"github.com/pgward/pgward/internal/instanceapi"
)

// Configuration files of pgBackRest in ConfDir: one for the cluster's own
// object store, one for the store a recovery reads from. Both hold secrets.
const (
	backupConf         = "pgbackrest.conf"
	recoverySourceConf = "pgbackrest-source.conf"
)

// errNotPrimary refuses a backup on a replica: pgward backs up from the
// primary, which is also the only instance archiving.
var errNotPrimary = errors.New("not the primary: backups run on the primary")

// errBackupRunning refuses a second concurrent backup.
var errBackupRunning = errors.New("a backup is already running")

// backupStateDir holds pgBackRest's lock and spool directories.
func (m *Manager) backupStateDir() string { return filepath.Join(m.cfg.ConfDir, "pgbackrest") }

// repoFiles renders a pgBackRest configuration for store, reading the
// secrets it names, with pgdata as the data directory it serves.
func (m *Manager) repoFiles(store *v1.BarmanObjectStoreConfiguration, retention, pgdata string) (backup.Repo, []byte, error) {
	repo, err := backup.RepoFor(store, retention, func(sel v1.SecretKeySelector) string {
		return m.secretFile(sel.Name, sel.Key)
	})
	if err != nil {
		return repo, nil, err
	}
	var sec backup.Secrets
	for _, k := range []struct {
		sel  *v1.SecretKeySelector
		into *string
		what string
	}{
		{store.S3Credentials.AccessKeyID, &sec.AccessKey, "s3Credentials.accessKeyId"},
		{store.S3Credentials.SecretAccessKey, &sec.SecretKey, "s3Credentials.secretAccessKey"},
		{store.S3Credentials.Region, &sec.Region, "s3Credentials.region"},
		{store.EncryptionKey, &sec.CipherPass, "encryptionKey"},
	} {
		if k.sel == nil {
			continue
		}
		data, err := m.store.Get(k.sel.Name)
		if err != nil {
			return repo, nil, fmt.Errorf("%s: reading secret %q: %w", k.what, k.sel.Name, err)
		}
		v, ok := data[k.sel.Key]
		if !ok {
			return repo, nil, fmt.Errorf("%s: secret %q has no key %q", k.what, k.sel.Name, k.sel.Key)
		}
		*k.into = strings.TrimSpace(string(v))
	}
	conf, err := backup.RenderConfig(repo, sec, backup.Local{
		PGData: pgdata, SocketDir: m.cfg.SocketDir, Port: m.cfg.Port, StateDir: m.backupStateDir(),
	})
	if err != nil {
		return repo, nil, err
	}
	return repo, conf, nil
}

// ownRepo renders the configuration of the cluster's own object store,
// nil when the cluster does not back up.
func (m *Manager) ownRepo(c *v1.Cluster, pgdata string) (*backup.Repo, []byte, error) {
	b := c.Spec.Backup
	if b == nil || b.BarmanObjectStore == nil {
		return nil, nil, nil
	}
	repo, conf, err := m.repoFiles(b.BarmanObjectStore, b.RetentionPolicy, pgdata)
	if err != nil {
		return nil, nil, fmt.Errorf("spec.backup.barmanObjectStore: %w", err)
	}
	return &repo, conf, nil
}

// tool runs pgBackRest with the configuration file name in ConfDir.
func (m *Manager) tool(name, stanza string) (backup.Tool, error) {
	bin, err := backup.FindBin()
	if err != nil {
		return backup.Tool{}, err
	}
	if err := os.MkdirAll(m.backupStateDir(), 0o700); err != nil {
		return backup.Tool{}, err
	}
	return backup.Tool{Bin: bin, Config: filepath.Join(m.cfg.ConfDir, name), Stanza: stanza}, nil
}

// writeOwnRepo writes the own store's configuration for pgdata and
// returns a tool for it; ok is false when the cluster does not back up.
func (m *Manager) writeOwnRepo(pgdata string) (backup.Tool, bool, error) {
	// Called from the status server's goroutines too: the manifest is
	// read under the lock, as the loop replaces it under it.
	m.mu.Lock()
	c := m.cluster
	m.mu.Unlock()
	repo, conf, err := m.ownRepo(c, pgdata)
	if err != nil || repo == nil {
		return backup.Tool{}, false, err
	}
	if err := WriteFileAtomic(filepath.Join(m.cfg.ConfDir, backupConf), conf, 0o600); err != nil {
		return backup.Tool{}, false, err
	}
	t, err := m.tool(backupConf, repo.Stanza)
	return t, err == nil, err
}

// createStanza makes the cluster's place in its object store for the data
// directory at pgdata, before PostgreSQL archives anything there. The
// store refuses a stanza holding another cluster's backups.
func (m *Manager) createStanza(ctx context.Context, pgdata string) error {
	t, ok, err := m.writeOwnRepo(pgdata)
	if err != nil || !ok {
		return err
	}
	m.setPhase(PhaseStanza)
	if err := t.StanzaCreate(ctx, pgdata); err != nil {
		return fmt.Errorf("spec.backup: %w", err)
	}
	return nil
}

// StartBackup starts a full base backup in the background and returns
// the run as it starts: its start time is what identifies it in later
// statuses, which report only the latest run.
func (m *Manager) StartBackup() (instanceapi.BackupRun, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cluster.Spec.Backup == nil || m.cluster.Spec.Backup.BarmanObjectStore == nil {
		return instanceapi.BackupRun{}, errors.New("spec.backup is not set: this cluster has no object store")
	}
	if !m.primary || m.pm == nil {
		return instanceapi.BackupRun{}, errNotPrimary
	}
	if m.backupRun != nil && m.backupRun.Phase == instanceapi.BackupRunning {
		return instanceapi.BackupRun{}, errBackupRunning
	}
	run := &instanceapi.BackupRun{Phase: instanceapi.BackupRunning, Started: time.Now().UTC()}
	m.backupRun = run
	go m.runBackup(run)
	return *run, nil
}

func (m *Manager) runBackup(run *instanceapi.BackupRun) {
	// A backup of a large database takes as long as it takes; the status
	// shows it running meanwhile.
	ctx, cancel := context.WithTimeout(context.Background(), 24*time.Hour)
	defer cancel()
	before := map[string]bool{}
	label, err := func() (string, error) {
		t, _, err := m.writeOwnRepo(m.cfg.DataDir)
		if err != nil {
			return "", err
		}
		if infos, err := t.Info(ctx); err == nil {
			for _, i := range infos {
				before[i.Label] = true
			}
		}
		if err := t.Backup(ctx); err != nil {
			return "", err
		}
		infos, err := t.Info(ctx)
		if err != nil {
			return "", err
		}
		for i := len(infos) - 1; i >= 0; i-- {
			if !before[infos[i].Label] {
				return infos[i].Label, nil
			}
		}
		return "", errors.New("the backup finished but the store does not list it")
	}()
	now := time.Now().UTC()
	m.mu.Lock()
	run.Stopped = &now
	if err != nil {
		run.Phase, run.Error = instanceapi.BackupFailed, err.Error()
	} else {
		run.Phase, run.Label = instanceapi.BackupCompleted, label
	}
	m.mu.Unlock()
	if err != nil {
		m.log.Error("backup failed", "err", err)
	} else {
		m.log.Info("backup completed", "label", label)
	}
}

// ListBackups lists the backups in the cluster's object store.
func (m *Manager) ListBackups(ctx context.Context) (instanceapi.BackupList, error) {
	t, ok, err := m.writeOwnRepo(m.cfg.DataDir)
	if err != nil {
		return instanceapi.BackupList{}, err
	}
	if !ok {
		return instanceapi.BackupList{}, errors.New("spec.backup is not set: this cluster has no object store")
	}
	infos, err := t.Info(ctx)
	if err != nil {
		return instanceapi.BackupList{}, err
	}
	out := instanceapi.BackupList{Stanza: t.Stanza, Backups: []instanceapi.BackupInfo{}}
	for _, i := range infos {
		out.Backups = append(out.Backups, instanceapi.BackupInfo{
			Label: i.Label, Type: i.Type, Start: i.Start, Stop: i.Stop, StartLSN: i.StartLSN, StopLSN: i.StopLSN,
			Timeline: i.Timeline, Size: i.Size, RepoSize: i.RepoSize, Encrypted: i.Encrypted,
		})
	}
	return out, nil
}

// bootstrapRecovery restores the source's chosen base backup into
// staging, creates the cluster's own stanza, and replays the source's WAL
// up to the target in a PostgreSQL started there, which then promotes onto
// a new timeline. Roles get this cluster's credentials before the
// directory is moved into place.
func (m *Manager) bootstrapRecovery(ctx context.Context, staging string) error {
	rec := m.cluster.Spec.Bootstrap.Recovery
	t, repo, err := m.restoreFromSource(ctx, staging)
	if err != nil {
		return err
	}
	if err := m.createStanza(ctx, staging); err != nil {
		return err
	}
	m.setPhase(PhaseRecovery)
	m.recovery = &recoverySettings{
		restore: backup.RestoreCommand(t.Bin, t.Config, repo.Stanza),
		targets: backup.RecoverySettings(rec.RecoveryTarget),
	}
	defer func() { m.recovery = nil }()
	if err := m.replayAndPromote(ctx, staging, true); err != nil {
		return err
	}
	// The source's credentials and key are not needed any more: the
	// cluster runs on its own timeline, archiving to its own place.
	if err := os.Remove(t.Config); err != nil {
		return fmt.Errorf("removing the recovery source's configuration: %w", err)
	}
	return nil
}

// restoreFromSource restores into staging the base backup of the
// recovery source that the recovery target needs, with pg_wal linked to
// this cluster's WAL directory; the source's pgBackRest configuration
// stays in ConfDir for the WAL replay.
func (m *Manager) restoreFromSource(ctx context.Context, staging string) (backup.Tool, backup.Repo, error) {
	rec := m.cluster.Spec.Bootstrap.Recovery
	src := m.cluster.Spec.RecoverySource()
	if src == nil || src.BarmanObjectStore == nil {
		return backup.Tool{}, backup.Repo{}, fmt.Errorf("spec.bootstrap.recovery.source %q is not an external cluster with a barmanObjectStore", rec.Source)
	}
	field := fmt.Sprintf("spec.externalClusters[%s].barmanObjectStore", src.Name)
	repo, conf, err := m.repoFiles(src.BarmanObjectStore, "", staging)
	if err != nil {
		return backup.Tool{}, repo, fmt.Errorf("%s: %w", field, err)
	}
	if err := WriteFileAtomic(filepath.Join(m.cfg.ConfDir, recoverySourceConf), conf, 0o600); err != nil {
		return backup.Tool{}, repo, err
	}
	t, err := m.tool(recoverySourceConf, repo.Stanza)
	if err != nil {
		return t, repo, err
	}
	m.setPhase(PhaseRestore)
	infos, err := t.Info(ctx)
	if err != nil {
		return t, repo, fmt.Errorf("%s: %w", field, err)
	}
	set, err := backup.ChooseSet(infos, rec.RecoveryTarget)
	if err != nil {
		return t, repo, fmt.Errorf("spec.bootstrap.recovery: %w", err)
	}
	m.log.Info("restoring", "backup", set.Label, "stop", set.Stop)
	if err := os.RemoveAll(staging); err != nil {
		return t, repo, err
	}
	if err := os.Mkdir(staging, 0o700); err != nil {
		return t, repo, err
	}
	if err := t.Restore(ctx, set.Label, staging); err != nil {
		return t, repo, fmt.Errorf("%s: %w", field, err)
	}
	// pgBackRest restores a linked pg_wal as a directory: link it to this
	// cluster's WAL directory (never to wherever the source kept its own).
	return t, repo, moveWAL(staging, m.cfg.WalDir)
}

// recoverySettings are the settings of a recovery in progress.
type recoverySettings struct {
	restore string
	targets [][2]string
}

// replayAndPromote runs PostgreSQL in staging until recovery has promoted
// it (archive: with recovery.signal and the recovery settings; without, a
// clone's own WAL brings it to consistency), then reconciles roles with
// this cluster's credentials.
func (m *Manager) replayAndPromote(ctx context.Context, staging string, archive bool) error {
	m.pgdata = staging
	defer func() { m.pgdata = "" }()
	if err := m.renderConfig(true); err != nil {
		return err
	}
	if err := resetAutoConf(staging); err != nil {
		return err
	}
	if err := setStandby(staging, false); err != nil {
		return err
	}
	if archive {
		if err := WriteFileAtomic(filepath.Join(staging, "recovery.signal"), nil, 0o600); err != nil {
			return err
		}
	}
	pm, err := startPostgres(m.cfg.PGBinDir, staging, m.confFile(), m.cfg.LogFile)
	if err != nil {
		return err
	}
	defer pm.Stop(60 * time.Second)
	conn, err := m.waitConnect(ctx, pm, "postgres")
	if err != nil {
		return fmt.Errorf("recovery: %w", err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	for {
		var inRecovery bool
		if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil {
			select {
			case <-pm.Done():
			case <-time.After(10 * time.Second):
				return fmt.Errorf("recovery: %w", err)
			}
			return fmt.Errorf("recovery: PostgreSQL stopped before reaching the target: %s", pm.exitReason(staging))
		}
		if !inRecovery {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-pm.Done():
			return fmt.Errorf("recovery: PostgreSQL stopped before reaching the target: %s", pm.exitReason(staging))
		case <-time.After(200 * time.Millisecond):
		}
	}
	m.log.Info("recovery promoted")
	if err := m.reconcileRoles(ctx, conn); err != nil {
		return err
	}
	// The next start (from PGDATA) needs no WAL from this one's archive.
	_, err = conn.Exec(ctx, "CHECKPOINT")
	return err
}

// archiveLast, on a primary that archives and is being shut down for
// good, closes the current WAL segment and waits (briefly) until it is in
// the object store: a recovery to the end of the archive then has every
// commit acknowledged before the shutdown, not only those of segments
// that happened to be full. It reports whether the store took it (true
// too when there is nothing to archive). A store that does not answer a
// plain dial, or fails the segment, is not waited for: the closed segment
// stays ready in pg_wal and PostgreSQL pushes it at its next start.
func (m *Manager) archiveLast() bool {
	m.mu.Lock()
	pool, primary := m.pool, m.primary
	m.mu.Unlock()
	// Volume snapshots alone archive nothing.
	if pool == nil || !primary || m.cluster.Spec.Backup == nil || m.cluster.Spec.Backup.BarmanObjectStore == nil {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var seg string
	// pg_switch_wal returns the end of the segment it closed; nothing to
	// switch when no WAL was written since the last switch.
	if err := pool.QueryRow(ctx, `SELECT pg_walfile_name(pg_switch_wal() - 1)`).Scan(&seg); err != nil {
		m.log.Warn("final WAL switch", "err", err)
		return false
	}
	// pgBackRest retries a refused connection or an unknown host for
	// archive-timeout (30 s): a plain dial tells at once.
	if ep, err := v1.ParseEndpointURL(m.cluster.Spec.Backup.BarmanObjectStore.EndpointURL); err == nil {
		addr := net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port))
		dctx, dcancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := (&net.Dialer{}).DialContext(dctx, "tcp", addr)
		dcancel()
		if err != nil {
			m.log.Warn("the object store does not answer: not waiting for the last WAL segment; PostgreSQL archives it at its next start",
				"segment", seg, "store", addr, "err", err)
			return false
		}
		_ = conn.Close()
	}
	for {
		var archived, failed bool
		err := pool.QueryRow(ctx, `SELECT coalesce(last_archived_wal >= $1, false), coalesce(last_failed_wal >= $1, false) FROM pg_stat_archiver`, seg).Scan(&archived, &failed)
		if err == nil && archived {
			m.log.Info("last WAL segment archived", "segment", seg)
			return true
		}
		if err == nil && failed {
			m.log.Warn("the object store failed the last WAL segment; PostgreSQL archives it at its next start", "segment", seg)
			return false
		}
		select {
		case <-ctx.Done():
			m.log.Warn("the last WAL segment is not archived yet; PostgreSQL archives it at its next start", "segment", seg)
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
}
