package instance

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/pgward/pgward/api/v1"
)

// A cluster recovered from volume snapshots (spec.bootstrap.recovery.
// volumeSnapshots) starts with its first instance's volumes created from
// another cluster's: PGDATA, and beside it that instance's manager state
// and rendered configuration (ConfDir lives on the data volume). None of
// the latter may be used: the epoch, the primary it followed, the
// applied manifest, pgBackRest's configuration and credentials are the
// other cluster's. So before anything reads them, the instance manager
// forgets ConfDir and moves PGDATA aside (into snapshotDir, on the same
// volume), and the instance reports itself empty: the planner
// bootstraps it like a new cluster, and the bootstrap starts PostgreSQL on
// that directory with this cluster's configuration, replays the WAL the
// snapshots hold, promotes onto a new timeline and gives the roles this
// cluster's credentials (bootstrapSnapshot).

// snapshotMarker, in ConfDir, names the cluster and data snapshot whose
// import this volume went through (or, for a volume that started empty,
// that it belongs to that cluster): the import happens once.
const snapshotMarker = "snapshot-import"

// snapshotIdentity is what snapshotMarker holds for cluster c: its
// namespace and name, and the data snapshot, so that a cluster recreated
// under the same name from another snapshot (or from a snapshot of an
// earlier recovery) imports it again.
func snapshotIdentity(c *v1.Cluster) string {
	return c.Namespace + "/" + c.Name + "@" + c.Spec.SnapshotDataSource().Storage.Name + "\n"
}

// prepareSnapshotImport runs before the manager reads anything from
// ConfDir. Each step can be repeated: a crash half-way repeats it.
func prepareSnapshotImport(cfg *Config, manifest []byte, log *slog.Logger) error {
	c, err := v1.LoadAndValidate(manifest)
	if err != nil || c.Spec.SnapshotDataSource() == nil {
		// An invalid manifest is reported by startingManifest.
		return nil
	}
	id := snapshotIdentity(c)
	marker := filepath.Join(cfg.ConfDir, snapshotMarker)
	b, err := os.ReadFile(marker) // #nosec G304 -- our own marker
	switch {
	case err == nil && string(b) == id:
		return nil
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("reading %s: %w", marker, err)
	}
	if hasDataDir(cfg.DataDir) {
		log.Info("the data volume was restored from a snapshot: forgetting the other cluster's instance state and configuration",
			"snapshot", c.Spec.SnapshotDataSource().Storage.Name)
		if err := clearDir(cfg.ConfDir); err != nil {
			return err
		}
		aside := snapshotDir(cfg.DataDir)
		if err := os.RemoveAll(aside); err != nil {
			return fmt.Errorf("clearing %s: %w", aside, err)
		}
		if err := promoteStaging(cfg.DataDir, aside); err != nil {
			return err
		}
	}
	return WriteFileAtomic(marker, []byte(id), 0o600)
}

// snapshotDir is where a restored PGDATA waits for its bootstrap, beside
// PGDATA on the same volume. Unlike the staging directory, which a start
// clears as a failed attempt's leftover, it survives restarts until the
// bootstrap moves it into place.
func snapshotDir(dataDir string) string { return dataDir + ".snapshot" }

// clearDir removes everything in dir, keeping dir.
func clearDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("reading %s: %w", dir, err)
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("clearing %s: %w", dir, err)
		}
	}
	return nil
}

// snapshotRestoreCommand makes PostgreSQL's archive recovery read only the
// WAL in pg_wal: every archive fetch fails, so recovery ends at the end of
// the snapshot's WAL and promotes onto a new timeline (recovery.signal
// needs a restore_command; `false` is a shell builtin).
const snapshotRestoreCommand = "false"

// bootstrapSnapshot starts the data directory prepareSnapshotImport moved
// aside (staging is snapshotDir here) as this cluster's: its own
// configuration, pg_hba and certificates (rendered by replayAndPromote),
// no standby.signal (a standby's snapshot has one), the WAL the snapshots
// hold replayed, a new timeline, and the roles given this cluster's
// credentials; its own stanza in its own object store, if it has one.
func (m *Manager) bootstrapSnapshot(ctx context.Context, staging string) error {
	if !hasDataDir(staging) {
		return errors.New("spec.bootstrap.recovery.volumeSnapshots.storage: the data volume restored from the snapshot holds no PostgreSQL data directory (was it a pgward instance's data volume?)")
	}
	if err := snapshotWAL(staging, m.cfg.WalDir); err != nil {
		return err
	}
	// A stale pid file (a snapshot of a running instance) would stop
	// PostgreSQL from starting; this directory runs nowhere else.
	if err := os.Remove(filepath.Join(staging, "postmaster.pid")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := m.createStanza(ctx, staging); err != nil {
		return err
	}
	m.setPhase(PhaseRecovery)
	m.recovery = &recoverySettings{restore: snapshotRestoreCommand}
	defer func() { m.recovery = nil }()
	return m.replayAndPromote(ctx, staging, true)
}

// snapshotWAL puts the snapshot's WAL where this cluster keeps it: pg_wal
// linked to walDir (spec.walStorage) must already be that link, since
// volumeSnapshots.walStorage restored the WAL volume; a pg_wal directory
// is moved into walDir; without walDir, pg_wal must be a directory.
func snapshotWAL(pgdata, walDir string) error {
	pgWAL := filepath.Join(pgdata, "pg_wal")
	fi, err := os.Lstat(pgWAL)
	if err != nil {
		return fmt.Errorf("the restored data directory: %w", err)
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		target, err := os.Readlink(pgWAL)
		if err != nil {
			return err
		}
		if walDir == "" || filepath.Clean(target) != filepath.Clean(walDir) {
			return fmt.Errorf("the restored data directory keeps its WAL in %s, on a volume of its own: set spec.walStorage and bootstrap.recovery.volumeSnapshots.walStorage to that volume's snapshot", strings.TrimSpace(target))
		}
		if _, err := os.Stat(walDir); err != nil {
			return fmt.Errorf("spec.bootstrap.recovery.volumeSnapshots.walStorage: the WAL volume holds no WAL directory: %w", err)
		}
		return nil
	}
	if walDir == "" {
		return nil
	}
	return moveWAL(pgdata, walDir)
}
