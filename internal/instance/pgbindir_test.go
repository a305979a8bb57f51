package instance

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakePostgres writes a postgres that answers --version with version.
func fakePostgres(t *testing.T, version string) string {
	t.Helper()
	dir := t.TempDir()
	script := "#!/bin/sh\necho 'postgres (PostgreSQL) " + version + "'\n"
	if err := os.WriteFile(filepath.Join(dir, "postgres"), []byte(script), 0o700); err != nil { // #nosec G306 -- a test executable
		t.Fatal(err)
	}
	return dir
}

// TestResolvePGBinDir: an image's PostgreSQL is found where configured, or
// else where images keep it; another major is refused, naming it.
func TestResolvePGBinDir(t *testing.T) {
	ctx := context.Background()
	dir := fakePostgres(t, "15.8 (Debian 15.8-1.pgdg120+1)")
	if got, err := ResolvePGBinDir(ctx, dir); err != nil || got != dir {
		t.Errorf("configured 15: %q, %v", got, err)
	}
	_, err := ResolvePGBinDir(ctx, fakePostgres(t, "18.1"))
	if err == nil || !strings.Contains(err.Error(), "is PostgreSQL 18: pgward supports PostgreSQL 15") {
		t.Errorf("configured 18: %v", err)
	}
	// The configured directory is empty: the real PostgreSQL 15 of this
	// machine (Debian's path) is found instead.
	if _, err := os.Stat("/usr/lib/postgresql/15/bin/postgres"); err == nil {
		t.Setenv("PATH", "/nonexistent")
		if got, err := ResolvePGBinDir(ctx, t.TempDir()); err != nil || got != "/usr/lib/postgresql/15/bin" {
			t.Errorf("discovered: %q, %v", got, err)
		}
	}
}

func TestCopyExecutable(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.WriteFile(src, []byte("binary"), 0o600); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(dir, "pgward")
	if err := copyExecutable(src, dest); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dest)
	if err != nil || fi.Mode().Perm() != 0o555 {
		t.Fatalf("dest %v %v", fi, err)
	}
	if b, _ := os.ReadFile(dest); string(b) != "binary" {
		t.Errorf("content %q", b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("left behind: %v", entries)
	}
}
