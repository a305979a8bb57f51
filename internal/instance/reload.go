package instance

import (
	"context"
	"errors"
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
	_ = m.reload(ctx, false)
}

// reload is reloadIfChanged; force (a reload request) re-reads the
// manifest whatever its modification time and reloads PostgreSQL even if
// nothing changed, and returns why the configuration the files say is not
// in effect, if it is not.
func (m *Manager) reload(ctx context.Context, force bool) error {
	if _, err := m.tls.load(); err != nil {
		m.log.Error("TLS material", "err", err)
		return fmt.Errorf("TLS material: %w", err)
	}
	// Compared with what PostgreSQL last read, not with the previous load:
	// the status port loads the files at every handshake.
	loaded := m.tls.state()
	m.mu.Lock()
	pool, primary := m.pool, m.primary
	certs := loaded.gen != m.pgTLS.gen
	m.mu.Unlock()
	if pool == nil {
		if force {
			return errors.New("PostgreSQL is not running here: it reads the configuration when it starts")
		}
		// Nothing to reload, and a changed manifest waits for a server
		// that can check it.
		return nil
	}
	if force {
		m.manifestMod = time.Time{}
	}
	next, raw := m.reloadManifest()
	hbaSecrets := next == nil && m.hbaSecretsChanged()
	if !certs && next == nil && !force && !hbaSecrets {
		return nil
	}
	if hbaSecrets {
		if err := m.renderConfig(primary); err != nil {
			m.log.Error("rendering pg_hba.conf with its changed secret", "err", err)
			return fmt.Errorf("rendering pg_hba.conf with its changed secret: %w", err)
		}
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var applyErr error
	if next != nil {
		if err := m.applyManifest(rctx, pool, next, raw, primary); err != nil {
			m.log.Error("refusing a manifest change; the instance keeps its running configuration", "err", err)
			m.mu.Lock()
			m.configErr = err.Error()
			m.mu.Unlock()
			applyErr = err
			if !certs && !force {
				return err
			}
		}
	}
	// A manifest applied here counts as loaded (Status.ManifestSHA256)
	// only once PostgreSQL has read the files again: pg_reload_conf()
	// only signals the postmaster, and until then pg_settings shows no
	// restart pending for the new values.
	confirm := force || (next != nil && applyErr == nil)
	m.mu.Lock()
	sum := m.clusterSum
	m.mu.Unlock()
	var loadedAt time.Time
	if confirm {
		if err := pool.QueryRow(rctx, "SELECT pg_conf_load_time()").Scan(&loadedAt); err != nil {
			return fmt.Errorf("reading pg_conf_load_time(): %w", err)
		}
	}
	if _, err := pool.Exec(rctx, "SELECT pg_reload_conf()"); err != nil {
		m.log.Error("reloading configuration", "err", err)
		return fmt.Errorf("reloading configuration: %w", err)
	}
	if certs {
		m.mu.Lock()
		m.pgTLS = loaded
		m.mu.Unlock()
	}
	m.log.Info("configuration reloaded", "certificates", certs, "manifest", next != nil, "requested", force)
	if confirm {
		if err := waitConfLoaded(rctx, pool, loadedAt); err != nil {
			return err
		}
		m.mu.Lock()
		if m.pool == pool { // not restarted meanwhile (it set its own)
			m.loadedSum = sum
		}
		cfgErr := m.configErr
		m.mu.Unlock()
		if force && applyErr == nil && cfgErr != "" {
			applyErr = errors.New(cfgErr)
		}
	}
	return applyErr
}

// waitConfLoaded returns once PostgreSQL has read its files again after
// pg_reload_conf(), which only signals the postmaster: a backend reloads
// before its next command, after the postmaster did, so a backend whose
// pg_conf_load_time() moved past before means new sessions get the new
// configuration too.
func waitConfLoaded(ctx context.Context, pool *pgxpool.Pool, before time.Time) error {
	for {
		var done bool
		if err := pool.QueryRow(ctx, "SELECT pg_conf_load_time() > $1", before).Scan(&done); err != nil {
			return fmt.Errorf("waiting for PostgreSQL to read its configuration: %w", err)
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("PostgreSQL did not read its configuration again: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
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
	m.cluster, m.clusterSum = next, manifestSum(raw)
	m.configErr = ""
	m.mu.Unlock()
	m.applyLogLevel()
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
		// The file says what runs: an earlier refusal is over, and the
		// file's bytes name the running manifest from now on.
		sum := manifestSum(b)
		m.mu.Lock()
		m.configErr = ""
		if m.loadedSum == m.clusterSum {
			m.loadedSum = sum
		}
		m.clusterSum = sum
		m.mu.Unlock()
		return nil, nil
	}
	return c, b
}
