package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgward/pgward/internal/audit"
	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/pki"
)

// auditLine mirrors one object of `pgward local audit -o json`.
type auditLine struct {
	Status   string `json:"status"`
	Control  string `json:"control"`
	Evidence string `json:"evidence"`
	Fix      string `json:"fix"`
}

// auditControls is the audit's stable order of controls.
var auditControls = []string{
	"processes-not-root", "process-environment", "file-modes", "certificate-expiry", "certificate-chain",
	"pg-hba-rules", "pg-ident-maps", "postgresql-conf-enforced", "settings-running", "alter-system-drift",
	"replication-streams", "postgres-tls-1.3-only", "replication-needs-certificate", "replication-needs-tls",
	"superuser-no-password", "status-port-needs-certificate", "status-port-tls-1.3-only",
}

// runAudit runs `pgward local audit -o json` and returns its lines by
// control and its exit status.
func runAudit(t *testing.T, dir string) (map[string]auditLine, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, pgwardBin, "local", "audit", "-o", "json", "--dir", dir)
	out, err := cmd.Output()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("audit: %v", err)
	}
	var lines []auditLine
	if err := json.Unmarshal(out, &lines); err != nil {
		t.Fatalf("audit -o json (exit %d): %v\n%s", code, err, out)
	}
	byControl := map[string]auditLine{}
	var order []string
	for _, l := range lines {
		byControl[l.Control] = l
		order = append(order, l.Control)
	}
	if strings.Join(order, " ") != strings.Join(auditControls, " ") {
		t.Errorf("controls:\n got %v\nwant %v", order, auditControls)
	}
	return byControl, code
}

// expectAudit checks that exactly the controls in want have the given
// status (every other control PASS), that each evidence contains the
// given text, and the exit status (1 on any FAIL).
func expectAudit(t *testing.T, dir string, want map[string]string, evidence map[string]string) {
	t.Helper()
	got, code := runAudit(t, dir)
	failed := false
	for _, c := range auditControls {
		st := "PASS"
		if w, ok := want[c]; ok {
			st = w
		}
		failed = failed || st == "FAIL"
		l := got[c]
		if l.Status != st {
			t.Errorf("%s: %s, want %s (%s)", c, l.Status, st, l.Evidence)
		}
		if e, ok := evidence[c]; ok && !strings.Contains(l.Evidence, e) {
			t.Errorf("%s: evidence %q lacks %q", c, l.Evidence, e)
		}
		if l.Status != "PASS" && l.Fix == "" {
			t.Errorf("%s: %s without a fix", c, l.Status)
		}
	}
	if wantCode := map[bool]int{true: 1, false: 0}[failed]; code != wantCode {
		t.Errorf("exit status %d, want %d", code, wantCode)
	}
}

