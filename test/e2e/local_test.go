package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// clusterStatus mirrors `pgward local status -o json`.
type clusterStatus struct {
	Cluster           string `json:"cluster"`
	ControllerRunning bool   `json:"controllerRunning"`
	CurrentPrimary    string `json:"currentPrimary"`
	Instances         []struct {
		Name        string `json:"name"`
		Role        string `json:"role"`
		State       string `json:"state"`
		Host        string `json:"host"`
		Port        int    `json:"port"`
		SocketDir   string `json:"socketDir"`
		StatusPort  int    `json:"statusPort"`
		Timeline    int    `json:"timeline"`
		CurrentLSN  string `json:"currentLSN"`
		ReplayedLSN string `json:"replayedLSN"`
		LagBytes    *int64 `json:"lagBytes"`
		TLS         string `json:"tls"`
		ClientDN    string `json:"clientDN"`
	} `json:"instances"`
}

func status(t *testing.T, dir string) clusterStatus {
	t.Helper()
	out := mustPgward(t, "local", "status", "-o", "json", "--dir", dir)
	var cs clusterStatus
	if err := json.Unmarshal([]byte(out), &cs); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	return cs
}

// TestLocalCluster brings the 3-instance sample up and checks, against the
// real processes, what the security model promises.
func TestLocalCluster(t *testing.T) {
	osUser := runAsUser(t)
	dir := newStateDir(t, "sample")
	sample := filepath.Join(repoRoot, "config", "samples", "cluster-example.yaml")
	ctx := context.Background()

	out := mustPgward(t, "local", "up", "-f", sample, "--dir", dir)
	t.Logf("up:\n%s", out)
	for _, want := range []string{"PKI", "initdb", "cloning the primary", "streaming", "psql"} {
		if !strings.Contains(out, want) {
			t.Errorf("up output lacks %q", want)
		}
	}
	t.Cleanup(func() {
		if _, err := os.Stat(dir); err == nil {
			o, err := pgward(context.Background(), "local", "down", "--dir", dir)
			if err != nil {
				t.Errorf("cleanup down: %v\n%s", err, o)
			}
		}
	})

	cs := status(t, dir)
	if len(cs.Instances) != 3 || cs.CurrentPrimary != "cluster-example-1" {
		t.Fatalf("status: want 3 instances with primary cluster-example-1, got %+v", cs)
	}
	primary := cs.Instances[0]
	sock := func(i int) string {
		return fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres", cs.Instances[i].SocketDir, cs.Instances[i].Port)
	}

	t.Run("replicas stream over TLS 1.3 with a client certificate", func(t *testing.T) {
		for _, r := range cs.Instances[1:] {
			if r.Role != "replica" || r.State != "streaming" || r.TLS != "TLSv1.3" || r.ClientDN != "/CN=streaming_replica" {
				t.Errorf("status of %s: %+v", r.Name, r)
			}
		}
		got, err := psql(ctx, osUser, sock(0), `SELECT r.application_name, r.state, s.ssl, s.version, s.client_dn
			FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) ORDER BY 1`)
		if err != nil {
			t.Fatalf("pg_stat_replication: %v: %s", err, got)
		}
		want := "cluster-example-2|streaming|t|TLSv1.3|/CN=streaming_replica\ncluster-example-3|streaming|t|TLSv1.3|/CN=streaming_replica"
		if got != want {
			t.Errorf("pg_stat_replication:\n got %q\nwant %q", got, want)
		}
	})

	uri := strings.TrimSpace(mustPgward(t, "local", "uri", "app", "--dir", dir))
	t.Run("without superuser access postgres gets no password and no URI", func(t *testing.T) {
		out, err := pgward(ctx, "local", "uri", "postgres", "--dir", dir)
		if err == nil || !strings.Contains(out, "superuser access is off") {
			t.Errorf("uri postgres: %v: %s", err, out)
		}
		if _, err := os.Stat(filepath.Join(dir, "secrets", "cluster-example-superuser")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("a superuser secret exists: %v", err)
		}
		got, err := psql(ctx, osUser, sock(0), "SELECT rolpassword IS NULL FROM pg_authid WHERE rolname = 'postgres'")
		if err != nil || got != "t" {
			t.Errorf("postgres has a password: %v %q", err, got)
		}
	})
	t.Run("app owner connects with verify-full TLS and the generated pgpass", func(t *testing.T) {
		if strings.Contains(uri, "password") {
			t.Fatalf("uri must not carry a password: %s", uri)
		}
		got, err := psql(ctx, "", uri, `SELECT current_user, ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()`)
		if err != nil || got != "app|t|TLSv1.3" {
			t.Fatalf("connect as app: %v: %q", err, got)
		}
	})

	t.Run("a row written on the primary is read on both replicas", func(t *testing.T) {
		if out, err := psql(ctx, "", uri, `CREATE TABLE e2e(id int primary key, note text); INSERT INTO e2e VALUES (1, 'written on the primary')`); err != nil {
			t.Fatalf("write: %v: %s", err, out)
		}
		for i := 1; i < 3; i++ {
			conn := fmt.Sprintf("host=%s port=%d user=postgres dbname=app", cs.Instances[i].SocketDir, cs.Instances[i].Port)
			eventually(t, 10*time.Second, "row on "+cs.Instances[i].Name, func() error {
				got, err := psql(ctx, osUser, conn, `SELECT note FROM e2e WHERE id = 1`)
				if err != nil || got != "written on the primary" {
					return fmt.Errorf("%w: %q", err, got)
				}
				return nil
			})
		}
	})

	t.Run("manifest pg_hba lines sit before the catch-all and take effect", func(t *testing.T) {
		hba, err := os.ReadFile(filepath.Join(dir, "instances", primary.Name, "conf", "pg_hba.conf"))
		if err != nil {
			t.Fatal(err)
		}
		lines := ruleLines(string(hba))
		n := len(lines)
		if n < 4 || strings.Join(strings.Fields(lines[n-2]), " ") != "hostssl all all all scram-sha-256" ||
			strings.Join(strings.Fields(lines[n-1]), " ") != "host all all all reject" {
			t.Fatalf("last rules are not the catch-all:\n%s", hba)
		}
		if got := strings.Join(strings.Fields(lines[n-3]), " "); got != "host all app all reject" {
			t.Errorf("rule before the catch-all = %q, want the manifest's last line", got)
		}
		// The manifest admits app only over TLS and only to its database.
		other := strings.Replace(uri, "/app?", "/postgres?", 1)
		if out, err := psql(ctx, "", other, "SELECT 1"); err == nil || !strings.Contains(out, "pg_hba.conf rejects connection") {
			t.Errorf("app to database postgres: want rejected by pg_hba, got %v: %s", err, out)
		}
		plain := strings.Replace(uri, "sslmode=verify-full", "sslmode=disable", 1)
		if out, err := psql(ctx, "", plain, "SELECT 1"); err == nil || !strings.Contains(out, "pg_hba.conf rejects connection") {
			t.Errorf("app without TLS: want rejected by pg_hba, got %v: %s", err, out)
		}
	})

	caFile := filepath.Join(dir, "secrets", "cluster-example-ca", "ca.crt")
	repl := filepath.Join(dir, "secrets", "cluster-example-replication")
	t.Run("streaming_replica is refused without its certificate or TLS", func(t *testing.T) {
		base := fmt.Sprintf("host=localhost port=%d user=streaming_replica sslrootcert=%s", primary.Port, caFile)
		pwFile := filepath.Join(workRoot, "repl.pgpass")
		if err := os.WriteFile(pwFile, []byte("*:*:*:streaming_replica:guess\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cases := []struct{ name, conninfo, want string }{
			{"password, no certificate", base + " dbname=postgres sslmode=verify-full passfile=" + pwFile, "certificate"},
			{"replication, no certificate", base + " dbname=replication replication=true sslmode=verify-full passfile=" + pwFile, "certificate"},
			{"no TLS", base + " dbname=postgres sslmode=disable passfile=" + pwFile, "pg_hba.conf rejects connection"},
			{"replication without TLS", base + " dbname=replication replication=true sslmode=disable", "pg_hba.conf rejects replication connection"},
			{"certificate to another database", base + " dbname=app sslmode=verify-full sslcert=" + repl + "/tls.crt sslkey=" + repl + "/tls.key", "pg_hba.conf rejects connection"},
		}
		for _, c := range cases {
			out, err := psql(ctx, "", c.conninfo, "SELECT 1")
			if err == nil || !strings.Contains(out, c.want) {
				t.Errorf("%s: want refusal containing %q, got %v: %s", c.name, c.want, err, out)
			}
		}
		// The positive control: the certificate alone is enough.
		ok := base + " dbname=postgres sslmode=verify-full sslcert=" + repl + "/tls.crt sslkey=" + repl + "/tls.key"
		if out, err := psql(ctx, "", ok, "SELECT current_user"); err != nil || out != "streaming_replica" {
			t.Errorf("with its certificate: %v: %s", err, out)
		}
	})

	t.Run("status API requires the controller's certificate", func(t *testing.T) {
		checkStatusAPI(t, dir, primary.StatusPort)
	})

	t.Run("a renewed server certificate is served without a restart", func(t *testing.T) {
		serial := renewServerCert(t, dir)
		eventually(t, 30*time.Second, "PostgreSQL and the status port serve the new certificate", func() error {
			if got := postgresCertSerial(t, primary.Port); got != serial {
				return fmt.Errorf("PostgreSQL serves serial %s, want %s", got, serial)
			}
			if got := statusCertSerial(t, dir, primary.StatusPort); got != serial {
				return fmt.Errorf("status port serves serial %s, want %s", got, serial)
			}
			return nil
		})
	})

	t.Run("key and pgpass files are 0600, directories 0700", func(t *testing.T) {
		checkModes(t, dir)
	})

	t.Run("pgward local audit passes every control", func(t *testing.T) {
		// Three instances, replicas streaming, the sample's own pg_hba lines.
		expectAudit(t, dir, nil, map[string]string{
			"pg-hba-rules":        "cluster-example-3: ",
			"replication-streams": "cluster-example-1: cluster-example-2, cluster-example-3: TLSv1.3, /CN=streaming_replica",
		})
	})

	t.Run("no generated password in logs or command lines", func(t *testing.T) {
		checkNoLeaks(t, dir)
	})

	t.Run("a changed manifest is applied to the running cluster", func(t *testing.T) {
		orig, err := os.ReadFile(sample)
		if err != nil {
			t.Fatal(err)
		}
		changed := filepath.Join(workRoot, "sample-changed.yaml")
		text := strings.Replace(string(orig), `log_min_duration_statement: "1000"`, `log_min_duration_statement: "250"`, 1)
		if err := os.WriteFile(changed, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		mustPgward(t, "local", "up", "-f", changed, "--dir", dir)
		eventually(t, 30*time.Second, "reloaded parameter", func() error {
			got, err := psql(ctx, osUser, sock(0), "SHOW log_min_duration_statement")
			if err != nil || got != "250ms" {
				return fmt.Errorf("%w: %q", err, got)
			}
			return nil
		})
		scaled := filepath.Join(workRoot, "sample-scaled.yaml")
		if err := os.WriteFile(scaled, []byte(strings.Replace(text, "instances: 3", "instances: 4", 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := pgward(ctx, "local", "up", "-f", scaled, "--dir", dir)
		if err == nil || !strings.Contains(out, "cannot change while the cluster runs") {
			t.Errorf("scaling a running cluster: want a clear refusal, got %v: %s", err, out)
		}
	})

	t.Run("down stops every process and up resumes without data loss", func(t *testing.T) {
		pids := clusterPids(t, dir)
		if len(pids) < 7 { // controller, 3 instance managers, 3 postmasters (and their children)
			t.Fatalf("expected the cluster's processes, found %v", pids)
		}
		// Nothing of the cluster runs as root, even when pgward was started by root.
		for _, p := range pids {
			pid, _, _ := strings.Cut(p, ":")
			if uid := procUID(t, pid); uid == "0" {
				t.Errorf("process %s runs as root", p)
			}
		}
		mustPgward(t, "local", "down", "--dir", dir)
		if left := clusterPids(t, dir); len(left) > 0 {
			t.Fatalf("processes left after down: %v", left)
		}
		mustPgward(t, "local", "up", "-f", sample, "--dir", dir)
		got, err := psql(ctx, "", uri, `SELECT note FROM e2e WHERE id = 1`)
		if err != nil || got != "written on the primary" {
			t.Fatalf("after resume: %v: %q", err, got)
		}
		mustPgward(t, "local", "down", "--purge", "--dir", dir)
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("--purge left %s: %v", dir, err)
		}
	})
}

// ruleLines drops comments and blank lines.
func ruleLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
			out = append(out, t)
		}
	}
	return out
}

func checkStatusAPI(t *testing.T, dir string, port int) {
	t.Helper()
	secret := func(name, key string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, "secrets", name, key))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(secret("cluster-example-ca", "ca.crt"))
	var request func(method, path string, version uint16, certs ...tls.Certificate) (int, string, error)
	get := func(path string, certs ...tls.Certificate) (int, string, error) {
		return request(http.MethodGet, path, tls.VersionTLS13, certs...)
	}
	request = func(method, path string, version uint16, certs ...tls.Certificate) (int, string, error) {
		cfg := &tls.Config{MinVersion: version, MaxVersion: version, RootCAs: roots, ServerName: "localhost"}
		if len(certs) > 0 {
			// Always present the certificate, even one the server's list of
			// acceptable CAs does not name, so the server has to judge it.
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &certs[0], nil }
		}
		cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
		defer cl.CloseIdleConnections()
		req, _ := http.NewRequestWithContext(context.Background(), method, "https://127.0.0.1:"+strconv.Itoa(port)+path, strings.NewReader("{}"))
		resp, err := cl.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	pair := func(name string) tls.Certificate {
		c, err := tls.X509KeyPair(secret(name, "tls.crt"), secret(name, "tls.key"))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if code, _, err := get("/healthz"); err != nil || code != http.StatusOK {
		t.Errorf("/healthz without a certificate: %d %v", code, err)
	}
	if code, body, err := get("/pg/status"); err != nil || code != http.StatusUnauthorized || !strings.Contains(body, "client certificate required") {
		t.Errorf("/pg/status without a certificate: want 401, got %d %q %v", code, body, err)
	}
	if code, body, err := get("/pg/status", pair("cluster-example-replication")); err != nil || code != http.StatusForbidden {
		t.Errorf("/pg/status with streaming_replica's certificate: want 403, got %d %q %v", code, body, err)
	}
	if code, body, err := get("/pg/status", pair("cluster-example-controller")); err != nil || code != http.StatusOK || !strings.Contains(body, `"role":"primary"`) {
		t.Errorf("/pg/status as the controller: want 200 primary, got %d %q %v", code, body, err)
	}
	// /pg/command executes what it is told: the same certificate rules.
	// (An empty command is refused as bad input, which proves the
	// controller's certificate reached the handler, and changes nothing.)
	if code, body, err := request(http.MethodPost, "/pg/command", tls.VersionTLS13); err != nil || code != http.StatusUnauthorized {
		t.Errorf("/pg/command without a certificate: want 401, got %d %q %v", code, body, err)
	}
	if code, body, err := request(http.MethodPost, "/pg/command", tls.VersionTLS13, pair("cluster-example-replication")); err != nil || code != http.StatusForbidden {
		t.Errorf("/pg/command with streaming_replica's certificate: want 403, got %d %q %v", code, body, err)
	}
	if code, body, err := request(http.MethodPost, "/pg/command", tls.VersionTLS13, pair("cluster-example-controller")); err != nil || code != http.StatusBadRequest {
		t.Errorf("/pg/command as the controller with an empty command: want 400, got %d %q %v", code, body, err)
	}
	// TLS 1.3 only: a client that offers at most TLS 1.2 gets no answer.
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS11} {
		if _, _, err := request(http.MethodGet, "/healthz", v); err == nil || !strings.Contains(err.Error(), "protocol version") {
			t.Errorf("TLS version %x accepted by the status port (%v)", v, err)
		}
	}
	foreign := foreignClientCert(t)
	if _, _, err := get("/pg/status", foreign); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("/pg/status with a certificate from another CA: want a TLS refusal, got %v", err)
	}
}

