package instance

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"time"
)

// SecretCheckInterval is how often a primary's manager re-reads the
// password secrets. A rotated password (`pgward local rotate-password`, or
// a Secret edited on Kubernetes) is applied within it, and clients reading
// the new password fail for no longer than that. Reading two small secrets
// a second costs nothing.
const SecretCheckInterval = time.Second

// credentialsDigest identifies a set of credentials without keeping the
// passwords themselves in the manager's memory longer than needed.
func credentialsDigest(c credentials) [sha256.Size]byte {
	return sha256.Sum256([]byte(fmt.Sprintf("%d:%s|%d:%s|%d:%s",
		len(c.appUser), c.appUser, len(c.appPassword), c.appPassword, len(c.superPassword), c.superPassword)))
}

// applyChangedPasswords sets the roles' passwords again when their secrets
// changed since they were last applied, on a running primary only (replicas
// get the roles through WAL; a promoted replica applies them at its first
// check). PostgreSQL checks a password only at authentication: sessions
// already open keep running, new ones need the new password. No restart, no
// reload.
func (m *Manager) applyChangedPasswords(ctx context.Context) {
	m.mu.Lock()
	running := m.primary && m.pool != nil && m.phase == PhaseRunning
	m.mu.Unlock()
	if !running {
		return
	}
	cred, err := m.credentials()
	if err != nil {
		m.noteSecretErr(err)
		return
	}
	digest := credentialsDigest(cred)
	if digest == m.appliedCreds {
		m.noteSecretErr(nil)
		return
	}
	if err := m.setPasswords(ctx, cred); err != nil {
		m.noteSecretErr(err)
		return
	}
	m.noteSecretErr(nil)
	m.appliedCreds = digest
	m.log.Info("role passwords applied from their secrets (changed since the last check)")
}

// setPasswords runs the idempotent role reconciliation with cred on a
// connection of its own: the quiet session settings must not stay on the
// sampler's pooled connections.
func (m *Manager) setPasswords(ctx context.Context, cred credentials) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := m.ownConn(cctx, "apply changed passwords")
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if err := reconcileRoles(cctx, conn, m.cluster, cred, rand.Reader); err != nil {
		return fmt.Errorf("applying changed passwords: %w", err)
	}
	return nil
}

// noteSecretErr logs a failure to read or apply the password secrets once,
// not every second while it lasts, and logs its end.
func (m *Manager) noteSecretErr(err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if msg == m.secretErr {
		return
	}
	m.secretErr = msg
	if err != nil {
		m.log.Error("role passwords not applied; retrying every second", "err", err)
	} else {
		m.log.Info("role password secrets readable again")
	}
}
