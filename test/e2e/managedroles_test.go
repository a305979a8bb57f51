package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestManagedRoles: spec.managed.roles creates, alters and drops roles as
// declared (attributes, connection limit, expiry, memberships, comment, a
// password from a secret, none), repairs a role changed by hand, applies a
// password changed in its secret, and refuses the declarations that would
// make a role a superuser or give it the server's files.
func TestManagedRoles(t *testing.T) {
	osUser := runAsUser(t)
	manifest := `apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: roles
spec:
  instances: 1
  managed:
    roles:
    - name: dante
      comment: Dante Alighieri
      login: true
      createdb: true
      connectionLimit: 4
      validUntil: "2030-01-01T00:00:00Z"
      inRoles: [pg_monitor, pg_signal_backend]
      passwordSecret: {name: roles-dante}
    - name: petrarca
      inherit: false
      disablePassword: true
    - name: gone
      ensure: absent
---
apiVersion: v1
kind: Secret
metadata:
  name: roles-dante
stringData:
  username: dante
  password: "first-Passw0rd"
`
	dir := upCluster(t, "roles", manifest)
	ctx := context.Background()
	var st struct {
		Instances []struct {
			Port      int    `json:"port"`
			SocketDir string `json:"socketDir"`
		} `json:"instances"`
	}
	if err := json.Unmarshal([]byte(mustPgward(t, "local", "status", "-o", "json", "--dir", dir)), &st); err != nil || len(st.Instances) != 1 {
		t.Fatalf("status: %v", err)
	}
	port, sock := st.Instances[0].Port, st.Instances[0].SocketDir
	super := func(sql string) string {
		t.Helper()
		out, err := psql(ctx, osUser, fmt.Sprintf("host=%s port=%d dbname=postgres user=postgres", sock, port), sql)
		if err != nil {
			t.Fatalf("%s: %v %s", sql, err, out)
		}
		return out
	}
	login := func(password string) error {
		pass := filepath.Join(workRoot, "dante.pgpass")
		if err := os.WriteFile(pass, []byte("*:*:*:dante:"+password+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := psql(ctx, "", fmt.Sprintf("host=localhost port=%d dbname=app user=dante sslmode=verify-full sslrootcert=%s passfile=%s",
			port, filepath.Join(dir, "secrets", "roles-ca", "ca.crt"), pass), "SELECT current_user")
		if err != nil || out != "dante" {
			return fmt.Errorf("%w %s", err, out)
		}
		return nil
	}
	const attrs = `SELECT rolcanlogin, rolcreatedb, rolcreaterole, rolinherit, rolconnlimit, rolvaliduntil AT TIME ZONE 'UTC',
		shobj_description(oid, 'pg_authid'), array(SELECT b.rolname FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid WHERE m.member = r.oid ORDER BY 1)
		FROM pg_roles r WHERE rolname = 'dante'`
	const want = `t|t|f|t|4|2030-01-01 00:00:00|Dante Alighieri|{pg_monitor,pg_signal_backend}`
	eventually(t, 15*time.Second, "dante as declared", func() error {
		if got := super(attrs); got != want {
			return fmt.Errorf("dante: %s", got)
		}
		return nil
	})
	if err := login("first-Passw0rd"); err != nil {
		t.Errorf("dante cannot log in with its secret's password: %v", err)
	}
	if got := super(`SELECT rolcanlogin, rolinherit, rolpassword IS NULL FROM pg_authid WHERE rolname = 'petrarca'`); got != "f|f|t" {
		t.Errorf("petrarca: %s", got)
	}

	// Changed by hand, put back; a role declared absent, dropped.
	super(`ALTER ROLE dante NOLOGIN CONNECTION LIMIT 1 PASSWORD 'by-hand'; GRANT pg_read_all_data TO dante;
		COMMENT ON ROLE dante IS 'x'; ALTER ROLE petrarca PASSWORD 'by-hand'; CREATE ROLE gone`)
	start := time.Now()
	eventually(t, 30*time.Second, "drift repaired", func() error {
		if got := super(attrs); got != want {
			return fmt.Errorf("dante: %s", got)
		}
		if got := super(`SELECT count(*) FROM pg_roles WHERE rolname = 'gone'`); got != "0" {
			return fmt.Errorf("gone still exists")
		}
		if got := super(`SELECT rolpassword IS NULL FROM pg_authid WHERE rolname = 'petrarca'`); got != "t" {
			return fmt.Errorf("petrarca has a password")
		}
		return login("first-Passw0rd")
	})
	t.Logf("drift repaired in %s", time.Since(start).Round(100*time.Millisecond))

	// A new password in the secret applies without a restart.
	if err := os.WriteFile(filepath.Join(dir, "secrets", "roles-dante", "password"), []byte("second-Passw0rd"), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "the new password", func() error { return login("second-Passw0rd") })
	if login("first-Passw0rd") == nil {
		t.Error("the old password still works")
	}
	// A steady cluster: checked every 10 s, nothing to do, nothing run.
	reconciled := func() int {
		n := 0
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, ".log") {
				b, _ := os.ReadFile(p)
				n += strings.Count(string(b), "managed roles reconciled")
			}
			return nil
		})
		return n
	}
	before := reconciled()
	time.Sleep(12 * time.Second)
	if after := reconciled(); after != before || before == 0 {
		t.Errorf("managed roles reconciled %d times before, %d after 12 steady seconds: want statements only on changes", before, after)
	}

	for _, c := range []struct{ change, want string }{
		{"      createdb: true\n", "      createrole: true\n"},
		{"      createdb: true\n", "      superuser: true\n"},
		{"      createdb: true\n", "      replication: true\n"},
		{"[pg_monitor, pg_signal_backend]", "[pg_execute_server_program]"},
		{"[pg_monitor, pg_signal_backend]", "[postgres]"},
		{"name: gone", "name: streaming_replica"},
		{"name: gone\n      ensure: absent", "name: app\n      ensure: absent"},
	} {
		bad := strings.Replace(manifest, c.change, c.want, 1)
		d := filepath.Join(workRoot, "roles-bad")
		out, err := pgward(ctx, "local", "up", "-f", writeManifest(t, "roles-bad.yaml", bad), "--dir", d)
		if err == nil || !strings.Contains(out, "spec.managed.roles[") {
			t.Errorf("%s: want a refusal naming spec.managed.roles, got %v\n%s", strings.TrimSpace(c.want), err, out)
			_, _ = pgward(ctx, "local", "down", "--purge", "--dir", d)
		}
	}
}
