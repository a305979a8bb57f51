// Package probe holds the observations both runtimes' audits make: the
// attacks tried from the outside (a PostgreSQL login, a status-port
// request) and the reads of a running server (pg_settings,
// pg_db_role_setting, pg_stat_replication, postgresql.auto.conf, /proc).
// The local adapter (internal/local/audit.go), the instance manager's
// audit endpoint and the Kubernetes adapter (internal/kube/audit.go) call
// these, so each control is observed one way whatever the runtime; the
// decisions stay in internal/audit.
package probe

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgward/pgward/internal/audit"
)

// Connect tries a connection an attacker would; conninfo must hold no
// secret of the cluster (a password goes in through tweak). A server that
// lets the connection in is Accepted; a PostgreSQL error or a TLS refusal
// is a refusal; anything else (nothing listening, a timeout) is Unknown.
func Connect(ctx context.Context, conninfo string, tweak func(*pgconn.Config)) audit.Attempt {
	cc, err := pgconn.ParseConfig(conninfo)
	if err != nil {
		return audit.Attempt{Unknown: err.Error()}
	}
	cc.Fallbacks = nil
	cc.ConnectTimeout = 3 * time.Second
	if tweak != nil {
		tweak(cc)
	}
	conn, err := pgconn.ConnectConfig(ctx, cc)
	if err == nil {
		_ = conn.Close(context.Background())
		return audit.Attempt{Accepted: true, Refusal: "logged in"}
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return audit.Attempt{Refusal: pgErr.Message}
	}
	msg := err.Error()
	if strings.Contains(msg, "tls:") || strings.Contains(msg, "certificate") {
		return audit.Attempt{Refusal: TLSReason(msg)}
	}
	return audit.Attempt{Unknown: msg}
}

// TLS12Handshake judges an attempt made offering at most TLS 1.2: one
// that got past TLS (answered by authentication, a PostgreSQL error)
// completed the handshake, so it counts as accepted.
func TLS12Handshake(at audit.Attempt) audit.Attempt {
	if !at.Accepted && at.Unknown == "" && !strings.HasPrefix(at.Refusal, "tls:") {
		return audit.Attempt{Accepted: true, Refusal: "a TLS 1.2 handshake completed; then: " + at.Refusal}
	}
	return at
}

// TLSReason keeps the TLS part of a connection error.
func TLSReason(msg string) string {
	if i := strings.Index(msg, "tls:"); i >= 0 {
		return strings.TrimSpace(msg[i:])
	}
	return msg
}

// RandomPassword is a password no role has: an attack must be refused for
// the lack of a certificate, not for a wrong password.
func RandomPassword() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// StatusRequest makes a request to the status port at addr (host:port),
// verifying its certificate against roots for serverName, offering at
// most maxVersion, and presenting cert if given (even when the server's
// list of CAs does not name its issuer). 401 and 403 are refusals, any
// other answer is accepted.
func StatusRequest(ctx context.Context, addr, serverName string, roots *x509.CertPool, method, path string, maxVersion uint16, cert ...tls.Certificate) audit.Attempt {
	cfg := &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: maxVersion, RootCAs: roots, ServerName: serverName} // #nosec G402 -- an attack: offering old TLS is the point
	if len(cert) > 0 {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert[0], nil }
	}
	cl := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	defer cl.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, method, "https://"+addr+path, bytes.NewReader([]byte("{}")))
	if err != nil {
		return audit.Attempt{Unknown: err.Error()}
	}
	resp, err := cl.Do(req)
	if err != nil {
		if strings.Contains(err.Error(), "tls:") {
			return audit.Attempt{Refusal: TLSReason(err.Error())}
		}
		return audit.Attempt{Unknown: err.Error()}
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return audit.Attempt{Refusal: "HTTP " + strconv.Itoa(resp.StatusCode)}
	}
	return audit.Attempt{Accepted: true, Refusal: "HTTP " + strconv.Itoa(resp.StatusCode)}
}

