package instance

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/pgward/pgward/api/v1"
)

// clonePassFile holds, during a clone, the source's password (pgpass).
const clonePassFile = "clone.pgpass"

// bootstrapClone copies the running cluster spec.bootstrap.pg_basebackup
// names into staging (pg_basebackup over verified TLS, authenticated by
// the source's client certificate or password), then starts it once as an
// independent primary with this cluster's credentials.
func (m *Manager) bootstrapClone(ctx context.Context, staging string) error {
	src := m.cluster.Spec.BaseBackupSource()
	if src == nil {
		return fmt.Errorf("spec.bootstrap.pg_basebackup.source %q is not an external cluster", m.cluster.Spec.Bootstrap.PgBaseBackup.Source)
	}
	field := fmt.Sprintf("spec.externalClusters[%s]", src.Name)
	conninfo, cleanup, err := m.externalConnInfo(src, clonePassFile)
	if err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	defer cleanup()
	m.setPhase(PhaseClone)
	if err := basebackup(ctx, m.cfg.PGBinDir, staging, m.cfg.WalDir, conninfo, m.tablespacePaths()); err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	if err := m.createStanza(ctx, staging); err != nil {
		return err
	}
	return m.replayAndPromote(ctx, staging, false)
}

// externalConnInfo is a libpq conninfo for src: its parameters, then the
// files of its secret keys (certificate and key as stored, 0600; the
// password through a pgpass file written for the clone and removed after:
// never on a command line).
func (m *Manager) externalConnInfo(src *v1.ExternalCluster, passFile string) (string, func(), error) {
	cleanup := func() {}
	keys := make([]string, 0, len(src.ConnectionParameters))
	for k := range src.ConnectionParameters {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var kv []string
	for _, k := range keys {
		kv = append(kv, k+"="+quoteConnValue(src.ConnectionParameters[k]))
	}
	file := func(sel *v1.SecretKeySelector) string { return m.secretFile(sel.Name, sel.Key) }
	if src.SSLRootCert != nil {
		kv = append(kv, "sslrootcert="+quoteConnValue(file(src.SSLRootCert)))
	}
	if src.SSLCert != nil && src.SSLKey != nil {
		kv = append(kv, "sslcert="+quoteConnValue(file(src.SSLCert)), "sslkey="+quoteConnValue(file(src.SSLKey)))
	}
	if src.Password != nil {
		data, err := m.store.Get(src.Password.Name)
		if err != nil {
			return "", cleanup, fmt.Errorf("password: reading secret %q: %w", src.Password.Name, err)
		}
		pw, ok := data[src.Password.Key]
		if !ok {
			return "", cleanup, fmt.Errorf("password: secret %q has no key %q", src.Password.Name, src.Password.Key)
		}
		if strings.ContainsAny(string(pw), "\n\r") {
			return "", cleanup, fmt.Errorf("password: secret %q holds a line break", src.Password.Name)
		}
		esc := strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(string(pw))
		path := filepath.Join(m.cfg.ConfDir, passFile)
		if err := WriteFileAtomic(path, []byte("*:*:*:*:"+esc+"\n"), 0o600); err != nil {
			return "", cleanup, err
		}
		cleanup = func() { _ = os.Remove(path) }
		kv = append(kv, "passfile="+quoteConnValue(path))
	}
	return strings.Join(append(kv, "connect_timeout=10"), " "), cleanup, nil
}
