package instance

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/audit/probe"
	"github.com/pgward/pgward/internal/backup"
	"github.com/pgward/pgward/internal/instanceapi"
)

// AuditEvidence gathers, with the same probes as `pgward local audit`,
// what an audit from outside the pod cannot see. It decides nothing: the
// plugin judges the evidence with internal/audit's decisions. Values of
// parameters set for roles and of postgresql.auto.conf are left out.
func (m *Manager) AuditEvidence(ctx context.Context) instanceapi.AuditEvidence {
	ev := instanceapi.AuditEvidence{Name: m.cfg.Name, ConfFile: filepath.Join(m.cfg.ConfDir, "postgresql.conf")}
	if procs, err := probe.AllProcs(); err != nil {
		ev.ProcessesError = err.Error()
	} else {
		for _, p := range procs {
			ev.Processes = append(ev.Processes, instanceapi.AuditProc{PID: p.PID, UID: p.UID, Name: p.Name})
		}
	}
	if names, err := probe.AutoConfNames(m.cfg.DataDir); err != nil {
		ev.AutoConfError = err.Error()
	} else {
		ev.AutoConf = append([]string{}, names...)
	}
	files := map[string]*string{"postgresql.conf": &ev.PostgresConf, "pg_hba.conf": &ev.HBA, "pg_ident.conf": &ev.Ident}
	for name, dst := range files {
		b, err := os.ReadFile(filepath.Join(m.cfg.ConfDir, name)) // #nosec G304 -- the instance's own rendered configuration
		if err != nil {
			ev.FilesError = err.Error()
			continue
		}
		*dst = string(b)
	}
	if m.cfg.WalDir != "" {
		ev.WalDir = walDirEvidence(m.cfg.DataDir, m.cfg.WalDir)
	}
	if err := m.auditSQL(ctx, &ev); err != nil {
		ev.SettingsError = err.Error()
	}
	return ev
}

// walDirEvidence is where dataDir's pg_wal points and walDir's mode and
// owner; audit.DecideWalDir judges them.
func walDirEvidence(dataDir, walDir string) *instanceapi.AuditWalDir {
	out := &instanceapi.AuditWalDir{Dir: walDir}
	if link, err := os.Readlink(filepath.Join(dataDir, "pg_wal")); err == nil {
		out.Link = link
	}
	fi, err := os.Stat(walDir)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	out.Mode = uint32(fi.Mode().Perm())
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		out.UID = int(st.Uid)
	} else {
		out.Error = "no owner in the file's information"
	}
	return out
}

func (m *Manager) auditSQL(ctx context.Context, ev *instanceapi.AuditEvidence) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := m.ownConn(cctx, "read audit evidence")
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	rows, roles, err := probe.Settings(cctx, conn)
	if err != nil {
		return err
	}
	for _, r := range rows {
		// Only the fixed parameters: the others are the manifest's.
		if v1.IsFixedParameter(r.Name) {
			ev.Settings = append(ev.Settings, instanceapi.AuditSetting{Name: r.Name, Setting: r.Setting, Source: r.Source, SourceFile: r.SourceFile})
		}
	}
	for _, r := range roles {
		ev.RoleSettings = append(ev.RoleSettings, instanceapi.AuditRoleSetting{Database: r.Database, Role: r.Role, Name: r.Name})
	}
	has, err := probe.SuperuserHasPassword(cctx, conn)
	if err != nil {
		return err
	}
	ev.SuperuserHasPassword = &has
	return nil
}

// EnforcedSettings returns the settings pgward enforces for cfg's instance of c,
// as postgresql.conf must have them: archiving is on, with pgward's own
// command, exactly when the manifest has a backup store.
func EnforcedSettings(c *v1.Cluster, cfg *Config) map[string]string {
	want := enforcedBase(cfg)
	if b := c.Spec.Backup; b != nil && b.BarmanObjectStore != nil {
		want["archive_mode"] = "on"
		if bin, err := backup.FindBin(); err == nil {
			want["archive_command"] = backup.ArchiveCommand(bin, filepath.Join(cfg.ConfDir, "pgbackrest.conf"), b.BarmanObjectStore.ServerName)
		}
	}
	return want
}

func enforcedBase(cfg *Config) map[string]string {
	return map[string]string{ // #nosec G101 -- setting names, no credential
		"listen_addresses":         cfg.ListenAddress,
		"port":                     strconv.Itoa(cfg.Port),
		"unix_socket_directories":  cfg.SocketDir,
		"unix_socket_permissions":  "0700",
		"hba_file":                 filepath.Join(cfg.ConfDir, "pg_hba.conf"),
		"ident_file":               filepath.Join(cfg.ConfDir, "pg_ident.conf"),
		"ssl":                      "on",
		"ssl_cert_file":            filepath.Join(cfg.SecretsRoot, cfg.Secrets.ServerTLS, "tls.crt"),
		"ssl_key_file":             filepath.Join(cfg.SecretsRoot, cfg.Secrets.ServerTLS, "tls.key"),
		"ssl_ca_file":              filepath.Join(cfg.SecretsRoot, cfg.Secrets.ClientCA, "ca.crt"),
		"ssl_min_protocol_version": "TLSv1.3",
		"password_encryption":      "scram-sha-256",
		"restart_after_crash":      "off",
		"logging_collector":        "off",
		"archive_mode":             "off",
	}
}
