package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgward/pgward/internal/pki"
)

const ldapSuffix = "dc=example,dc=org"

// startSlapd runs a real OpenLDAP server (Debian's slapd) as osUser on
// loopback, ldaps only, with a certificate from a CA of its own that names
// 127.0.0.1 (and no host name). It holds alice and carol
// (ou=people, password "<name>-ldap-pw") and the search account
// cn=search (password searchPW). It returns the ldaps port and the CA.
func startSlapd(t *testing.T, osUser, searchPW string) (int, []byte) {
	t.Helper()
	slapd, err := exec.LookPath("slapd")
	if err != nil {
		if _, err = os.Stat("/usr/sbin/slapd"); err != nil {
			t.Fatal("slapd is not installed (hack/install-deps.sh installs slapd and ldap-utils)")
		}
		slapd = "/usr/sbin/slapd"
	}
	dir := filepath.Join(workRoot, "slapd")
	if err := os.MkdirAll(filepath.Join(dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	ca, err := pki.NewCA(rand.Reader, time.Now(), "ldap test CA")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.IssueServer(rand.Reader, time.Now(), "127.0.0.1", nil, []net.IP{net.IPv4(127, 0, 0, 1).To4()})
	if err != nil {
		t.Fatal(err)
	}
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	conf := fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
pidfile %[1]s/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
TLSCertificateFile %[1]s/server.crt
TLSCertificateKeyFile %[1]s/server.key
TLSCACertificateFile %[1]s/ca.crt
database mdb
suffix "%[2]s"
rootdn "cn=admin,%[2]s"
directory %[1]s/db
`, dir, ldapSuffix)
	ldif := fmt.Sprintf(`dn: %[1]s
objectClass: dcObject
objectClass: organization
o: example
dc: example

dn: ou=people,%[1]s
objectClass: organizationalUnit
ou: people

dn: cn=search,%[1]s
objectClass: person
cn: search
sn: search
userPassword: %[2]s
`, ldapSuffix, searchPW)
	for _, u := range []string{"alice", "carol"} {
		ldif += fmt.Sprintf("\ndn: uid=%[1]s,ou=people,%[2]s\nobjectClass: inetOrgPerson\nuid: %[1]s\ncn: %[1]s\nsn: %[1]s\nuserPassword: %[1]s-ldap-pw\n", u, ldapSuffix)
	}
	files := map[string][]byte{"slapd.conf": []byte(conf), "data.ldif": []byte(ldif),
		"ca.crt": ca.CertPEM, "server.crt": srv.CertPEM, "server.key": srv.KeyPEM}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cred := asUser(t, osUser)
	if cred != nil {
		_ = filepath.WalkDir(dir, func(p string, _ fs.DirEntry, _ error) error {
			return os.Chown(p, int(cred.Uid), int(cred.Gid))
		})
	}
	add := exec.CommandContext(context.Background(), "/usr/sbin/slapadd", "-f", filepath.Join(dir, "slapd.conf"), "-l", filepath.Join(dir, "data.ldif")) // #nosec G204 -- test paths
	add.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("slapadd: %v\n%s", err, out)
	}
	cmd := exec.CommandContext(context.Background(), slapd, "-f", filepath.Join(dir, "slapd.conf"), // #nosec G204 -- test paths
		"-h", fmt.Sprintf("ldaps://127.0.0.1:%d/", port), "-d", "0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	logf, err := os.Create(filepath.Join(workRoot, "slapd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = logf.Close()
	})
	eventually(t, 10*time.Second, "slapd listening", func() error {
		d := net.Dialer{Timeout: time.Second}
		c, err := d.DialContext(context.Background(), "tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return err
		}
		return c.Close()
	})
	return port, ca.CertPEM
}

// asUser is the credential of osUser when the test runs as root (nil
// otherwise: the test's own user is unprivileged already).
func asUser(t *testing.T, osUser string) *syscall.Credential {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup(osUser)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)} // #nosec G115 -- ids of a real user
}

// TestLDAP: postgresql.ldap with bindSearchAuth against a real slapd over
// ldaps. alice, a role without a password, logs in with her directory
// password; a wrong one fails; the bind password (from a secret) reaches
// pg_hba.conf (0600) and no log. A manifest pg_hba line (simple bind,
// ldapprefix/ldapsuffix) naming the server by a host name its certificate
// does not hold fails for carol even with her right password: PostgreSQL
// verifies the directory's certificate. A bind password changed in its
// secret applies without a restart.
func TestLDAP(t *testing.T) {
	osUser := runAsUser(t)
	const bindPW = "Bind Pw, with spaces=and;odd'chars" // #nosec G101 -- the test directory's own
	port, caPEM := startSlapd(t, osUser, bindPW)
	indent := "    " + strings.ReplaceAll(strings.TrimSpace(string(caPEM)), "\n", "\n    ")
	manifest := fmt.Sprintf(`apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: ldap
spec:
  instances: 1
  managed:
    roles:
    - {name: alice, login: true, disablePassword: true}
    - {name: carol, login: true, disablePassword: true}
  postgresql:
    pg_hba:
    - hostssl all carol all ldap ldapserver=localhost ldapport=%[1]d ldapscheme=ldaps ldapprefix="uid=" ldapsuffix=",ou=people,%[2]s"
    ldap:
      server: 127.0.0.1
      port: %[1]d
      scheme: ldaps
      caSecret: {name: directory-ca, key: ca.crt}
      bindSearchAuth:
        baseDN: "ou=people,%[2]s"
        bindDN: "cn=search,%[2]s"
        bindPassword: {name: directory-bind, key: password}
        searchAttribute: uid
---
apiVersion: v1
kind: Secret
metadata:
  name: directory-bind
stringData:
  password: %[3]q
---
apiVersion: v1
kind: Secret
metadata:
  name: directory-ca
stringData:
  ca.crt: |
%[4]s
`, port, ldapSuffix, bindPW, indent)
	dir := upCluster(t, "ldap", manifest)
	st := status(t, dir)
	if len(st.Instances) != 1 {
		t.Fatalf("status: %+v", st)
	}
	pgPort := st.Instances[0].Port
	login := func(role, password string) error {
		pass := filepath.Join(workRoot, role+".pgpass")
		if err := os.WriteFile(pass, []byte("*:*:*:"+role+":"+password+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := psql(context.Background(), "", fmt.Sprintf("host=localhost port=%d dbname=app user=%s sslmode=verify-full sslrootcert=%s passfile=%s",
			pgPort, role, filepath.Join(dir, "secrets", "ldap-ca", "ca.crt"), pass), "SELECT current_user")
		if err != nil || out != role {
			return fmt.Errorf("%w %s", err, out)
		}
		return nil
	}
	// The roles come from spec.managed.roles, reconciled after start.
	eventually(t, 20*time.Second, "alice logs in with her LDAP password", func() error { return login("alice", "alice-ldap-pw") })
	if err := login("alice", "wrong-pw"); err == nil || !strings.Contains(err.Error(), "LDAP authentication failed") {
		t.Errorf("alice with a wrong password: want LDAP authentication failed, got %v", err)
	}
	if err := login("carol", "carol-ldap-pw"); err == nil || !strings.Contains(err.Error(), "LDAP authentication failed") {
		t.Errorf("carol through a server name the LDAP certificate does not hold: want a failure, got %v", err)
	}
	// A bind password changed in its secret reaches pg_hba.conf without a
	// restart: a wrong one makes the search bind, and so alice, fail; the
	// right one back, she logs in again.
	bindFile := filepath.Join(dir, "secrets", "directory-bind", "password")
	setBind := func(pw string) {
		t.Helper()
		if err := os.WriteFile(bindFile, []byte(pw), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	setBind("not-the-bind-password")
	eventually(t, 10*time.Second, "a wrong bind password applied", func() error {
		if login("alice", "alice-ldap-pw") == nil {
			return fmt.Errorf("alice still logs in")
		}
		return nil
	})
	setBind(bindPW)
	eventually(t, 10*time.Second, "the right bind password applied again", func() error { return login("alice", "alice-ldap-pw") })

	// The security audit accepts the ldap pg_hba.conf (it compares the
	// bind password masked) and prints no bind password.
	out, err := pgward(context.Background(), "local", "audit", "--dir", dir)
	if err != nil {
		t.Errorf("audit of an LDAP cluster: %v\n%s", err, strings.ReplaceAll(out, bindPW, "<bind password>"))
	}
	if strings.Contains(out, bindPW) {
		t.Error("the audit prints the bind password")
	}

	// The bind password: in pg_hba.conf (0600) and its secret, nowhere else.
	var hbaSeen bool
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.Contains(p, "/secrets/directory-bind/") {
			return nil
		}
		data, err := os.ReadFile(p) // #nosec G304 -- the test's state dir
		if err != nil {
			return nil
		}
		if !strings.Contains(string(data), bindPW) {
			return nil
		}
		if filepath.Base(p) != "pg_hba.conf" {
			t.Errorf("the bind password is in %s", p)
			return nil
		}
		hbaSeen = true
		if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", p, fi.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !hbaSeen {
		t.Error("no pg_hba.conf holds the bind password: the search+bind path was not exercised")
	}
}
