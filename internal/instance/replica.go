package instance

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pgward/pgward/internal/backup"
	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/pgconf"
)

// replicaPassFile holds, while this instance is a designated primary
// following a source that authenticates it by password, that password
// (pgpass, 0600): primary_conninfo names the file, never the password.
const replicaPassFile = "replica-source.pgpass"

// bootstrapReplicaHead makes staging a copy of spec.replica.source that
// starts as a standby of it: pg_basebackup over verified TLS
// (bootstrap.pg_basebackup) or a restore from its object store
// (bootstrap.recovery). Nothing is promoted and no role is touched: the
// data and its roles stay the source's until the cluster is promoted.
func (m *Manager) bootstrapReplicaHead(ctx context.Context, staging string) error {
	c := m.cluster
	src := c.ReplicaSource()
	if src == nil {
		return errors.New("spec.replica.source is not an entry of spec.externalClusters")
	}
	field := fmt.Sprintf("spec.externalClusters[%s]", src.Name)
	switch b := c.Spec.Bootstrap; {
	case b.PgBaseBackup != nil:
		conninfo, cleanup, err := m.externalConnInfo(src, clonePassFile)
		if err != nil {
			return fmt.Errorf("%s: %w", field, err)
		}
		defer cleanup()
		m.setPhase(PhaseClone)
		if err := basebackup(ctx, m.cfg.PGBinDir, staging, m.cfg.WalDir, conninfo, m.tablespacePaths()); err != nil {
			return fmt.Errorf("%s: %w", field, err)
		}
	case b.Recovery != nil:
		if _, _, err := m.restoreFromSource(ctx, staging); err != nil {
			return err
		}
	default:
		return errors.New("spec.bootstrap: a replica cluster starts from pg_basebackup or recovery")
	}
	if err := resetAutoConf(staging); err != nil {
		return err
	}
	return setStandby(staging, true)
}

// designate makes this instance the replica cluster's designated primary
// at cmd.Epoch: a standby that follows the source cluster (after a
// failover inside the replica cluster, it stops following the old
// designated primary and follows the source instead).
func (m *Manager) designate(ctx context.Context, cmd instanceapi.Command) error {
	if !hasDataDir(m.cfg.DataDir) {
		return errors.New("no data directory: needs recreate")
	}
	m.mu.Lock()
	pm, isPrimary, pool := m.pm, m.primary, m.pool
	m.mu.Unlock()
	if pm != nil && isPrimary {
		return errors.New("running as a primary: a primary cannot follow the replica cluster's source")
	}
	if pm == nil && !isStandby(m.cfg.DataDir) {
		return errors.New("the data directory is a primary's: it cannot follow the replica cluster's source")
	}
	if err := m.update(func(p *persisted) {
		p.Epoch, p.Primary, p.Fenced, p.Designated, p.SyncStandbys = cmd.Epoch, m.self(), false, true, ""
	}); err != nil {
		return err
	}
	if pm == nil || pool == nil {
		return m.startPostgres(ctx, false)
	}
	if err := m.renderConfig(false); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		return fmt.Errorf("reloading primary_conninfo: %w", err)
	}
	m.log.Info("designated primary: following the source cluster", "epoch", cmd.Epoch)
	return nil
}

// sourceSettings fills in, for a designated primary, how it follows the
// source: primary_conninfo from the source's connectionParameters and
// secrets (streaming), restore_command from its object store (WAL replay),
// or both (streaming with the archive as fallback). It returns the
// pgBackRest configuration to write beside the others, if any.
func (m *Manager) sourceSettings(in *pgconf.Instance, pgdata string) ([]byte, error) {
	m.mu.Lock()
	c := m.cluster
	m.mu.Unlock()
	src := c.ReplicaSource()
	if src == nil {
		return nil, errors.New("designated primary without spec.replica.source")
	}
	field := fmt.Sprintf("spec.externalClusters[%s]", src.Name)
	if len(src.ConnectionParameters) > 0 {
		conninfo, _, err := m.externalConnInfo(src, replicaPassFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		in.PrimaryConnInfo = conninfo + " application_name=" + quoteConnValue(m.cfg.Name)
	}
	if src.BarmanObjectStore == nil {
		return nil, nil
	}
	repo, conf, err := m.repoFiles(src.BarmanObjectStore, "", pgdata)
	if err != nil {
		return nil, fmt.Errorf("%s.barmanObjectStore: %w", field, err)
	}
	bin, err := backup.FindBin()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(m.backupStateDir(), 0o700); err != nil {
		return nil, err
	}
	in.RestoreCommand = backup.RestoreCommand(bin, filepath.Join(m.cfg.ConfDir, recoverySourceConf), repo.Stanza)
	return conf, nil
}

// forgetSource removes what only following the source needed (its
// password file and object store configuration), once this instance is
// no longer a designated primary.
func (m *Manager) forgetSource() {
	for _, f := range []string{replicaPassFile, recoverySourceConf} {
		if err := os.Remove(filepath.Join(m.cfg.ConfDir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			m.log.Warn("removing the replica source's file", "file", f, "err", err)
		}
	}
}
