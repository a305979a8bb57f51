package instance

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const snapshotManifest = `apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata: {name: restored, namespace: db}
spec:
  instances: 2
  storage: {size: 1Gi}
  bootstrap:
    recovery:
      volumeSnapshots:
        storage: {name: SNAP, kind: VolumeSnapshot, apiGroup: snapshot.storage.k8s.io}
`

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestPrepareSnapshotImport: a data volume restored from another
// cluster's snapshot has that instance's state and configuration
// forgotten (its epoch, applied manifest, pgBackRest credentials) and its
// PGDATA moved aside, so the instance reports empty and is
// bootstrapped as this cluster's; once marked, a restart changes nothing
// (the bootstrapped data stays); a new cluster recovered from another
// snapshot onto the same name imports again; an empty volume (a replica's)
// is only marked.
func TestPrepareSnapshotImport(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	root := t.TempDir()
	cfg := &Config{DataDir: filepath.Join(root, "pgdata"), ConfDir: filepath.Join(root, "conf")}
	manifest := func(snap string) []byte { return []byte(strings.Replace(snapshotManifest, "SNAP", snap, 1)) }
	// The source instance's volume.
	writeFile(t, filepath.Join(cfg.DataDir, "PG_VERSION"), "15\n")
	writeFile(t, filepath.Join(cfg.DataDir, "standby.signal"), "")
	writeFile(t, statePath(cfg.ConfDir), `{"epoch": 7, "seenEpoch": 9}`)
	writeFile(t, filepath.Join(cfg.ConfDir, "pgbackrest.conf"), "repo1-s3-key-secret=the-source's\n")
	writeFile(t, appliedFile(cfg), "the source's manifest")

	if err := prepareSnapshotImport(cfg, manifest("snap-a"), log); err != nil {
		t.Fatal(err)
	}
	if hasDataDir(cfg.DataDir) || !hasDataDir(snapshotDir(cfg.DataDir)) {
		t.Fatal("PGDATA was not moved aside: the instance would not report empty")
	}
	ents, _ := os.ReadDir(cfg.ConfDir)
	if len(ents) != 1 || ents[0].Name() != snapshotMarker {
		t.Fatalf("ConfDir holds %v, want only the marker", ents)
	}
	st, err := loadPersisted(cfg.ConfDir, Endpoint{})
	if err != nil || st.Epoch != 0 || st.SeenEpoch != 0 {
		t.Fatalf("state %+v (%v), want a fresh one", st, err)
	}

	// Bootstrapped (the set-aside directory moved into place): a restart
	// leaves it alone.
	if err := promoteStaging(snapshotDir(cfg.DataDir), cfg.DataDir); err != nil {
		t.Fatal(err)
	}
	writeFile(t, statePath(cfg.ConfDir), `{"epoch": 1}`)
	if err := prepareSnapshotImport(cfg, manifest("snap-a"), log); err != nil {
		t.Fatal(err)
	}
	if !hasDataDir(cfg.DataDir) {
		t.Fatal("a restart moved the bootstrapped data away")
	}
	if st, _ := loadPersisted(cfg.ConfDir, Endpoint{}); st.Epoch != 1 {
		t.Fatalf("a restart forgot this cluster's own state: %+v", st)
	}

	// The same name recovered from another snapshot: imported again.
	if err := prepareSnapshotImport(cfg, manifest("snap-b"), log); err != nil {
		t.Fatal(err)
	}
	if hasDataDir(cfg.DataDir) {
		t.Fatal("a recovery from another snapshot kept the earlier data in place")
	}

	// An empty volume is marked only.
	empty := &Config{DataDir: filepath.Join(root, "r2", "pgdata"), ConfDir: filepath.Join(root, "r2", "conf")}
	if err := os.MkdirAll(empty.ConfDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := prepareSnapshotImport(empty, manifest("snap-a"), log); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(snapshotDir(empty.DataDir)); err == nil {
		t.Fatal("an empty volume got a snapshot directory")
	}

	// Not a snapshot recovery: nothing happens.
	plain := strings.Replace(string(manifest("x")), "    recovery:\n      volumeSnapshots:\n        storage: {name: x, kind: VolumeSnapshot, apiGroup: snapshot.storage.k8s.io}\n", "    initdb: {}\n", 1)
	other := &Config{DataDir: filepath.Join(root, "o", "pgdata"), ConfDir: filepath.Join(root, "o", "conf")}
	writeFile(t, filepath.Join(other.DataDir, "PG_VERSION"), "15\n")
	writeFile(t, statePath(other.ConfDir), `{"epoch": 3}`)
	if err := prepareSnapshotImport(other, []byte(plain), log); err != nil {
		t.Fatal(err)
	}
	if !hasDataDir(other.DataDir) {
		t.Fatal("an initdb cluster's data was moved")
	}
}

// TestSnapshotWAL: the restored data directory's WAL must end up in this
// cluster's WAL directory: a link to it is kept (the WAL volume was
// restored too), a pg_wal directory is moved into it, and a link to any
// other place, or to a WAL volume this cluster does not have, is refused
// naming the fields to set.
func TestSnapshotWAL(t *testing.T) {
	root := t.TempDir()
	walDir := filepath.Join(root, "wal", "pg_wal")
	mk := func(name string) string {
		d := filepath.Join(root, name)
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		return d
	}
	// A link to this cluster's WAL directory, which the WAL snapshot filled.
	linked := mk("linked")
	writeFile(t, filepath.Join(walDir, "000000010000000000000003"), "wal")
	if err := os.Symlink(walDir, filepath.Join(linked, "pg_wal")); err != nil {
		t.Fatal(err)
	}
	if err := snapshotWAL(linked, walDir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(walDir, "000000010000000000000003")); err != nil {
		t.Fatal("the restored WAL is gone")
	}
	if err := snapshotWAL(linked, ""); err == nil || !strings.Contains(err.Error(), "spec.walStorage") {
		t.Fatalf("a linked pg_wal without spec.walStorage: %v", err)
	}
	elsewhere := mk("elsewhere")
	if err := os.Symlink("/somewhere/else", filepath.Join(elsewhere, "pg_wal")); err != nil {
		t.Fatal(err)
	}
	if err := snapshotWAL(elsewhere, walDir); err == nil {
		t.Fatal("a pg_wal linked elsewhere was accepted")
	}
	// A pg_wal directory (the source had no WAL volume) moves in.
	inline := mk("inline")
	writeFile(t, filepath.Join(inline, "pg_wal", "000000010000000000000009"), "wal")
	wal2 := filepath.Join(mk("wal2"), "pg_wal")
	if err := snapshotWAL(inline, wal2); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(wal2, "000000010000000000000009")); err != nil {
		t.Fatal("pg_wal was not moved into the WAL directory")
	}
	if target, err := os.Readlink(filepath.Join(inline, "pg_wal")); err != nil || target != wal2 {
		t.Fatalf("pg_wal links to %q (%v), want %s", target, err, wal2)
	}
}