// Settings reads pg_settings and, names only (the values may be anything
// a role chose), the parameters set for roles and databases.
func Settings(ctx context.Context, conn *pgx.Conn) ([]audit.LiveSetting, []audit.RoleSetting, error) {
	r, err := conn.Query(ctx, `SELECT name, setting, source, coalesce(sourcefile, '') FROM pg_settings`)
	if err != nil {
		return nil, nil, err
	}
	rows, err := pgx.CollectRows(r, func(row pgx.CollectableRow) (audit.LiveSetting, error) {
		var s audit.LiveSetting
		err := row.Scan(&s.Name, &s.Setting, &s.Source, &s.SourceFile)
		return s, err
	})
	if err != nil {
		return nil, nil, err
	}
	r, err = conn.Query(ctx, `SELECT coalesce(d.datname, ''), coalesce(r.rolname, ''), lower(split_part(c, '=', 1))
		FROM pg_db_role_setting s CROSS JOIN unnest(s.setconfig) AS c
		LEFT JOIN pg_database d ON d.oid = s.setdatabase LEFT JOIN pg_roles r ON r.oid = s.setrole ORDER BY 1, 2, 3`)
	if err != nil {
		return nil, nil, err
	}
	roles, err := pgx.CollectRows(r, func(row pgx.CollectableRow) (audit.RoleSetting, error) {
		var s audit.RoleSetting
		err := row.Scan(&s.Database, &s.Role, &s.Name)
		return s, err
	})
	return rows, roles, err
}

// Streams reads the replication connections a server serves, with their TLS.
func Streams(ctx context.Context, conn *pgx.Conn) ([]audit.Stream, error) {
	r, err := conn.Query(ctx, `SELECT coalesce(r.application_name, ''), coalesce(s.ssl, false), coalesce(s.version, ''), coalesce(s.client_dn, '')
		FROM pg_stat_replication r LEFT JOIN pg_stat_ssl s USING (pid) ORDER BY 1`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(r, func(row pgx.CollectableRow) (audit.Stream, error) {
		var s audit.Stream
		err := row.Scan(&s.Application, &s.SSL, &s.Version, &s.ClientDN)
		return s, err
	})
}

// SuperuserHasPassword reads whether the postgres role has a password.
func SuperuserHasPassword(ctx context.Context, conn *pgx.Conn) (bool, error) {
	var noPassword bool
	err := conn.QueryRow(ctx, `SELECT rolpassword IS NULL FROM pg_authid WHERE rolname = 'postgres'`).Scan(&noPassword)
	return !noPassword, err
}

// AutoConfNames lists the parameters postgresql.auto.conf in dataDir
// sets (names only: values are not the audit's to show).
func AutoConfNames(dataDir string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postgresql.auto.conf")) // #nosec G304 -- the instance's own data directory
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range audit.ParseConf(string(b)) {
		names = append(names, s.Name)
	}
	return names, nil
}

// ProcUID returns the lowest of the real, effective and saved uids of pid
// (0 if any of them is root), and the process's name.
func ProcUID(pid int) (int, string) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status") // #nosec G304 -- procfs
	if err != nil {
		return -1, "?"
	}
	uid, name := -1, "?"
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 1 && f[0] == "Name:":
			name = f[1]
		case len(f) > 3 && f[0] == "Uid:":
			for _, s := range f[1:4] {
				if v, err := strconv.Atoi(s); err == nil && (uid < 0 || v < uid) {
					uid = v
				}
			}
		}
	}
	return uid, name
}

// AllProcs lists every process this process can see with its uid: in a
// container, every process of the container (the instance manager,
// PostgreSQL and its children).
func AllProcs() ([]audit.Proc, error) {
	entries, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return nil, err
	}
	var out []audit.Proc
	for _, e := range entries {
		pid, err := strconv.Atoi(filepath.Base(e))
		if err != nil {
			continue
		}
		uid, name := ProcUID(pid)
		if uid < 0 {
			continue // gone meanwhile
		}
		out = append(out, audit.Proc{PID: pid, UID: uid, Name: name})
	}
	return out, nil
}