// TestAudit brings a one-instance cluster up, checks that the audit passes
// every control, then breaks the controls one at a time, as an attacker or
// a careless operator would, and checks that the audit fails with the
// right line (and that only that control fails), restoring each after.
func TestAudit(t *testing.T) {
	osUser := runAsUser(t)
	manifest := filepath.Join(workRoot, "audited.yaml")
	if err := os.WriteFile(manifest, []byte(`apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: audited
spec:
  instances: 1
  bootstrap:
    initdb:
      database: app
      owner: app
`), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := newStateDir(t, "audited")
	mustPgward(t, "local", "up", "-f", manifest, "--dir", dir)
	t.Cleanup(func() {
		if out, err := pgward(context.Background(), "local", "down", "--purge", "--dir", dir); err != nil {
			t.Errorf("cleanup down: %v\n%s", err, out)
		}
	})
	ctx := context.Background()
	cs := status(t, dir)
	inst := cs.Instances[0]
	sock := fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres", inst.SocketDir, inst.Port)
	sql := func(t *testing.T, q string) {
		t.Helper()
		if out, err := psql(ctx, osUser, sock, q); err != nil {
			t.Fatalf("%s: %v: %s", q, err, out)
		}
	}
	conf := filepath.Join(dir, "instances", inst.Name, "conf")
	// tamper replaces a file's content in place (owner and mode kept) and
	// puts it back when the subtest ends.
	tamper := func(t *testing.T, path string, edit func(string) string) {
		t.Helper()
		orig, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		changed := edit(string(orig))
		if changed == string(orig) {
			t.Fatalf("%s: the edit changed nothing", path)
		}
		if err := replaceFile(path, []byte(changed)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := replaceFile(path, orig); err != nil {
				t.Errorf("restoring %s: %v", path, err)
			}
		})
	}

	t.Run("a healthy cluster passes every control", func(t *testing.T) {
		expectAudit(t, dir, nil, map[string]string{
			"replication-needs-certificate": "requires a valid client certificate",
			"postgres-tls-1.3-only":         "protocol version",
			"status-port-needs-certificate": "with streaming_replica's certificate: refused: HTTP 403",
		})
		// The text form: one line per control, in the same order.
		out := mustPgward(t, "local", "audit", "--dir", dir)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != len(auditControls) {
			t.Fatalf("text output: %d lines, want %d:\n%s", len(lines), len(auditControls), out)
		}
		for i, l := range lines {
			if f := strings.Fields(l); len(f) < 3 || f[0] != "PASS" || f[1] != auditControls[i] {
				t.Errorf("line %d: %q", i+1, l)
			}
		}
	})

	t.Run("a key file readable by others", func(t *testing.T) {
		key := filepath.Join(dir, "secrets", "audited-server", "tls.key")
		if err := os.Chmod(key, 0o644); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = os.Chmod(key, 0o600) }()
		expectAudit(t, dir, map[string]string{"file-modes": "FAIL"}, map[string]string{"file-modes": "secrets/audited-server/tls.key is 0644 (want 0600)"})
	})

	t.Run("a data directory open to the group", func(t *testing.T) {
		data := filepath.Join(dir, "instances", inst.Name, "data")
		if err := os.Chmod(data, 0o750); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = os.Chmod(data, 0o700) }()
		expectAudit(t, dir, map[string]string{"file-modes": "FAIL"}, map[string]string{"file-modes": "instances/audited-1/data is 0750 (want 0700)"})
	})

	t.Run("the socket directory opened to others", func(t *testing.T) {
		if err := os.Chmod(inst.SocketDir, 0o711); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = os.Chmod(inst.SocketDir, 0o700) }()
		expectAudit(t, dir, map[string]string{"file-modes": "FAIL"}, map[string]string{"file-modes": "instances/audited-1/run is 0711 (want 0700)"})
	})

	t.Run("ALTER SYSTEM drift", func(t *testing.T) {
		sql(t, "ALTER SYSTEM SET work_mem = '8MB'")
		defer sql(t, "ALTER SYSTEM RESET ALL")
		expectAudit(t, dir, map[string]string{"alter-system-drift": "FAIL"}, map[string]string{"alter-system-drift": "sets work_mem"})
		// The instance manager's audit evidence (what `kubectl pgward
		// audit` reads from inside a pod) sees the same, with the same
		// probes, and only the controller's certificate may read it.
		ev := auditEvidence(t, dir, inst.StatusPort, true)
		if strings.Join(ev.AutoConf, ",") != "work_mem" || ev.AutoConfError != "" {
			t.Errorf("evidence: postgresql.auto.conf sets %v (%s), want work_mem", ev.AutoConf, ev.AutoConfError)
		}
		if ev.SettingsError != "" || ev.SuperuserHasPassword == nil || *ev.SuperuserHasPassword || len(ev.Settings) == 0 || ev.ConfFile != filepath.Join(conf, "postgresql.conf") {
			t.Errorf("evidence: settings %d, superuser password %v, conf file %s, error %q", len(ev.Settings), ev.SuperuserHasPassword, ev.ConfFile, ev.SettingsError)
		}
		if r := audit.RuleLines(ev.HBA); len(r) == 0 || r[0] != audit.HBAFirstRule {
			t.Errorf("evidence: pg_hba.conf %q", ev.HBA)
		}
		postgres := 0
		for _, p := range ev.Processes {
			if p.Name == "postgres" {
				postgres++
				if p.UID == 0 {
					t.Errorf("evidence: %+v runs as root", p)
				}
			}
		}
		if postgres == 0 {
			t.Errorf("evidence: no postgres process in %+v", ev.Processes)
		}
		auditEvidence(t, dir, inst.StatusPort, false)
	})

	t.Run("ALTER SYSTEM lowers the TLS version and the server reloads", func(t *testing.T) {
		sql(t, "ALTER SYSTEM SET ssl_min_protocol_version = 'TLSv1.2'")
		sql(t, "SELECT pg_reload_conf()")
		defer func() {
			sql(t, "ALTER SYSTEM RESET ALL")
			sql(t, "SELECT pg_reload_conf()")
			eventually(t, 20*time.Second, "TLS 1.3 only again", func() error {
				got, _ := runAudit(t, dir)
				if l := got["postgres-tls-1.3-only"]; l.Status != "PASS" {
					return fmt.Errorf("%s: %s", l.Status, l.Evidence)
				}
				return nil
			})
		}()
		eventually(t, 20*time.Second, "reload", func() error {
			out, err := psql(ctx, osUser, sock, "SHOW ssl_min_protocol_version")
			if out != "TLSv1.2" {
				return fmt.Errorf("%w: %s", err, out)
			}
			return nil
		})
		// The attack works now: the audit's TLS 1.2 handshake succeeds.
		expectAudit(t, dir, map[string]string{"alter-system-drift": "FAIL", "settings-running": "FAIL", "postgres-tls-1.3-only": "FAIL"},
			map[string]string{
				"settings-running":      "ssl_min_protocol_version = TLSv1.2 (want TLSv1.3)",
				"postgres-tls-1.3-only": "TLS 1.2 handshake completed",
			})
	})

	t.Run("a role sets a fixed parameter for itself", func(t *testing.T) {
		sql(t, "ALTER ROLE app SET password_encryption = 'md5'")
		defer sql(t, "ALTER ROLE app RESET password_encryption")
		expectAudit(t, dir, map[string]string{"settings-running": "FAIL"}, map[string]string{
			"settings-running": "fixed parameter password_encryption set for role app in database (all)",
		})
	})

	t.Run("pg_hba.conf's catch-all replaced by trust", func(t *testing.T) {
		tamper(t, filepath.Join(conf, "pg_hba.conf"), func(s string) string {
			return strings.Replace(s, "host all all all reject", "host all all all trust", 1)
		})
		expectAudit(t, dir, map[string]string{"pg-hba-rules": "FAIL"}, map[string]string{"pg-hba-rules": `last rule is "host ... trust"`})
	})

	t.Run("pg_hba.conf lets streaming_replica in with a password or without TLS", func(t *testing.T) {
		// Cleanups run last first: this reload follows the restore.
		t.Cleanup(func() { sql(t, "SELECT pg_reload_conf()") })
		tamper(t, filepath.Join(conf, "pg_hba.conf"), func(s string) string {
			s = strings.Replace(s, "hostssl postgres streaming_replica all cert", "hostssl postgres streaming_replica all scram-sha-256", 1)
			return strings.Replace(s, "host all streaming_replica all reject", "host all streaming_replica all trust", 1)
		})
		sql(t, "SELECT pg_reload_conf()")
		expectAudit(t, dir,
			map[string]string{"pg-hba-rules": "FAIL", "replication-needs-certificate": "FAIL", "replication-needs-tls": "FAIL"},
			map[string]string{
				"replication-needs-certificate": "not for the expected reason",
				"replication-needs-tls":         "login without TLS: accepted",
			})
	})

	t.Run("pg_ident.conf maps a certificate onto postgres", func(t *testing.T) {
		tamper(t, filepath.Join(conf, "pg_ident.conf"), func(s string) string {
			return s + "certs streaming_replica postgres\n"
		})
		expectAudit(t, dir, map[string]string{"pg-ident-maps": "FAIL"}, map[string]string{"pg-ident-maps": "maps onto postgres in map certs"})
	})

	t.Run("postgresql.conf weakened after rendering", func(t *testing.T) {
		tamper(t, filepath.Join(conf, "postgresql.conf"), func(s string) string {
			return s + "password_encryption = 'md5'\n"
		})
		expectAudit(t, dir, map[string]string{"postgresql-conf-enforced": "FAIL"}, map[string]string{
			"postgresql-conf-enforced": "password_encryption = md5 (want scram-sha-256)",
		})
	})

	t.Run("postgres given a password while superuser access is off", func(t *testing.T) {
		sql(t, "ALTER ROLE postgres PASSWORD '"+randomHex(t)+"'")
		defer sql(t, "ALTER ROLE postgres PASSWORD NULL")
		expectAudit(t, dir, map[string]string{"superuser-no-password": "FAIL"},
			map[string]string{"superuser-no-password": "postgres has a password"}) // #nosec G101 -- evidence text, no credential
	})

	replDir := filepath.Join(dir, "secrets", "audited-replication")
	// replace puts a certificate and its key in the replication secret.
	replace := func(t *testing.T, certPEM, keyPEM []byte) {
		t.Helper()
		tamper(t, filepath.Join(replDir, "tls.crt"), func(string) string { return string(certPEM) })
		tamper(t, filepath.Join(replDir, "tls.key"), func(string) string { return string(keyPEM) })
	}
	t.Run("a certificate within the renewal window", func(t *testing.T) {
		c, k := leafFromClusterCA(t, dir, time.Now().Add(-time.Hour), time.Now().Add(48*time.Hour))
		replace(t, c, k)
		// A WARN alone leaves the exit status 0.
		expectAudit(t, dir, map[string]string{"certificate-expiry": "WARN"}, map[string]string{"certificate-expiry": "audited-replication/tls.crt: expires in"})
	})

	t.Run("an expired certificate", func(t *testing.T) {
		c, k := leafFromClusterCA(t, dir, time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour))
		replace(t, c, k)
		expectAudit(t, dir, map[string]string{"certificate-expiry": "FAIL"}, map[string]string{"certificate-expiry": "audited-replication/tls.crt: expired"})
	})

	t.Run("a certificate from another CA", func(t *testing.T) {
		other, err := pki.NewCA(rand.Reader, time.Now(), "intruder")
		if err != nil {
			t.Fatal(err)
		}
		kp, err := other.IssueClient(rand.Reader, time.Now(), pki.ReplicationCommonName)
		if err != nil {
			t.Fatal(err)
		}
		replace(t, kp.CertPEM, kp.KeyPEM)
		expectAudit(t, dir, map[string]string{"certificate-chain": "FAIL"}, map[string]string{"certificate-chain": "audited-replication/tls.crt: not signed by its CA"})
	})

	t.Run("a certificate beside another key", func(t *testing.T) {
		_, otherKey := leafFromClusterCA(t, dir, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour*30))
		tamper(t, filepath.Join(replDir, "tls.key"), func(string) string { return string(otherKey) })
		// The status port check cannot present the pair any more: it says so.
		expectAudit(t, dir, map[string]string{"certificate-chain": "FAIL", "status-port-needs-certificate": "WARN"},
			map[string]string{"certificate-chain": "audited-replication/tls.crt: does not match tls.key", "status-port-needs-certificate": "certificate not tried"})
	})

	t.Run("a process of the cluster running as root", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to start a root process")
		}
		// A root process working in the cluster (its command line names
		// the state directory), as a root-run helper would.
		probe := exec.CommandContext(ctx, "/bin/sh", "-c", "sleep 120; :", "root-helper", filepath.Join(dir, "instances"))
		if err := probe.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = probe.Process.Kill(); _ = probe.Wait() }()
		expectAudit(t, dir, map[string]string{"processes-not-root": "FAIL"}, map[string]string{
			"processes-not-root": fmt.Sprintf("pid %d (sh) runs as root", probe.Process.Pid),
		})
	})

	t.Run("a process of the cluster started with a password in its environment", func(t *testing.T) {
		// Started as the run-as user, as a careless wrapper around
		// pgward would, with the command line naming the state directory.
		probe := exec.CommandContext(ctx, "/bin/sh", "-c", "sleep 120; :", "helper", filepath.Join(dir, "instances"))
		probe.Env = []string{"PATH=/usr/bin:/bin", "PGPASSWORD=" + randomHex(t), "PGSSLMODE=disable"}
		if os.Geteuid() == 0 {
			u, err := user.Lookup(osUser)
			if err != nil {
				t.Fatal(err)
			}
			uid, _ := strconv.ParseUint(u.Uid, 10, 32)
			gid, _ := strconv.ParseUint(u.Gid, 10, 32)
			probe.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		}
		if err := probe.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = probe.Process.Kill(); _ = probe.Wait() }()
		expectAudit(t, dir, map[string]string{"process-environment": "FAIL"}, map[string]string{
			"process-environment": fmt.Sprintf("pid %d (sh) has PGPASSWORD, PGSSLMODE", probe.Process.Pid),
		})
	})

	t.Run("healthy again after every repair", func(t *testing.T) {
		expectAudit(t, dir, nil, nil)
	})
}

