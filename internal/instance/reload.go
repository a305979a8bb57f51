package instance

import (
	"context"
	"os"
	"reflect"
	"time"

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
	certs, err := m.tls.load()
	if err != nil {
		m.log.Error("TLS material", "err", err)
		return
	}
	spec := m.reloadManifest()
	m.mu.Lock()
	pool, primary := m.pool, m.primary
	m.mu.Unlock()
	if (!certs && !spec) || pool == nil {
		return
	}
	if spec {
		if err := m.renderConfig(primary); err != nil {
			m.log.Error("rendering the changed manifest", "err", err)
			return
		}
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := pool.Exec(rctx, "SELECT pg_reload_conf()"); err != nil {
		m.log.Error("reloading configuration", "err", err)
		return
	}
	m.log.Info("configuration reloaded", "certificates", certs, "manifest", spec)
}

// reloadManifest re-reads the cluster manifest when its file changed and
// adopts it if it is valid and a valid update of the current one. It
// reports whether the spec changed.
func (m *Manager) reloadManifest() bool {
	fi, err := os.Stat(m.cfg.ClusterFile)
	if err != nil || fi.ModTime().Equal(m.manifestMod) {
		return false
	}
	m.manifestMod = fi.ModTime()
	b, err := os.ReadFile(m.cfg.ClusterFile)
	if err != nil {
		m.log.Error("reading the changed manifest", "err", err)
		return false
	}
	c, err := v1.LoadAndValidate(b)
	if err == nil {
		err = v1.ValidateUpdate(m.cluster, c).ToAggregate()
	}
	if err != nil {
		m.log.Error("ignoring an invalid manifest change", "err", err)
		return false
	}
	if reflect.DeepEqual(c.Spec, m.cluster.Spec) {
		return false
	}
	m.cluster = c
	return true
}
