package instance

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instanceapi"
)

// tablespacesRecheck is how often a primary compares its tablespaces with
// spec.tablespaces when nothing changed (an owner altered by hand is put
// back).
const tablespacesRecheck = 10 * time.Second

// tablespaceDir is where tablespace name's files are on this instance.
func tablespaceDir(cfg *Config, name string) string {
	return filepath.Join(cfg.TablespacesDir, name, "data")
}

// tablespaceLocation is what CREATE TABLESPACE records for name: the same
// on every instance (see Config.TablespaceLocation).
func tablespaceLocation(cfg *Config, name string) string {
	return cfg.TablespaceLocation + "/" + name + "/data"
}

// tablespacePath is where one tablespace's files are on this instance
// (Dir) and the location CREATE TABLESPACE records for it (Location): equal
// on Kubernetes, where every pod mounts its own volume at the same path;
// locally Location resolves to Dir through each instance's working
// directory (instanceapi.LocalTablespaceLocation).
type tablespacePath struct{ Location, Dir string }

// tablespacePaths are this instance's tablespaces for the manifest it runs.
func (m *Manager) tablespacePaths() []tablespacePath {
	if m.cluster == nil || m.cfg.TablespacesDir == "" {
		return nil
	}
	var out []tablespacePath
	for _, t := range m.cluster.Spec.Tablespaces {
		out = append(out, tablespacePath{Location: tablespaceLocation(m.cfg, t.Name), Dir: tablespaceDir(m.cfg, t.Name)})
	}
	return out
}

// tablespaceDirs are the directories of tablespacePaths.
func (m *Manager) tablespaceDirs() []string {
	var dirs []string
	for _, t := range m.tablespacePaths() {
		dirs = append(dirs, t.Dir)
	}
	return dirs
}

// relinkTablespaces points the pg_tblspc links of a fresh copy in dataDir
// that pg_basebackup mapped to a tablespace's Dir back at its Location, so
// that every instance's links read the same, whichever instance it was
// copied from and whichever is primary later.
func relinkTablespaces(dataDir string, tbs []tablespacePath) error {
	loc := map[string]string{}
	for _, t := range tbs {
		if t.Location != t.Dir {
			loc[t.Dir] = t.Location
		}
	}
	if len(loc) == 0 {
		return nil
	}
	links := filepath.Join(dataDir, "pg_tblspc")
	entries, err := os.ReadDir(links)
	if err != nil {
		return fmt.Errorf("reading %s: %w", links, err)
	}
	for _, e := range entries {
		p := filepath.Join(links, e.Name())
		target, err := os.Readlink(p)
		if err != nil {
			continue // not a link: not one pg_basebackup mapped
		}
		want, ok := loc[filepath.Clean(target)]
		if !ok {
			continue
		}
		tmp := p + ".new"
		_ = os.Remove(tmp)
		if err := os.Symlink(want, tmp); err != nil {
			return fmt.Errorf("relinking tablespace %s: %w", e.Name(), err)
		}
		if err := os.Rename(tmp, p); err != nil {
			return fmt.Errorf("relinking tablespace %s: %w", e.Name(), err)
		}
	}
	return nil
}

// ensureLocalTablespaceLink makes the data directory's link to the
// tablespaces beside it (instanceapi.LocalTablespaceLink), when the
// instance uses the local location and its data directory exists: neither
// initdb, pg_basebackup nor pg_rewind leaves one.
func ensureLocalTablespaceLink(cfg *Config) error {
	if cfg.TablespaceLocation != LocalTablespaceLocation || !hasDataDir(cfg.DataDir) {
		return nil
	}
	return ensureLink(filepath.Join(cfg.DataDir, instanceapi.LocalTablespaceLink), cfg.TablespacesDir)
}

