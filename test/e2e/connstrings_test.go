package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgjdbcJar is where Debian's libpostgresql-jdbc-java puts PgJDBC.
const pgjdbcJar = "/usr/share/java/postgresql.jar"

// TestConnectionStringsFollowThePrimary takes the app secret's URIs as an
// application configured from it would, writes through libpq (psql), pgx
// and the real PgJDBC driver over verify-full TLS, switches the primary
// over, and writes again with the same strings: every write must reach the
// new primary. The password has characters URIs reserve, so both
// drivers' decoding is checked too.
func TestConnectionStringsFollowThePrimary(t *testing.T) {
	runAsUser(t)
	java := javaForJDBC(t)
	manifest := filepath.Join(workRoot, "conns.yaml")
	err := os.WriteFile(manifest, []byte(`apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: conns
spec:
  instances: 3
  bootstrap:
    initdb:
      database: app
      owner: app
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	dir := newStateDir(t, "conns")
	mustPgward(t, "local", "up", "-f", manifest, "--dir", dir)
	t.Cleanup(func() { _, _ = pgward(context.Background(), "local", "down", "--purge", "--dir", dir) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// Every character URIs reserve, and pgpass's ':' and '\'; ASCII only,
	// as pgward sets no password that needs SASLprep. The rotation
	// rewrites the secret, as `up` does.
	const password = `p@ss:w/rd?#&=+%41 ;,'"\x[]` //nolint:gosec // G101: a made-up password with every reserved character
	if out, err := pgwardStdin(ctx, password+"\n", "local", "rotate-password", "app", "--password-stdin", "--dir", dir); err != nil {
		t.Fatalf("rotate-password: %v: %s", err, out)
	}
	admin := strings.TrimSpace(mustPgward(t, "local", "uri", "app", "--dir", dir))
	// psql starts on a standby, so only the \connect to the secret's uri
	// can reach the primary.
	startPsql := strings.TrimSpace(mustPgward(t, "local", "uri", "app", "--ro", "--dir", dir))
	exec1(ctx, t, admin, "CREATE TABLE conn_strings (via text NOT NULL, port int NOT NULL)")

	secret := filepath.Join(dir, "secrets", "conns-app")
	uri, jdbc := secretKey(t, dir, "conns-app", "uri"), secretKey(t, dir, "conns-app", "jdbc-uri")
	roURI, roJDBC := secretKey(t, dir, "conns-app", "ro-uri"), secretKey(t, dir, "conns-app", "ro-jdbc-uri")
	ports := instancePorts(t, dir)
	for _, s := range []string{uri, jdbc, roURI, roJDBC} {
		if !strings.Contains(s, "sslmode=verify-full") {
			t.Fatal("a secret URI does not verify the server")
		}
		for _, name := range []string{"conns-1", "conns-2", "conns-3"} {
			if !strings.Contains(s, "localhost:"+strconv.Itoa(ports[name])) {
				t.Fatalf("a secret URI does not list %s", name)
			}
		}
	}
	// The strings as the application holds them, apart from the secret.
	held := filepath.Join(t.TempDir(), "jdbc-uri")
	if err := os.WriteFile(held, []byte(jdbc), 0o600); err != nil {
		t.Fatal(err)
	}

	writes := 0
	writeAll := func(primary string) {
		t.Helper()
		want := ports[primary]
		for _, w := range []struct{ via, got string }{
			{"pgx, held uri", writePgx(ctx, t, uri, "pgx")},
			{"pgx, secret's uri", writePgx(ctx, t, secretKey(t, dir, "conns-app", "uri"), "pgx")},
			{"libpq, held uri", writePsql(ctx, t, startPsql, uri)},
			{"PgJDBC, held jdbc-uri", runJDBC(ctx, t, java, held, "jdbc")},
			{"PgJDBC, secret's jdbc-uri", runJDBC(ctx, t, java, filepath.Join(secret, "jdbc-uri"), "jdbc")},
		} {
			if wantOut := fmt.Sprintf("port=%d recovery=false", want); !strings.HasPrefix(w.got, wantOut) {
				t.Errorf("%s reached %q, want the primary %s (%s)", w.via, w.got, primary, wantOut)
			}
			if strings.HasPrefix(w.via, "PgJDBC") {
				t.Logf("%s: %s", w.via, w.got)
				if !strings.Contains(w.got, "tls=TLSv1.3") {
					t.Errorf("%s: not over TLS 1.3: %q", w.via, w.got)
				}
			}
			writes++
		}
		if got := runJDBC(ctx, t, java, filepath.Join(secret, "ro-jdbc-uri"), ""); !strings.Contains(got, "recovery=true") {
			t.Errorf("ro-jdbc-uri reached a primary: %q", got)
		}
		if got := queryPgx(ctx, t, roURI, "SELECT pg_is_in_recovery()::text"); got != "true" {
			t.Errorf("ro-uri reached a primary (pg_is_in_recovery %s)", got)
		}
	}

	t.Log("writing to the first primary")
	writeAll("conns-1")
	mustPgward(t, "local", "promote", "conns-2", "--dir", dir)
	// The old primary rejoins as a standby; until then the read-only
	// URIs have one standby fewer, which they must tolerate anyway.
	eventually(t, 60*time.Second, "conns-1 streams from conns-2", func() error {
		for _, is := range status(t, dir).Instances {
			if is.Name == "conns-1" && is.State != "streaming" {
				return fmt.Errorf("conns-1: %s %s", is.Role, is.State)
			}
		}
		return nil
	})
	t.Log("writing with the same strings after the switchover")
	writeAll("conns-2")

	if got := secretKey(t, dir, "conns-app", "uri"); got != uri {
		t.Error("the secret's uri changed: the test did not use the same string")
	}
	if got := queryPgx(ctx, t, admin, "SELECT count(*) FROM conn_strings"); got != strconv.Itoa(writes) {
		t.Errorf("the new primary holds %s rows, want %d", got, writes)
	}
	checkNoLeaks(t, dir)
}

// javaForJDBC finds java and PgJDBC, failing (never skipping: CI must run
// this) with how to install them.
func javaForJDBC(t *testing.T) string {
	t.Helper()
	java, err := exec.LookPath("java")
	if err == nil {
		_, err = os.Stat(pgjdbcJar)
	}
	if err != nil {
		t.Fatalf("the JDBC check needs java and %s (Debian: default-jre-headless, libpostgresql-jdbc-java); run hack/install-deps.sh: %v", pgjdbcJar, err)
	}
	return java
}

// runJDBC runs testdata/JdbcWrite.java from source (the JRE compiles it in
// memory) with the JDBC URL in urlFile, so the password stays off the
// command line. An empty tag only reports the server, writing nothing.
func runJDBC(ctx context.Context, t *testing.T, java, urlFile, tag string) string {
	t.Helper()
	args := []string{"-cp", pgjdbcJar, filepath.Join(repoRoot, "test", "e2e", "testdata", "JdbcWrite.java"), urlFile}
	if tag != "" {
		args = append(args, tag)
	}
	cmd := exec.CommandContext(ctx, java, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("PgJDBC with %s: %v\n%s", urlFile, err, out.String())
	}
	return strings.TrimSpace(out.String())
}

// writePgx inserts a row through pgx, which reads multi-host libpq URIs
// and target_session_attrs itself.
func writePgx(ctx context.Context, t *testing.T, uri, via string) string {
	t.Helper()
	return queryPgx(ctx, t, uri, fmt.Sprintf(
		"WITH w AS (INSERT INTO conn_strings VALUES ('%s', inet_server_port()) RETURNING port) "+
			"SELECT format('port=%%s recovery=%%s', port, pg_is_in_recovery()::text) FROM w", via))
}

func queryPgx(ctx context.Context, t *testing.T, uri, sql string) string {
	t.Helper()
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		t.Fatalf("pgx: %v", err)
	}
	defer func() { _ = conn.Close(ctx) }()
	var s string
	if err := conn.QueryRow(ctx, sql).Scan(&s); err != nil {
		t.Fatalf("pgx: %v", err)
	}
	return s
}

func exec1(ctx context.Context, t *testing.T, uri, sql string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatal(err)
	}
}

// writePsql inserts a row through libpq: psql starts on start (a URI
// without a password) and \connect's to uri, which it reads from stdin, so
// the password in uri never reaches a command line.
func writePsql(ctx context.Context, t *testing.T, start, uri string) string {
	t.Helper()
	script := "\\connect '" + uri + "'\n" +
		"INSERT INTO conn_strings VALUES ('libpq', inet_server_port());\n" +
		"SELECT format('port=%s recovery=%s', inet_server_port(), pg_is_in_recovery()::text);\n"
	cmd := exec.CommandContext(ctx, psqlPath(), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", start, "-f", "-")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C", "PGCONNECT_TIMEOUT=5"}
	cmd.Stdin = strings.NewReader(script)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("psql: %v\n%s", err, out.String())
	}
	return strings.TrimSpace(out.String())
}

// instancePorts maps each instance to its PostgreSQL port.
func instancePorts(t *testing.T, dir string) map[string]int {
	t.Helper()
	ports := map[string]int{}
	for _, is := range status(t, dir).Instances {
		ports[is.Name] = is.Port
	}
	return ports
}
