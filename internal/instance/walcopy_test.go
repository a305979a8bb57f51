package instance

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMoveWALAcrossFilesystems: a restored pg_wal moves into a WAL
// directory on another file system (on Kubernetes the WAL volume), where
// a rename fails with EXDEV: it is copied (directories 0700, files 0600),
// removed, and pg_wal links to it.
func TestMoveWALAcrossFilesystems(t *testing.T) {
	shm, err := os.MkdirTemp("/dev/shm", "walcopy")
	if err != nil {
		t.Skipf("no tmpfs at /dev/shm to cross file systems: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(shm) })
	data := t.TempDir()
	pgWAL := filepath.Join(data, "pg_wal")
	if err := os.MkdirAll(filepath.Join(pgWAL, "archive_status"), 0o700); err != nil {
		t.Fatal(err)
	}
	seg := "000000010000000000000001"
	if err := os.WriteFile(filepath.Join(pgWAL, seg), []byte("wal"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pgWAL, "archive_status", seg+".done"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	walDir := filepath.Join(shm, "wal", "pg_wal")
	if err := os.Mkdir(filepath.Dir(walDir), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := moveWAL(data, walDir); err != nil {
		t.Fatal(err)
	}
	if link, err := os.Readlink(pgWAL); err != nil || link != walDir {
		t.Fatalf("pg_wal: %q %v", link, err)
	}
	for path, mode := range map[string]os.FileMode{walDir: 0o700, filepath.Join(walDir, "archive_status"): 0o700,
		filepath.Join(walDir, seg): 0o600, filepath.Join(walDir, "archive_status", seg+".done"): 0o600} {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v %v, want %04o", path, fi.Mode(), err, mode)
		}
	}
	if b, err := os.ReadFile(filepath.Join(pgWAL, seg)); err != nil || string(b) != "wal" {
		t.Errorf("segment through the link: %q %v", b, err)
	}

	// A link inside the restored pg_wal could point anywhere: refused.
	other := t.TempDir()
	if err := os.MkdirAll(filepath.Join(other, "pg_wal"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(other, "pg_wal", "x")); err != nil {
		t.Fatal(err)
	}
	if err := moveWAL(other, filepath.Join(shm, "wal", "pg_wal2")); err == nil || !strings.Contains(err.Error(), "neither a directory nor a regular file") {
		t.Errorf("a link in pg_wal: %v", err)
	}
}
