package instance

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"
	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/backup"
	"github.com/pgward/pgward/internal/pgconf"
	"github.com/pgward/pgward/internal/secrets"
)

func (m *Manager) reconcileRoles(ctx context.Context, conn *pgx.Conn) error {
	cred, err := m.credentials()
	if err != nil {
		return err
	}
	if err := reconcileRoles(ctx, conn, m.cluster, cred, rand.Reader); err != nil {
		return err
	}
	m.appliedCreds = credentialsDigest(cred)
	return nil
}

func (m *Manager) credentials() (credentials, error) {
	var cred credentials
	app, err := m.store.Get(m.cfg.Secrets.App)
	if err != nil {
		return cred, fmt.Errorf("reading app secret %q: %w", m.cfg.Secrets.App, err)
	}
	cred.appUser, cred.appPassword = string(app["username"]), string(app["password"])
	// A password that cannot be set faithfully (empty, control
	// characters) is refused by name, never echoed.
	if err := secrets.ValidatePassword(cred.appPassword); err != nil {
		return cred, fmt.Errorf("app secret %q: %w", m.cfg.Secrets.App, err)
	}
	if m.cfg.Secrets.Superuser != "" {
		su, err := m.store.Get(m.cfg.Secrets.Superuser)
		if err != nil {
			return cred, fmt.Errorf("reading superuser secret %q: %w", m.cfg.Secrets.Superuser, err)
		}
		cred.superPassword = string(su["password"])
		if err := secrets.ValidatePassword(cred.superPassword); err != nil {
			return cred, fmt.Errorf("superuser secret %q: %w", m.cfg.Secrets.Superuser, err)
		}
	}
	return cred, nil
}

