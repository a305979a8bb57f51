package instance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	v1 "github.com/pgward/pgward/api/v1"
)

// standbySignal makes PostgreSQL start as a standby.
const standbySignal = "standby.signal"

// hasDataDir reports whether PGDATA holds an initialised cluster.
func hasDataDir(dataDir string) bool {
	_, err := os.Stat(filepath.Join(dataDir, "PG_VERSION"))
	return err == nil
}

// isStandby reports whether the data directory starts as a standby.
func isStandby(dataDir string) bool {
	_, err := os.Stat(filepath.Join(dataDir, standbySignal))
	return err == nil
}

// stagingDir is where a new data directory is built before it is renamed
// into place, so a crash half-way through initdb or pg_basebackup never
// leaves a PGDATA that looks usable but is not.
func stagingDir(dataDir string) string { return dataDir + ".new" }

// initdb creates a fresh cluster in dir with the bootstrap settings.
func initdb(ctx context.Context, binDir, dir, walDir string, b *v1.BootstrapInitDB) error {
	if err := clearDirs(dir, walDir); err != nil {
		return err
	}
	args := []string{
		"-D", dir,
		"--username", "postgres",
		"--auth-local", "peer",
		"--auth-host", "scram-sha-256",
		"--encoding", b.Encoding,
		"--lc-collate", b.LocaleCollate,
		"--lc-ctype", b.LocaleCType,
		"--no-instructions",
	}
	if b.DataChecksums == nil || *b.DataChecksums {
		args = append(args, "--data-checksums")
	}
	args = append(args, initdbExtraArgs(b)...)
	if walDir != "" {
		args = append(args, "--waldir", walDir)
	}
	return runTool(ctx, binDir, "initdb", nil, args...)
}

// basebackup clones the primary into dir over TLS as streaming_replica,
// authenticated by its client certificate (no password exists for it).
//
// Each declared tablespace goes into this instance's own directory: its
// directory is emptied first (pg_basebackup writes a tablespace only into
// an empty one, and what is there belongs to the data directory being
// replaced), mapped from the location the source reports, and the copy's
// pg_tblspc link is then set back to that location, the same string on
// every instance (see tablespacePath).
func basebackup(ctx context.Context, binDir, dir, walDir, conninfo string, tbs []tablespacePath) error {
	if err := clearDirs(dir, walDir); err != nil {
		return err
	}
	args := []string{"-D", dir, "-X", "stream", "-c", "fast", "--no-password", "-d", conninfo}
	if walDir != "" {
		args = append(args, "--waldir", walDir)
	}
	var dirs []string
	for _, t := range tbs {
		dirs = append(dirs, t.Dir)
		if t.Location != t.Dir {
			args = append(args, "--tablespace-mapping="+t.Location+"="+t.Dir)
		}
	}
	if err := emptyTablespaceDirs(dirs); err != nil {
		return err
	}
	if err := runTool(ctx, binDir, "pg_basebackup", nil, args...); err != nil {
		return err
	}
	return relinkTablespaces(dir, tbs)
}

// clearDirs removes what a failed attempt left in the directories a new
// data directory (and its WAL directory) is built in.
func clearDirs(dirs ...string) error {
	for _, d := range dirs {
		if d == "" {
			continue
		}
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("clearing %s: %w", d, err)
		}
	}
	return nil
}

// moveWAL puts a restored data directory's pg_wal into walDir and links
// it there, as initdb --waldir would have.
func moveWAL(dataDir, walDir string) error {
	if walDir == "" {
		return nil
	}
	if err := os.RemoveAll(walDir); err != nil {
		return fmt.Errorf("clearing %s: %w", walDir, err)
	}
	pgWAL := filepath.Join(dataDir, "pg_wal")
	if err := os.Rename(pgWAL, walDir); err != nil {
		// On Kubernetes the WAL has a volume of its own: a rename cannot
		// cross it, so the restored WAL is copied over and then removed.
		if !errors.Is(err, syscall.EXDEV) {
			return fmt.Errorf("moving pg_wal to %s: %w", walDir, err)
		}
		if err := copyWAL(pgWAL, walDir); err != nil {
			return fmt.Errorf("copying pg_wal to %s: %w", walDir, err)
		}
		if err := os.RemoveAll(pgWAL); err != nil {
			return fmt.Errorf("removing the copied %s: %w", pgWAL, err)
		}
	}
	if err := os.Symlink(walDir, pgWAL); err != nil {
		return fmt.Errorf("linking pg_wal to %s: %w", walDir, err)
	}
	return nil
}

