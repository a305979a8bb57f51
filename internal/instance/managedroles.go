package instance

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/secrets"
)

// managedRolesRecheck is how often a primary compares the declared roles
// with the server even when nothing declared changed: a role altered by
// hand is put back within it.
const managedRolesRecheck = 10 * time.Second

// roleState is what the server has for a role.
type roleState struct {
	exists                                          bool
	login, createdb, createrole, bypassrls, inherit bool
	superuser, replication                          bool
	connLimit                                       int64
	validUntil                                      *time.Time
	verifier                                        string
	comment                                         string
	memberOf                                        []string
}

// rolePlan turns a declared role and what the server has into the
// statements that make them agree; none when they already do, so a
// steady cluster writes nothing. password is the secret's, hasPassword
// whether the role takes one from a secret.
func rolePlan(want v1.RoleConfiguration, have roleState, password string, hasPassword bool, rnd io.Reader) ([]string, error) {
	name := ident(want.Name)
	if want.Ensure == "absent" {
		if have.exists {
			return []string{"DROP ROLE " + name}, nil
		}
		return nil, nil
	}
	var stmts []string
	if !have.exists {
		stmts = append(stmts, "CREATE ROLE "+name)
		have = roleState{exists: true, inherit: true, connLimit: -1}
	}
	inherit := want.Inherit == nil || *want.Inherit
	limit := int64(-1)
	if want.ConnectionLimit != nil {
		limit = *want.ConnectionLimit
	}
	var attrs []string
	flag := func(on, is bool, word string) {
		if on != is {
			if on {
				attrs = append(attrs, word)
			} else {
				attrs = append(attrs, "NO"+word)
			}
		}
	}
	flag(want.Login, have.login, "LOGIN")
	flag(want.CreateDB, have.createdb, "CREATEDB")
	flag(want.CreateRole, have.createrole, "CREATEROLE")
	flag(want.BypassRLS, have.bypassrls, "BYPASSRLS")
	flag(inherit, have.inherit, "INHERIT")
	// Never a superuser or a replication role, whatever was done by hand.
	flag(false, have.superuser, "SUPERUSER")
	flag(false, have.replication, "REPLICATION")
	if limit != have.connLimit {
		attrs = append(attrs, "CONNECTION LIMIT "+strconv.FormatInt(limit, 10))
	}
	if !sameValidUntil(want.ValidUntil, have.validUntil) {
		until := "infinity"
		if want.ValidUntil != nil {
			until = want.ValidUntil.UTC().Format(time.RFC3339)
		}
		attrs = append(attrs, "VALID UNTIL "+literal(until))
	}
	switch {
	case hasPassword && !secrets.VerifierMatches(have.verifier, password):
		v, err := secrets.SCRAMSHA256Verifier(password, rnd)
		if err != nil {
			return nil, fmt.Errorf("role %s: %w", want.Name, err)
		}
		attrs = append(attrs, "PASSWORD "+literal(v))
	case want.DisablePassword && have.verifier != "":
		attrs = append(attrs, "PASSWORD NULL")
	}
	if len(attrs) > 0 {
		stmts = append(stmts, "ALTER ROLE "+name+" WITH "+strings.Join(attrs, " "))
	}
	if want.Comment != have.comment {
		c := "NULL"
		if want.Comment != "" {
			c = literal(want.Comment)
		}
		stmts = append(stmts, "COMMENT ON ROLE "+name+" IS "+c)
	}
	for _, r := range want.InRoles {
		if !slices.Contains(have.memberOf, r) {
			stmts = append(stmts, "GRANT "+ident(r)+" TO "+name)
		}
	}
	for _, r := range have.memberOf {
		if !slices.Contains(want.InRoles, r) {
			stmts = append(stmts, "REVOKE "+ident(r)+" FROM "+name)
		}
	}
	return stmts, nil
}

// sameValidUntil compares at the second; no limit and "infinity" are the
// same for PostgreSQL.
func sameValidUntil(want *metav1.Time, have *time.Time) bool {
	never := have == nil || have.IsZero()
	if want == nil || want.IsZero() {
		return never
	}
	return !never && want.UTC().Truncate(time.Second).Equal(have.UTC().Truncate(time.Second))
}

// readRoles reads the server's view of names.
func readRoles(ctx context.Context, conn *pgx.Conn, names []string) (map[string]roleState, error) {
	rows, err := conn.Query(ctx, `SELECT r.rolname, r.rolcanlogin, r.rolcreatedb, r.rolcreaterole, r.rolbypassrls, r.rolinherit,
		r.rolsuper, r.rolreplication, r.rolconnlimit, CASE WHEN r.rolvaliduntil = 'infinity' THEN NULL ELSE r.rolvaliduntil END,
		coalesce(a.rolpassword, ''), coalesce(shobj_description(r.oid, 'pg_authid'), ''),
		array(SELECT b.rolname::text FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid WHERE m.member = r.oid ORDER BY 1)
		FROM pg_roles r JOIN pg_authid a ON a.oid = r.oid WHERE r.rolname = ANY($1)`, names)
	if err != nil {
		return nil, fmt.Errorf("reading roles: %w", err)
	}
	defer rows.Close()
	out := map[string]roleState{}
	for rows.Next() {
		var name string
		var s roleState
		var limit int32
		if err := rows.Scan(&name, &s.login, &s.createdb, &s.createrole, &s.bypassrls, &s.inherit, &s.superuser, &s.replication,
			&limit, &s.validUntil, &s.verifier, &s.comment, &s.memberOf); err != nil {
			return nil, fmt.Errorf("reading roles: %w", err)
		}
		s.exists, s.connLimit = true, int64(limit)
		out[name] = s
	}
	return out, rows.Err()
}

