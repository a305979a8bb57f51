package instance

import (
	"context"
	"time"

	"github.com/pgward/pgward/internal/audit/probe"
)

// revertAlterSystem enforces postgresql.enableAlterSystem: false while
// PostgreSQL runs. PostgreSQL 15 has no switch to refuse ALTER SYSTEM
// (allow_alter_system is 17's), and a superuser may run it; so every
// second the manager reads postgresql.auto.conf and, when it sets
// anything, empties it and reloads the configuration: a setting that a
// reload applies lasts until then, one that needs a restart never takes
// effect, and none reaches a replica's copy. Left out, the file is only
// emptied at every start (resetAutoConf) and the audit reports the drift.
func (m *Manager) revertAlterSystem(ctx context.Context) {
	e := m.cluster.Spec.PostgresConfiguration.EnableAlterSystem
	if e == nil || *e {
		return
	}
	m.mu.Lock()
	pool := m.pool
	m.mu.Unlock()
	if pool == nil {
		return
	}
	names, err := probe.AutoConfNames(m.cfg.DataDir)
	if err != nil || len(names) == 0 {
		return
	}
	if err := resetAutoConf(m.cfg.DataDir); err != nil {
		m.log.Error("reverting ALTER SYSTEM", "err", err)
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := pool.Exec(cctx, "SELECT pg_reload_conf()"); err != nil {
		m.log.Error("reloading after reverting ALTER SYSTEM", "err", err)
		return
	}
	// Names only: a value may be a secret.
	m.log.Warn("ALTER SYSTEM reverted (spec.postgresql.enableAlterSystem is false)", "parameters", names)
}
