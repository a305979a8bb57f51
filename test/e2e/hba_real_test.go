package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/pgward/pgward/api/v1"
)

// scratchPostgres starts a throw-away PostgreSQL (initdb, socket only, as
// the run-as user) and returns a function running SQL in it. pgward's
// validation is checked against what this real server accepts.
func scratchPostgres(t *testing.T) (dir string, sql func(string) (string, error)) {
	t.Helper()
	osUser := runAsUser(t)
	dir = newStateDir(t, "scratch-"+strings.ReplaceAll(t.Name(), "/", "-"))
	bin := filepath.Dir(psqlPath())
	ctx := context.Background()
	asUser := func(name string, args ...string) *exec.Cmd {
		if os.Geteuid() == 0 {
			return exec.CommandContext(ctx, "runuser", append([]string{"-u", osUser, "--", filepath.Join(bin, name)}, args...)...)
		}
		return exec.CommandContext(ctx, filepath.Join(bin, name), args...)
	}
	if os.Geteuid() == 0 {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.CommandContext(ctx, "chown", osUser, dir).CombinedOutput(); err != nil {
			t.Fatalf("chown: %v\n%s", err, out)
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := asUser("initdb", "-D", data, "-A", "trust", "-U", "postgres").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	// TLS on, as pgward always runs it (hostssl rules need it to load).
	if out, err := exec.CommandContext(ctx, "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
		"-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout", filepath.Join(data, "server.key"),
		"-out", filepath.Join(data, "server.crt")).CombinedOutput(); err != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	if os.Geteuid() == 0 {
		for _, f := range []string{"server.key", "server.crt"} {
			if out, err := exec.CommandContext(ctx, "chown", osUser, filepath.Join(data, f)).CombinedOutput(); err != nil {
				t.Fatalf("chown: %v\n%s", err, out)
			}
		}
	}
	if err := os.Chmod(filepath.Join(data, "server.key"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Not tied to ctx: it must outlive this function; stopped in Cleanup.
	pg := exec.Command("runuser", "-u", osUser, "--", filepath.Join(bin, "postgres"), "-D", data, //nolint:noctx // see above
		"-c", "listen_addresses=", "-c", "unix_socket_directories="+dir, "-c", "port=5499", "-c", "ssl=on")
	if os.Geteuid() != 0 {
		pg = exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-c", "listen_addresses=", //nolint:noctx // see above
			"-c", "unix_socket_directories="+dir, "-c", "port=5499", "-c", "ssl=on")
	}
	logf, err := os.Create(filepath.Join(t.TempDir(), "postgres.log"))
	if err != nil {
		t.Fatal(err)
	}
	pg.Stdout, pg.Stderr = logf, logf
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if out, err := asUser("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop").CombinedOutput(); err != nil {
			t.Errorf("pg_ctl stop: %v\n%s", err, out)
			_ = pg.Process.Kill()
		}
		_ = pg.Wait()
		_ = logf.Close()
	})
	conninfo := fmt.Sprintf("host=%s port=5499 user=postgres dbname=postgres", dir)
	sql = func(q string) (string, error) {
		qctx, qcancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer qcancel()
		return psql(qctx, osUser, conninfo, q)
	}
	eventually(t, 30*time.Second, "the scratch server", func() error {
		_, err := sql("SELECT 1")
		return err
	})
	return dir, sql
}

// TestHBAValidationAgainstPostgreSQL checks pgward's pg_hba rules against a
// real PostgreSQL 15: every line pgward accepts, PostgreSQL loads; every
// line pgward refuses because PostgreSQL would (a method's option on
// another method, a missing mandatory option, a bad value), PostgreSQL
// refuses too (pg_hba_file_rules reads the file as a reload would).
func TestHBAValidationAgainstPostgreSQL(t *testing.T) {
	dir, sql := scratchPostgres(t)
	hba := filepath.Join(dir, "data", "pg_hba.conf")
	accepted := []string{
		"host app app 127.0.0.1/32 scram-sha-256",
		"hostssl all all all scram-sha-256 clientcert=verify-ca",
		"hostssl all all all scram-sha-256 clientcert=verify-full",
		"hostssl all all 10.0.0.0/8 cert clientname=DN map=certs",
		"hostssl all all all cert clientcert=verify-full",
		`hostssl all all all ldap ldapserver=ldap.example.com ldapbasedn="dc=example" ldapbinddn="cn=admin, dc=example" ldapbindpasswd="s e" ldaptls=1`,
		`hostssl all all all ldap ldapserver=ldap ldapprefix=uid= ldapsuffix=",dc=example" ldapport=636 ldapscheme=ldaps`,
		"hostssl all all all ldap ldapurl=ldaps://ldap.example.com/dc=example?uid?sub",
		`hostssl all all all radius radiusservers="10.0.0.1,10.0.0.2" radiussecrets=s radiusports="1812,1813"`, // PostgreSQL resolves the servers when it loads the file
		"hostssl all all all pam pamservice=postgresql pam_use_hostname=1",
		"hostgssenc all all all gss include_realm=0 krb_realm=EXAMPLE.COM map=gss",
		"local all all peer map=local",
		"local all all ident map=local",
		"hostssl all all all password",
		"host all all all md5",
		"host all all 192.168.1.0 255.255.255.0 reject",
	}
	refusedByPostgres := []string{
		"hostssl all all all scram-sha-256 map=m",
		`hostssl all all all ldap ldapurl="ldap://x/dc=x?uid?bogus"`,
		`hostssl all all all ldap ldapurl="http://x/dc=x"`,
		"hostssl all all all md5 pamservice=x",
		"hostssl all all all cert krb_realm=X",
		"host all all all scram-sha-256 clientcert=verify-full",
		"hostssl all all all scram-sha-256 clientcert=1",
		"hostssl all all all cert clientcert=verify-ca",
		"hostssl all all all cert clientname=UID",
		"hostssl all all all ldap",
		"hostssl all all all ldap ldapserver=l",
		"hostssl all all all ldap ldapserver=l ldapprefix=uid= ldapbasedn=dc=x",
		"hostssl all all all ldap ldapserver=l ldapbasedn=dc=x ldapsearchattribute=uid ldapsearchfilter=(uid=$username)",
		"hostssl all all all ldap ldapserver=l ldapbasedn=dc=x ldapport=0",
		"hostssl all all all radius radiussecrets=s",
		"hostssl all all all radius radiusservers=r",
		`hostssl all all all radius radiusservers="a,b,c" radiussecrets="s,t"`,
		"hostssl all all all unknownmethod",
		"host all all all peer",
		"local all all gss",
		"host all all all cert",
		"hostssl all all all ldap ldapserver=ldap ldapprefix=uid= ldapsuffix=,dc=example",
		"hostssl all all all radius radiusservers=a,b radiussecrets=s",
	}
	check := func(line string) string {
		// The first line keeps the test's own connection working; only
		// the line under test can make the file fail.
		if err := os.WriteFile(hba, []byte("local all all trust\n"+line+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if os.Geteuid() == 0 {
			_ = exec.CommandContext(context.Background(), "chown", runAsUser(t), hba).Run()
		}
		// A line PostgreSQL cannot parse has an error, or, for some
		// checks, no auth_method and no error at all.
		out, err := sql("SELECT coalesce(string_agg(coalesce(error, 'not loaded'), '; '), '') FROM pg_hba_file_rules " +
			"WHERE line_number = 2 AND (error IS NOT NULL OR auth_method IS NULL)")
		if err != nil {
			t.Fatalf("pg_hba_file_rules: %v %s", err, out)
		}
		return out
	}
	for _, line := range accepted {
		if _, err := v1.ParseHBARule(line); err != nil {
			t.Errorf("pgward refuses %q, which PostgreSQL accepts: %v", line, err)
		}
		if e := check(line); e != "" {
			t.Errorf("PostgreSQL refuses %q (%s), which pgward accepts", line, e)
		}
	}
	for _, line := range refusedByPostgres {
		if _, err := v1.ParseHBARule(line); err == nil {
			t.Errorf("pgward accepts %q, which PostgreSQL refuses", line)
		}
		if e := check(line); e == "" {
			t.Errorf("PostgreSQL accepts %q: pgward need not refuse it for that reason", line)
		}
	}
	// Stricter than PostgreSQL 15 on purpose: these load, then fail (or
	// are unsafe) when a client connects.
	for _, line := range []string{
		"hostssl all all all ldap ldapserver=l ldapbasedn=dc=x ldapscheme=http", // PostgreSQL 16 refuses it too
		"host all postgres samenet ident map=m",                                 // the client's identd decides
		"host all all all pam",                                                  // password in clear text
	} {
		if _, err := v1.ParseHBARule(line); err == nil {
			t.Errorf("pgward accepts %q", line)
		}
	}
	t.Logf("%d accepted and %d refused lines agree with PostgreSQL %s", len(accepted), len(refusedByPostgres), serverVersion(t, sql))

	// pg_ident: pgward checks system-user expressions with Go's engine;
	// each one it accepts must load in PostgreSQL's.
	ident := filepath.Join(dir, "data", "pg_ident.conf")
	identCheck := func(line string) string {
		t.Helper()
		if err := os.WriteFile(ident, []byte(line+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if os.Geteuid() == 0 {
			_ = exec.CommandContext(context.Background(), "chown", runAsUser(t), ident).Run()
		}
		out, err := sql("SELECT coalesce(string_agg(error, '; '), '') FROM pg_ident_file_mappings WHERE error IS NOT NULL")
		if err != nil {
			t.Fatalf("pg_ident_file_mappings: %v %s", err, out)
		}
		return out
	}
	for _, line := range []string{`m "/^(.*)@example\.com$" \1`, `m /^[a-z]+@corp$ app`, `m "/^(alice|bob)$" app`, `m "/^x{2,3}$" app`, `m "/(?i)^ab$" app`} {
		if err := v1.ValidateIdentLine(line); err != nil {
			t.Errorf("pgward refuses %q: %v", line, err)
		}
		if e := identCheck(line); e != "" {
			t.Errorf("PostgreSQL refuses %q (%s), which pgward accepts", line, e)
		}
	}
	for _, line := range []string{`m "/^(?P<n>alice)$" app`, `m "/^(?<n>alice)$" app`, `m /^\p{L}+$ app`, `m /^alice\z app`, `m /^\Qa.b\E$ app`, `m "/(?U)^ab$" app`} {
		if err := v1.ValidateIdentLine(line); err == nil {
			t.Errorf("pgward accepts %q", line)
		}
		if e := identCheck(line); e == "" {
			t.Logf("PostgreSQL loads %q; pgward refuses it anyway", line)
		}
	}
}

func serverVersion(t *testing.T, sql func(string) (string, error)) string {
	t.Helper()
	v, err := sql("SHOW server_version")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := strconv.Atoi(strings.SplitN(v, ".", 2)[0]); err != nil {
		t.Fatalf("server_version %q", v)
	}
	return v
}