// copyWAL copies the WAL directory src to dst, which it creates: the
// directories 0700 and the files 0600, as PostgreSQL keeps them. Anything
// but a directory or a regular file (a link could point anywhere) is an
// error.
func copyWAL(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.Mkdir(to, 0o700)
		case d.Type().IsRegular():
			return copyFile(path, to)
		default:
			return fmt.Errorf("%s is neither a directory nor a regular file", path)
		}
	})
}

func copyFile(from, to string) error {
	in, err := os.Open(from) // #nosec G304 -- a file of the instance's own restored pg_wal
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) // #nosec G304 -- under the instance's WAL directory
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

// promoteStaging renames a finished staging directory into PGDATA.
func promoteStaging(staging, dataDir string) error {
	if err := os.Rename(staging, dataDir); err != nil {
		return fmt.Errorf("moving %s into place: %w", staging, err)
	}
	d, err := os.Open(filepath.Dir(dataDir))
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }()
	return d.Sync()
}

// setStandby creates or removes standby.signal so the data directory starts
// in the role the config asks for.
func setStandby(dataDir string, standby bool) error {
	p := filepath.Join(dataDir, standbySignal)
	if standby {
		return WriteFileAtomic(p, nil, 0o600)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", p, err)
	}
	return nil
}

// resetAutoConf empties postgresql.auto.conf. pg_basebackup and pg_rewind
// copy it from the source, and it is read after our configuration, so any
// ALTER SYSTEM on one instance would silently override the declared
// configuration everywhere. pgward's configuration is declarative.
func resetAutoConf(dataDir string) error {
	const header = "# Managed by pgward: ALTER SYSTEM settings are reset at every start.\n"
	return WriteFileAtomic(filepath.Join(dataDir, "postgresql.auto.conf"), []byte(header), 0o600)
}

// shutdownEndLSN reads, from a cleanly shut down data directory, the
// position just past the start of its shutdown checkpoint record: a standby
// whose received LSN reaches it has every byte the primary ever wrote.
func shutdownEndLSN(ctx context.Context, binDir, dataDir string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "pg_controldata"), dataDir)
	cmd.Env = pgEnv()
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("pg_controldata: %w", err)
	}
	return parseControlData(string(out))
}

func parseControlData(out string) (string, error) {
	var state, loc string
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "Database cluster state":
			state = strings.TrimSpace(v)
		case "Latest checkpoint location":
			loc = strings.TrimSpace(v)
		}
	}
	if state != "shut down" {
		return "", fmt.Errorf("data directory is not cleanly shut down (state %q)", state)
	}
	hi, lo, ok := strings.Cut(loc, "/")
	if !ok {
		return "", fmt.Errorf("unexpected checkpoint location %q", loc)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return "", fmt.Errorf("unexpected checkpoint location %q", loc)
	}
	lsn := h<<32 | l
	lsn++
	return fmt.Sprintf("%X/%X", lsn>>32, lsn&0xFFFFFFFF), nil
}

// initdbExtraArgs are the arguments of bootstrap.initdb's locale, locale
// provider, WAL segment size and allow-listed options (api/v1 validated
// every value: no option or value here can change what pgward relies on).
func initdbExtraArgs(b *v1.BootstrapInitDB) []string {
	var args []string
	if b.Locale != "" {
		args = append(args, "--locale", b.Locale)
	}
	if b.LocaleProvider == v1.LocaleProviderICU {
		args = append(args, "--locale-provider", "icu", "--icu-locale", b.ICULocale)
	}
	if n := b.WalSegSizeArg(); n != "" {
		args = append(args, "--wal-segsize", n)
	}
	for _, o := range b.Options {
		if o == "-k" || o == "--data-checksums" {
			if b.DataChecksums != nil && *b.DataChecksums {
				continue // already there
			}
			o = "--data-checksums"
		}
		args = append(args, o)
	}
	return args
}