func checkModes(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		mode := fi.Mode().Perm()
		switch {
		case d.IsDir() && (rel == "." || strings.HasPrefix(rel, "secrets") || strings.HasSuffix(rel, "/data")):
			if mode != 0o700 {
				t.Errorf("%s: mode %v, want 0700", rel, mode)
			}
		case !d.IsDir() && (strings.HasSuffix(p, ".key") || filepath.Base(p) == "pgpass" || filepath.Base(p) == "password"):
			if mode != 0o600 {
				t.Errorf("%s: mode %v, want 0600", rel, mode)
			}
		case !d.IsDir() && strings.HasPrefix(rel, "secrets"):
			if mode&0o077 != 0 {
				t.Errorf("%s: mode %v, want no group/other access", rel, mode)
			}
		case !d.IsDir() && d.Type().IsRegular():
			// Logs, state, manifests, rendered configuration: they hold
			// statements, names and the cluster's layout.
			if mode&0o077 != 0 {
				t.Errorf("%s: mode %v, want 0600 (no group/other access)", rel, mode)
			}
		case d.IsDir():
			if mode&0o022 != 0 {
				t.Errorf("%s: mode %v, want no group/other write", rel, mode)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkNoLeaks looks for every generated password in every log and config
// file of the cluster and in every running process's command line.
func checkNoLeaks(t *testing.T, dir string) {
	t.Helper()
	var passwords []string
	_ = filepath.WalkDir(filepath.Join(dir, "secrets"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == "password" {
			b, _ := os.ReadFile(p)
			passwords = append(passwords, string(b))
		}
		return nil
	})
	if len(passwords) == 0 {
		t.Fatal("no generated password found to look for")
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		if strings.Contains(p, "/secrets/") || strings.Contains(p, "/data/") || strings.Contains(p, "/bin/") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, pw := range passwords {
			if strings.Contains(string(b), pw) {
				t.Errorf("a generated password appears in %s", p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, pw := range passwords {
			if strings.Contains(string(b), pw) {
				t.Errorf("a generated password appears in the command line of %s", p)
			}
		}
	}
}

// clusterPids lists processes whose command line or working directory
// belongs to the cluster's state directory: the controller, the instance
// managers and every postgres process (they run in their data directory).
func clusterPids(t *testing.T, dir string) []string {
	t.Helper()
	var pids []string
	entries, _ := filepath.Glob("/proc/[0-9]*")
	for _, e := range entries {
		cmd, _ := os.ReadFile(e + "/cmdline")
		cwd, _ := os.Readlink(e + "/cwd")
		if strings.Contains(string(cmd), dir) || strings.HasPrefix(cwd, dir) {
			pids = append(pids, filepath.Base(e)+":"+strings.ReplaceAll(string(cmd), "\x00", " "))
		}
	}
	return pids
}

// procUID returns the real uid of pid from /proc.
func procUID(t *testing.T, pid string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" {
			return f[1]
		}
	}
	return ""
}