// auditEvidence asks the instance's status port for its audit evidence,
// with the controller's certificate (asController) or with
// streaming_replica's, which must be refused with 403.
func auditEvidence(t *testing.T, dir string, port int, asController bool) instanceapi.AuditEvidence {
	t.Helper()
	secret := "audited-replication"
	if asController {
		secret = "audited-controller"
	}
	read := func(p ...string) []byte {
		b, err := os.ReadFile(filepath.Join(append([]string{dir, "secrets"}, p...)...))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cert, err := tls.X509KeyPair(read(secret, "tls.crt"), read(secret, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(read("audited-ca", "ca.crt"))
	cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		MinVersion: tls.VersionTLS13, RootCAs: roots, ServerName: "localhost", Certificates: []tls.Certificate{cert},
	}}}
	defer cl.CloseIdleConnections()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, "https://127.0.0.1:"+strconv.Itoa(port)+instanceapi.PathAudit, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var ev instanceapi.AuditEvidence
	switch {
	case !asController && resp.StatusCode != http.StatusForbidden:
		t.Errorf("GET %s with streaming_replica's certificate: %s, want 403", instanceapi.PathAudit, resp.Status)
	case asController && resp.StatusCode != http.StatusOK:
		t.Fatalf("GET %s: %s", instanceapi.PathAudit, resp.Status)
	case asController:
		if err := json.NewDecoder(resp.Body).Decode(&ev); err != nil {
			t.Fatal(err)
		}
	}
	return ev
}

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", b)
}

// leafFromClusterCA issues a streaming_replica certificate with the given
// validity from the cluster's own CA (pki refuses such dates on purpose).
func leafFromClusterCA(t *testing.T, dir string, notBefore, notAfter time.Time) (certPEM, keyPEM []byte) {
	t.Helper()
	read := func(key string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, "secrets", "audited-ca", key))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ca, err := pki.ParseKeyPair(read("ca.crt"), read("ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: pki.ReplicationCommonName},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

// replaceFile swaps path's content in one rename, keeping its owner and
// mode: PostgreSQL may reread pg_hba.conf or pg_ident.conf at any moment
// (the managers reload on their own), and a file truncated then written in
// place was once read empty, which left peer authentication broken for
// the rest of the test (CI, 2026-12-06).
func replaceFile(path string, data []byte) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp := path + ".tamper"
	if err := os.WriteFile(tmp, data, fi.Mode().Perm()); err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if err := os.Chown(tmp, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
	}
	return os.Rename(tmp, path)
}