// managedPasswords reads the password of each role that takes one from a
// secret; the secret must be for that role (its username). A role whose
// secret cannot be used is in held, with the reason in err: it is left as
// it is until its secret can be (on Kubernetes a secret created after the
// Cluster reaches the pods later), while the other roles are reconciled.
func (m *Manager) managedPasswords(c *v1.Cluster) (passwords map[string]string, held map[string]bool, err error) {
	passwords, held = map[string]string{}, map[string]bool{}
	if c.Spec.Managed == nil {
		return passwords, held, nil
	}
	var errs []error
	for _, r := range c.Spec.Managed.Roles {
		if r.PasswordSecret == nil || r.Ensure == "absent" {
			continue
		}
		pw, err := m.rolePassword(r)
		if err != nil {
			held[r.Name] = true
			errs = append(errs, err)
			continue
		}
		passwords[r.Name] = pw
	}
	return passwords, held, errors.Join(errs...)
}

func (m *Manager) rolePassword(r v1.RoleConfiguration) (string, error) {
	data, err := m.store.Get(r.PasswordSecret.Name)
	if err != nil {
		return "", fmt.Errorf("role %s: reading secret %q: %w", r.Name, r.PasswordSecret.Name, err)
	}
	if u, ok := data["username"]; ok && string(u) != r.Name {
		return "", fmt.Errorf("role %s: secret %q is for user %q", r.Name, r.PasswordSecret.Name, u)
	}
	pw := string(data["password"])
	if err := secrets.ValidatePassword(pw); err != nil {
		return "", fmt.Errorf("role %s: secret %q: %w", r.Name, r.PasswordSecret.Name, err)
	}
	return pw, nil
}

// reconcileManagedRoles makes the primary's roles what spec.managed.roles
// declares, when the declaration or a password changed or every
// managedRolesRecheck; the result is in the status (RolesError).
func (m *Manager) reconcileManagedRoles(ctx context.Context, now time.Time) {
	m.mu.Lock()
	running := m.primary && m.pool != nil && m.phase == PhaseRunning
	c := m.cluster
	m.mu.Unlock()
	if !running || c.Spec.Managed == nil || len(c.Spec.Managed.Roles) == 0 {
		return
	}
	passwords, held, perr := m.managedPasswords(c)
	spec, _ := json.Marshal(c.Spec.Managed)
	pw, _ := json.Marshal(passwords)
	hd, _ := json.Marshal(held)
	digest := sha256.Sum256(append(append(spec, pw...), hd...))
	if digest == m.rolesDigest && now.Sub(m.rolesCheckedAt) < managedRolesRecheck {
		return
	}
	err := m.applyManagedRoles(ctx, c, passwords, held)
	if err == nil {
		m.rolesDigest, m.rolesCheckedAt = digest, now
	}
	err = errors.Join(perr, err)
	msg := ""
	if err != nil {
		msg = strings.ReplaceAll(err.Error(), "\n", "; ")
	}
	m.mu.Lock()
	changed := m.rolesErr != msg
	m.rolesErr = msg
	m.mu.Unlock()
	if changed && err != nil {
		m.log.Error("managed roles not reconciled; retrying", "err", err)
	}
}

// applyManagedRoles makes the server's roles what c declares, but for the
// held ones (their password secret cannot be used yet).
func (m *Manager) applyManagedRoles(ctx context.Context, c *v1.Cluster, passwords map[string]string, held map[string]bool) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := m.quietConn(cctx, "reconcile managed roles")
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	var names []string
	for _, r := range c.Spec.Managed.Roles {
		names = append(names, r.Name)
	}
	have, err := readRoles(cctx, conn, names)
	if err != nil {
		return err
	}
	applied := 0
	for _, r := range c.Spec.Managed.Roles {
		if held[r.Name] {
			continue
		}
		pw, hasPW := passwords[r.Name]
		stmts, err := rolePlan(r, have[r.Name], pw, hasPW, rand.Reader)
		if err != nil {
			return err
		}
		for _, s := range stmts {
			if _, err := conn.Exec(cctx, s); err != nil {
				return fmt.Errorf("spec.managed.roles %s: %s: %w", r.Name, redact(s), err)
			}
			applied++
		}
	}
	if applied > 0 {
		m.log.Info("managed roles reconciled", "statements", applied)
	}
	return nil
}