// ensureLink makes p a symbolic link to target, or checks it is one.
func ensureLink(p, target string) error {
	got, err := os.Readlink(p)
	switch {
	case err == nil && got == target:
		return nil
	case err == nil:
		return fmt.Errorf("spec.tablespaces: %s must be a link to %s, not to %q", p, target, got)
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("spec.tablespaces: %s must be a link to %s: %w", p, target, err)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("spec.tablespaces: %w", err)
	}
	if err := os.Symlink(target, p); err != nil {
		return fmt.Errorf("spec.tablespaces: %w", err)
	}
	return nil
}

// rewindDir is the working directory pg_rewind runs in. pg_rewind removes
// the data directory's LocalTablespaceLink (it skips pg_dynshmem's
// contents and removes them from the target) while it writes the
// tablespaces through their links, which resolve from its working
// directory: this one has a LocalTablespaceLink of its own, outside the
// data directory.
func rewindDir(cfg *Config) (string, error) {
	if cfg.TablespaceLocation != LocalTablespaceLocation {
		return cfg.DataDir, nil
	}
	d := filepath.Join(cfg.ConfDir, "rewind")
	if err := ensureLink(filepath.Join(d, instanceapi.LocalTablespaceLink), cfg.TablespacesDir); err != nil {
		return "", err
	}
	return d, nil
}

// checkTablespaceName refuses a name that could leave TablespacesDir or
// break out of the quoted location, whatever validation let through.
func checkTablespaceName(name string) error {
	if !v1.IsTablespaceName(name) {
		return fmt.Errorf("spec.tablespaces: %q is not a tablespace name pgward accepts", name)
	}
	return nil
}

// EnsureTablespaceDirs is ensureTablespaceDirs, for the local runtime to
// make them before the managers read a new manifest.
func EnsureTablespaceDirs(cfg *Config, c *v1.Cluster) error { return ensureTablespaceDirs(cfg, c) }

// ensureTablespaceDirs makes every declared tablespace's directory: 0700,
// a real directory (never a link) owned by this process's user, as
// PostgreSQL requires of a tablespace location. On Kubernetes the parent
// is the volume's mount (owned by root, writable through fsGroup), which
// is why the location is a directory inside it.
func ensureTablespaceDirs(cfg *Config, c *v1.Cluster) error {
	if c == nil || len(c.Spec.Tablespaces) == 0 {
		return nil
	}
	if cfg.TablespacesDir == "" {
		return errors.New("spec.tablespaces: this instance's configuration has no tablespace directory (tablespacesDir)")
	}
	for _, t := range c.Spec.Tablespaces {
		if err := checkTablespaceName(t.Name); err != nil {
			return err
		}
		for _, d := range []string{cfg.TablespacesDir, filepath.Dir(tablespaceDir(cfg, t.Name)), tablespaceDir(cfg, t.Name)} {
			if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
				return fmt.Errorf("spec.tablespaces %s: creating %s: %w", t.Name, d, err)
			}
		}
		d := tablespaceDir(cfg, t.Name)
		fi, err := os.Lstat(d)
		if err != nil {
			return fmt.Errorf("spec.tablespaces %s: %w", t.Name, err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !fi.IsDir() || !ok || int(st.Uid) != os.Getuid() {
			return fmt.Errorf("spec.tablespaces %s: %s must be a directory owned by this user", t.Name, d)
		}
		if fi.Mode().Perm() != 0o700 {
			if err := os.Chmod(d, 0o700); err != nil { // #nosec G302 -- a directory: PostgreSQL requires exactly 0700
				return fmt.Errorf("spec.tablespaces %s: %w", t.Name, err)
			}
		}
	}
	return ensureLocalTablespaceLink(cfg)
}

// emptyTablespaceDirs removes what is inside the given directories (the
// files of a data directory being replaced), keeping the directories.
func emptyTablespaceDirs(dirs []string) error {
	for _, d := range dirs {
		entries, err := os.ReadDir(d)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("emptying tablespace directory %s: %w", d, err)
		}
		for _, e := range entries {
			if err := os.RemoveAll(filepath.Join(d, e.Name())); err != nil {
				return fmt.Errorf("emptying tablespace directory %s: %w", d, err)
			}
		}
	}
	return nil
}

