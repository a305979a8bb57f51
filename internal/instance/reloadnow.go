package instance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/pgward/pgward/internal/instanceapi"
)

// reloadRetry is how often a reload request looks again for the manifest
// it names.
const reloadRetry = 250 * time.Millisecond

// pendingReload is a reload request not yet carried out.
type pendingReload struct {
	req   instanceapi.ReloadRequest
	since time.Time
}

// RequestReload takes a reload request (`pgward local reload`, the
// operator on `kubectl pgward reload`): the manager's loop carries it out
// at once, and Status's Reload shows the outcome. A newer request replaces
// one still waiting.
func (m *Manager) RequestReload(req instanceapi.ReloadRequest) error {
	if err := checkReloadRequest(req); err != nil {
		return err
	}
	m.mu.Lock()
	m.reloadReq = &pendingReload{req: req, since: time.Now()}
	m.reloadRes = &instanceapi.ReloadResult{ID: req.ID}
	m.mu.Unlock()
	m.pokeReload()
	return nil
}

// checkReloadRequest keeps what the status echoes to short printable text
// and the manifest digest to hex SHA-256.
func checkReloadRequest(req instanceapi.ReloadRequest) error {
	if req.ID == "" || len(req.ID) > 64 {
		return errors.New("id: 1 to 64 characters")
	}
	for _, r := range req.ID {
		if r < '!' || r > '~' {
			return errors.New("id: printable ASCII only, no spaces")
		}
	}
	if req.ManifestSHA256 != "" {
		if b, err := hex.DecodeString(req.ManifestSHA256); err != nil || len(b) != sha256.Size {
			return errors.New("manifestSHA256: 64 hex digits")
		}
	}
	return nil
}

func (m *Manager) pokeReload() {
	select {
	case m.reloadWake <- struct{}{}:
	default:
	}
}

// reloadRequested carries out the pending reload request, in the loop's
// goroutine: once the manifest file is the one the request names, the
// same reload as the periodic check, forced.
func (m *Manager) reloadRequested(ctx context.Context) {
	m.mu.Lock()
	p := m.reloadReq
	m.mu.Unlock()
	if p == nil {
		return
	}
	if want := p.req.ManifestSHA256; want != "" {
		b, err := os.ReadFile(m.cfg.ClusterFile)
		sum := sha256.Sum256(b)
		if err != nil || hex.EncodeToString(sum[:]) != want {
			if time.Since(p.since) < instanceapi.ReloadManifestWait {
				time.AfterFunc(reloadRetry, m.pokeReload)
				return
			}
			m.finishReload(p, nil, fmt.Errorf("the manifest file %s did not become the requested one within %s", m.cfg.ClusterFile, instanceapi.ReloadManifestWait))
			return
		}
	}
	err := m.reload(ctx, true)
	// Passwords are applied from their secrets as at their periodic check.
	m.applyChangedPasswords(ctx)
	var pending []string
	if err == nil {
		pending, err = m.pendingRestart(ctx)
	}
	m.finishReload(p, pending, err)
}

func (m *Manager) finishReload(p *pendingReload, pending []string, err error) {
	now := time.Now().UTC()
	res := &instanceapi.ReloadResult{ID: p.req.ID, Done: true, At: &now, PendingRestart: pending}
	if err != nil {
		res.Error = err.Error()
	}
	m.mu.Lock()
	if m.reloadReq == p { // not replaced by a newer request meanwhile
		m.reloadReq = nil
		m.reloadRes = res
	}
	m.mu.Unlock()
	m.log.Info("reload request done", "id", p.req.ID, "pendingRestart", pending, "error", res.Error)
}

// pendingRestart names the parameters whose new value waits for a restart.
func (m *Manager) pendingRestart(ctx context.Context) ([]string, error) {
	m.mu.Lock()
	pool := m.pool
	m.mu.Unlock()
	if pool == nil {
		return nil, errors.New("PostgreSQL stopped during the reload")
	}
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rows, err := pool.Query(qctx, "SELECT name FROM pg_settings WHERE pending_restart ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("reading pg_settings.pending_restart: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// maxConfigFile bounds each file ConfigFiles returns (the status port's
// answers are read up to 1 MiB).
const maxConfigFile = 128 << 10

// ConfigFiles returns the configuration files PostgreSQL runs with, as
// rendered here, and postgresql.auto.conf (ALTER SYSTEM's), for a bug
// report. They hold no password: credentials are in files of their own.
func (m *Manager) ConfigFiles() instanceapi.ConfigFiles {
	out := instanceapi.ConfigFiles{Files: map[string]string{}}
	for name, path := range map[string]string{
		"postgresql.conf":      m.confFile(),
		"pg_hba.conf":          filepath.Join(m.cfg.ConfDir, "pg_hba.conf"),
		"pg_ident.conf":        filepath.Join(m.cfg.ConfDir, "pg_ident.conf"),
		"postgresql.auto.conf": filepath.Join(m.cfg.DataDir, "postgresql.auto.conf"),
	} {
		b, err := os.ReadFile(path) // #nosec G304 -- pgward's own files
		if err != nil {
			if out.Errors == nil {
				out.Errors = map[string]string{}
			}
			out.Errors[name] = err.Error()
			continue
		}
		if len(b) > maxConfigFile {
			b = b[:maxConfigFile]
		}
		out.Files[name] = string(b)
	}
	return out
}
