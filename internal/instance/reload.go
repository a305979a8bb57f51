package instance

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	v1 "github.com/pgward/pgward/api/v1"
)

// TLSCheckInterval is how often the manager looks for renewed certificates
// and a changed manifest.
const TLSCheckInterval = 10 * time.Second

// reloadIfChanged makes PostgreSQL pick up renewed certificates (it
// re-reads its SSL files on reload; the status port already does per
// connection) and a changed manifest (parameters, pg_hba, pg_ident are
// re-rendered). Parameters that need a restart show as pendingRestart.
func (m *Manager) reloadIfChanged(ctx context.Context) {
	if _, err := m.tls.load(); err != nil {
		m.log.Error("TLS material", "err", err)
		return
	}
	// Compared with what PostgreSQL last read, not with the previous load:
	// the status port loads the files at every handshake.
	loaded := m.tls.state()
	m.mu.Lock()
	pool, primary := m.pool, m.primary
	certs := loaded.gen != m.pgTLS.gen
	m.mu.Unlock()
	if pool == nil {
		// Nothing to reload, and a changed manifest waits for a server
		// that can check it.
		return
	}
	next, raw := m.reloadManifest()
	if !certs && next == nil {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if next != nil {
		if err := m.applyManifest(rctx, pool, next, raw, primary); err != nil {
			m.log.Error("refusing a manifest change; the instance keeps its running configuration", "err", err)
			m.mu.Lock()
			m.configErr = err.Error()
			m.mu.Unlock()
			if !certs {
				return
			}
		}
	}
	if _, err := pool.Exec(rctx, "SELECT pg_reload_conf()"); err != nil {
		m.log.Error("reloading configuration", "err", err)
		return
	}
	if certs {
		m.mu.Lock()
		m.pgTLS = loaded
		m.mu.Unlock()
	}
	m.log.Info("configuration reloaded", "certificates", certs, "manifest", next != nil)
}

// applyManifest makes next the running configuration if PostgreSQL
// accepts it, and leaves everything as it was if not: postgresql.conf is
// checked by the server's own parser (postgres -C) before it replaces the
// current file, pg_hba.conf and pg_ident.conf by the running server
// (pg_hba_file_rules and pg_ident_file_mappings read the files on disk
// without loading them) and put back if refused. A refused file must never
// stay on disk: the next start, a failover or a crash, would fail on it.
func (m *Manager) applyManifest(ctx context.Context, pool *pgxpool.Pool, next *v1.Cluster, raw []byte, primary bool) error {
	// Before PostgreSQL can need them: the primary creates a tablespace
	// added here, and this instance replays it (or creates it) in them.
	if err := ensureTablespaceDirs(m.cfg, next); err != nil {
		return err
	}
	files, err := m.renderFiles(next, primary)
	if err != nil {
		return err
	}
	scratch := filepath.Join(m.cfg.ConfDir, "check")
	defer func() { _ = os.RemoveAll(scratch) }()
	if err := CheckConfig(ctx, m.cfg.PGBinDir, scratch, next, files["postgresql.conf"], nil); err != nil {
		return err
	}
	old := map[string][]byte{}
	for _, name := range []string{"pg_hba.conf", "pg_ident.conf"} {
		path := filepath.Join(m.cfg.ConfDir, name)
		b, err := os.ReadFile(path) // #nosec G304 -- pgward's own file
		if err != nil {
			return err
		}
		old[name] = b
		if err := WriteFileAtomic(path, files[name], 0o600); err != nil {
			return err
		}
	}
	restore := func() {
		for name, b := range old {
			if err := WriteFileAtomic(filepath.Join(m.cfg.ConfDir, name), b, 0o600); err != nil {
				m.log.Error("restoring the last good file", "file", name, "err", err)
			}
		}
	}
	var refused RefusedError
	for _, q := range []struct{ field, sql string }{
		{"spec.postgresql.pg_hba", `SELECT line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL ORDER BY line_number`},
		{"spec.postgresql.pg_ident", `SELECT line_number, error FROM pg_ident_file_mappings WHERE error IS NOT NULL ORDER BY line_number`},
	} {
		rows, err := pool.Query(ctx, q.sql)
		if err != nil {
			restore()
			return fmt.Errorf("checking %s: %w", q.field, err)
		}
		for rows.Next() {
			var line int
			var msg string
			if err := rows.Scan(&line, &msg); err != nil {
				rows.Close()
				restore()
				return err
			}
			refused = append(refused, Refusal{Field: q.field, Message: fmt.Sprintf("line %d of the rendered file: %s", line, msg)})
		}
		rows.Close()
	}
	if len(refused) > 0 {
		restore()
		return refused
	}
	if err := WriteFileAtomic(m.confFile(), files["postgresql.conf"], 0o600); err != nil {
		restore()
		return err
	}
	if conf, ok := files[backupConf]; ok {
		if err := WriteFileAtomic(filepath.Join(m.cfg.ConfDir, backupConf), conf, 0o600); err != nil {
			return err
		}
	}
	m.mu.Lock()
	m.cluster = next
	m.configErr = ""
	m.mu.Unlock()
	if err := WriteFileAtomic(m.appliedFile(), raw, 0o600); err != nil {
		m.log.Error("recording the applied manifest", "err", err)
	}
	return nil
}

// reloadManifest re-reads the cluster manifest when its file changed and
// returns it (and its text) if it is valid, a valid update of the current
// one, and different from it; nil otherwise.
func (m *Manager) reloadManifest() (*v1.Cluster, []byte) {
	fi, err := os.Stat(m.cfg.ClusterFile)
	if err != nil || fi.ModTime().Equal(m.manifestMod) {
		return nil, nil
	}
	m.manifestMod = fi.ModTime()
	b, err := os.ReadFile(m.cfg.ClusterFile)
	if err != nil {
		m.log.Error("reading the changed manifest", "err", err)
		return nil, nil
	}
	c, err := v1.LoadAndValidate(b)
	if err == nil {
		err = v1.ValidateUpdate(m.cluster, c).ToAggregate()
	}
	if err != nil {
		m.log.Error("ignoring an invalid manifest change", "err", err)
		m.mu.Lock()
		m.configErr = "manifest change refused: " + err.Error()
		m.mu.Unlock()
		return nil, nil
	}
	if reflect.DeepEqual(c.Spec, m.cluster.Spec) {
		return nil, nil
	}
	return c, b
}