// tablespaceState is what the primary has of one tablespace.
type tablespaceState struct {
	owner, location string
}

// tablespacePlan is the statements that make have what want declares:
// CREATE TABLESPACE when it is missing, ALTER TABLESPACE ... OWNER TO when
// the owner differs. A tablespace of that name at another location is not
// pgward's: it is reported, never touched.
func tablespacePlan(want v1.TablespaceConfiguration, have *tablespaceState, location string) ([]string, error) {
	name := pgx.Identifier{want.Name}.Sanitize()
	owner := pgx.Identifier{want.TablespaceOwner()}.Sanitize()
	if have == nil {
		if strings.ContainsAny(location, "'\\\x00") {
			return nil, fmt.Errorf("spec.tablespaces %s: location %q cannot be quoted", want.Name, location)
		}
		return []string{fmt.Sprintf("CREATE TABLESPACE %s OWNER %s LOCATION '%s'", name, owner, location)}, nil
	}
	if have.location != location {
		return nil, fmt.Errorf("spec.tablespaces %s: a tablespace of that name exists at %q, not pgward's %q: rename or drop it", want.Name, have.location, location)
	}
	if have.owner != want.TablespaceOwner() {
		return []string{fmt.Sprintf("ALTER TABLESPACE %s OWNER TO %s", name, owner)}, nil
	}
	return nil, nil
}

// reconcileTablespaces creates and alters the primary's tablespaces as
// spec.tablespaces declares, when the declaration changed or every
// tablespacesRecheck (a zero now forces it); the result is in the status
// (TablespacesError). Managed roles come first in the same tick, so an
// owner declared there exists.
func (m *Manager) reconcileTablespaces(ctx context.Context, now time.Time) {
	m.mu.Lock()
	running := m.primary && m.pool != nil && m.phase == PhaseRunning
	c := m.cluster
	m.mu.Unlock()
	if !running || len(c.Spec.Tablespaces) == 0 {
		return
	}
	spec, _ := json.Marshal(c.Spec.Tablespaces)
	digest := sha256.Sum256(spec)
	if !now.IsZero() && digest == m.tablespacesDigest && now.Sub(m.tablespacesCheckedAt) < tablespacesRecheck {
		return
	}
	err := m.applyTablespaces(ctx, c)
	if err == nil {
		if now.IsZero() {
			now = time.Now()
		}
		m.tablespacesDigest, m.tablespacesCheckedAt = digest, now
	}
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	m.mu.Lock()
	changed := m.tablespacesErr != msg
	m.tablespacesErr = msg
	m.mu.Unlock()
	if changed && err != nil {
		m.log.Error("tablespaces not reconciled; retrying", "err", err)
	}
}

func (m *Manager) applyTablespaces(ctx context.Context, c *v1.Cluster) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := m.quietConn(cctx, "reconcile tablespaces")
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	rows, err := conn.Query(cctx, `SELECT spcname, pg_get_userbyid(spcowner), pg_tablespace_location(oid) FROM pg_tablespace`)
	if err != nil {
		return fmt.Errorf("reading tablespaces: %w", err)
	}
	have := map[string]*tablespaceState{}
	for rows.Next() {
		var name string
		var st tablespaceState
		if err := rows.Scan(&name, &st.owner, &st.location); err != nil {
			rows.Close()
			return err
		}
		have[name] = &st
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading tablespaces: %w", err)
	}
	applied := 0
	for _, t := range c.Spec.Tablespaces {
		if err := checkTablespaceName(t.Name); err != nil {
			return err
		}
		stmts, err := tablespacePlan(t, have[t.Name], tablespaceLocation(m.cfg, t.Name))
		if err != nil {
			return err
		}
		for _, s := range stmts {
			if _, err := conn.Exec(cctx, s); err != nil {
				return fmt.Errorf("spec.tablespaces %s: %s: %w", t.Name, s, err)
			}
			applied++
		}
	}
	if applied > 0 {
		m.log.Info("tablespaces reconciled", "statements", applied)
	}
	return nil
}