// renderConfig writes postgresql.conf, pg_hba.conf and pg_ident.conf into
// ConfDir. They live outside PGDATA: a clone or rewind copies the source's
// files and must not replace this instance's port, paths or conninfo.
func (m *Manager) renderConfig(primary bool) error {
	files, err := m.renderFiles(m.cluster, primary)
	if err != nil {
		return err
	}
	for name, data := range files {
		if err := WriteFileAtomic(filepath.Join(m.cfg.ConfDir, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// renderFiles renders c's postgresql.conf, pg_hba.conf and pg_ident.conf
// for this instance.
func (m *Manager) renderFiles(c *v1.Cluster, primary bool) (map[string][]byte, error) {
	m.mu.Lock()
	st := m.st
	m.mu.Unlock()
	in := pgconf.Instance{
		Name:            m.cfg.Name,
		ClusterName:     c.Name,
		Port:            m.cfg.Port,
		ListenAddresses: m.cfg.ListenAddress,
		SocketDir:       m.cfg.SocketDir,
		HBAFile:         filepath.Join(m.cfg.ConfDir, "pg_hba.conf"),
		IdentFile:       filepath.Join(m.cfg.ConfDir, "pg_ident.conf"),
		ServerCertFile:  m.secretFile(m.cfg.Secrets.ServerTLS, "tls.crt"),
		ServerKeyFile:   m.secretFile(m.cfg.Secrets.ServerTLS, "tls.key"),
		ClientCAFile:    m.secretFile(m.cfg.Secrets.ClientCA, "ca.crt"),
		OSUser:          m.cfg.OSUser,
	}
	pgdata := m.cfg.DataDir
	if m.pgdata != "" {
		pgdata = m.pgdata
	}
	var sourceConf []byte
	switch {
	case primary:
		in.SynchronousStandbyNames = st.SyncStandbys
	case st.Designated:
		var err error
		if sourceConf, err = m.sourceSettings(&in, pgdata); err != nil {
			return nil, err
		}
		in.MinApplyDelay = c.ApplyDelay()
	default:
		in.PrimaryConnInfo = walReceiverConnInfo(m.replicationConnInfo(st.Primary, m.cfg.Name))
		in.MinApplyDelay = c.ApplyDelay()
		if prefix, on := c.Spec.HASlots(); on {
			// The primary creates it (maintainSlots); until then the WAL
			// receiver retries.
			in.PrimarySlotName = v1.HASlotName(prefix, m.cfg.Name)
		}
	}
	repo, repoConf, err := m.ownRepo(c, pgdata)
	if err != nil {
		return nil, err
	}
	if repo != nil {
		bin, err := backup.FindBin()
		if err != nil {
			return nil, err
		}
		in.ArchiveCommand = backup.ArchiveCommand(bin, filepath.Join(m.cfg.ConfDir, backupConf), repo.Stanza)
	}
	if r := m.recovery; r != nil {
		in.RestoreCommand, in.Recovery = r.restore, r.targets
	}
	conf, err := pgconf.RenderPostgresConf(c, in)
	if err != nil {
		return nil, fmt.Errorf("rendering postgresql.conf: %w", err)
	}
	hbaSecrets, err := m.hbaSecrets(c)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.hbaSecretsSum = sha256.Sum256([]byte(hbaSecrets.LDAPBindPassword))
	m.mu.Unlock()
	hba, err := pgconf.RenderHBAWithSecrets(c, m.cfg.OSUser, hbaSecrets)
	if err != nil {
		return nil, fmt.Errorf("rendering pg_hba.conf: %w", err)
	}
	ident, err := pgconf.RenderIdent(c, m.cfg.OSUser)
	if err != nil {
		return nil, fmt.Errorf("rendering pg_ident.conf: %w", err)
	}
	files := map[string][]byte{"postgresql.conf": conf, "pg_hba.conf": hba, "pg_ident.conf": ident}
	if repoConf != nil {
		files[backupConf] = repoConf
	}
	if sourceConf != nil {
		files[recoverySourceConf] = sourceConf
	}
	return files, nil
}

func (m *Manager) confFile() string { return filepath.Join(m.cfg.ConfDir, "postgresql.conf") }

func (m *Manager) secretFile(secret, key string) string {
	return filepath.Join(m.cfg.SecretsRoot, secret, key)
}

// replicationConnInfo is how this instance reaches primary: TLS with full
// verification of the primary's certificate, and streaming_replica's client
// certificate instead of a password.
func (m *Manager) replicationConnInfo(primary Endpoint, appName string) string {
	kv := []string{
		"host=" + quoteConnValue(primary.Host),
		fmt.Sprintf("port=%d", primary.Port),
		"user=" + replicationRole,
		"dbname=postgres",
		"sslmode=verify-full",
		"sslrootcert=" + quoteConnValue(m.secretFile(m.cfg.Secrets.ServerCA, "ca.crt")),
		"sslcert=" + quoteConnValue(m.secretFile(m.cfg.Secrets.Replication, "tls.crt")),
		"sslkey=" + quoteConnValue(m.secretFile(m.cfg.Secrets.Replication, "tls.key")),
		"ssl_min_protocol_version=TLSv1.3",
		"connect_timeout=2",
	}
	if appName != "" {
		kv = append(kv, "application_name="+quoteConnValue(appName))
	}
	return strings.Join(kv, " ")
}

// walReceiverTCP bounds, in the kernel, how long the WAL receiver waits on
// a primary that answers nothing at all, which connect_timeout does not:
// PostgreSQL's WAL receiver connects asynchronously and ignores
// connect_timeout, so a connection attempt whose SYNs are dropped waits
// as long as TCP retries a SYN, over a minute (PostgreSQL 15.18, Linux
// 6.18: still in SYN-SENT after 37 s). A primary cut off by the network
// leaves exactly that behind on Kubernetes (measured, docs/benchmarks.md):
// the standby's session ends (wal_receiver_timeout), its next attempt
// through the read-write Service is still led to the cut-off address (and
// conntrack keeps it there after the Service moves), so the synchronous
// standby never reaches the new primary, whose first commit waits for it
// until the planner rewinds it (RejoinGrace, 5 s). With
// tcp_user_timeout an attempt or a session with nothing acknowledged for
// 1 s fails, and the WAL receiver tries again (wal_retrieve_retry_interval,
// 200 ms), reaching the new primary once the Service leads there;
// keepalives make an idle session to a silent primary end the same way.
// Why 1 s: an attempt that starts just before kube-proxy moves the Service
// waits the whole bound on the cut-off address, and on pods the first
// commit came in two groups that bound apart (2 s: p50 8.09 s). Only a
// peer's kernel silent for that long trips it (acknowledgements are the
// kernel's, not a busy PostgreSQL's), and the price is a reconnection.
// Only the WAL receiver's connection carries it: a clone or a rewind is
// one long transfer better retried by its command than cut short, and
// pgx reads unknown keywords as server settings.
const walReceiverTCP = "tcp_user_timeout=1000 keepalives=1 keepalives_idle=1 keepalives_interval=1 keepalives_count=2"

// walReceiverConnInfo is primary_conninfo: conninfo with walReceiverTCP.
func walReceiverConnInfo(conninfo string) string {
	return conninfo + " " + walReceiverTCP
}

// quoteConnValue quotes a libpq keyword/value conninfo value.
func quoteConnValue(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(v) + "'"
}

// hbaSecrets reads the secret values pg_hba.conf holds (the LDAP bind
// password). Errors name the field and the secret, never the value.
func (m *Manager) hbaSecrets(c *v1.Cluster) (pgconf.HBASecrets, error) {
	var sec pgconf.HBASecrets
	l := c.Spec.PostgresConfiguration.LDAP
	if l == nil || l.BindSearchAuth == nil || l.BindSearchAuth.BindPassword == nil {
		return sec, nil
	}
	ref := l.BindSearchAuth.BindPassword
	data, err := m.store.Get(ref.Name)
	if err != nil {
		return sec, fmt.Errorf("spec.postgresql.ldap.bindSearchAuth.bindPassword: reading secret %q: %w", ref.Name, err)
	}
	pw, ok := data[ref.Key]
	if !ok {
		return sec, fmt.Errorf("spec.postgresql.ldap.bindSearchAuth.bindPassword: secret %q has no key %q", ref.Name, ref.Key)
	}
	// A trailing newline is how a secret file written by hand ends, never
	// part of a password pg_hba.conf could hold.
	sec.LDAPBindPassword = strings.TrimRight(string(pw), "\n")
	return sec, nil
}

// ldapEnv is what libldap, inside PostgreSQL, needs to verify the LDAP
// server's certificate: always TLS_REQCERT demand (a certificate that does
// not verify, or names another host, ends the connection), and the CA of
// spec.postgresql.ldap.caSecret when set (the system's CAs otherwise).
// libldap reads its environment after ldap.conf and any ldaprc file, so
// neither can weaken these.
func (m *Manager) ldapEnv(c *v1.Cluster) []string {
	env := []string{"LDAPTLS_REQCERT=demand"}
	if l := c.Spec.PostgresConfiguration.LDAP; l != nil && l.CASecret != nil {
		env = append(env, "LDAPTLS_CACERT="+m.secretFile(l.CASecret.Name, l.CASecret.Key))
	}
	return env
}

// hbaSecretsChanged reports whether the secrets pg_hba.conf holds changed
// since it was last rendered (a bind password rotated in its secret), so
// that reload renders it again: PostgreSQL reads the password from nowhere
// else.
func (m *Manager) hbaSecretsChanged() bool {
	m.mu.Lock()
	c, last := m.cluster, m.hbaSecretsSum
	m.mu.Unlock()
	if c == nil || c.Spec.PostgresConfiguration.LDAP == nil {
		return false
	}
	sec, err := m.hbaSecrets(c)
	if err != nil {
		// Reported by the render that fails on it; until then the
		// running pg_hba.conf stays.
		return false
	}
	return sha256.Sum256([]byte(sec.LDAPBindPassword)) != last
}
