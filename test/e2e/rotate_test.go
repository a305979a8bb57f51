package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestRotatePassword rotates the app owner's and the superuser's passwords
// on a running two-instance cluster: no restart, open sessions kept, the
// old password refused for new ones, the new one working through
// `pgward local uri` (pgpass), within seconds.
func TestRotatePassword(t *testing.T) {
	runAsUser(t)
	manifest := filepath.Join(workRoot, "rot.yaml")
	err := os.WriteFile(manifest, []byte(`apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: rot
spec:
  instances: 2
  enableSuperuserAccess: true
  bootstrap:
    initdb:
      database: app
      owner: app
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	dir := newStateDir(t, "rot")
	mustPgward(t, "local", "up", "-f", manifest, "--dir", dir)
	t.Cleanup(func() { _, _ = pgward(context.Background(), "local", "down", "--purge", "--dir", dir) })
	ctx := context.Background()
	pids := postmasterPids(t, dir, "rot-1", "rot-2")

	uri := strings.TrimSpace(mustPgward(t, "local", "uri", "app", "--dir", dir))
	oldPassword := secretKey(t, dir, "rot-app", "password")
	held, err := pgx.Connect(ctx, uri)
	if err != nil {
		t.Fatalf("connecting with the generated password: %v", err)
	}
	defer func() { _ = held.Close(ctx) }()

	start := time.Now()
	out := mustPgward(t, "local", "rotate-password", "app", "--dir", dir)
	took := time.Since(start)
	t.Logf("rotate-password (%s): %s", took, out)
	if took > 10*time.Second || !strings.Contains(out, "without a restart") {
		t.Errorf("rotate-password took %s: %s", took, out)
	}
	newPassword := secretKey(t, dir, "rot-app", "password")
	if newPassword == oldPassword || len(newPassword) != 40 {
		t.Fatalf("the secret's password did not change to a generated one (length %d)", len(newPassword))
	}
	if strings.Contains(out, newPassword) {
		t.Error("rotate-password printed the password")
	}
	for _, key := range []string{"pgpass", "uri", "jdbc-uri", "ro-uri", "ro-jdbc-uri"} {
		if v := secretKey(t, dir, "rot-app", key); !strings.Contains(v, newPassword) || strings.Contains(v, oldPassword) {
			t.Errorf("key %s does not carry the new password alone", key)
		}
	}

	t.Run("an open session keeps running", func(t *testing.T) {
		var one int
		if err := held.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
			t.Errorf("the session opened with the old password: %v", err)
		}
	})
	t.Run("a new session with the old password is refused", func(t *testing.T) {
		if err := connectWithPassword(ctx, uri, oldPassword); !isAuthFailure(err) {
			t.Errorf("old password: want an authentication failure, got %v", err)
		}
	})
	t.Run("the new password works through the URI's pgpass", func(t *testing.T) {
		if got, err := psql(ctx, "", uri, "SELECT current_user"); err != nil || got != "app" {
			t.Errorf("new password: %v: %q", err, got)
		}
	})

	t.Run("superuser with a password chosen on stdin", func(t *testing.T) {
		chosen := "Chosen pass:word\\1 with spaces"
		out, err := pgwardStdin(ctx, chosen+"\n", "local", "rotate-password", "postgres", "--password-stdin", "--dir", dir)
		if err != nil {
			t.Fatalf("rotate-password postgres: %v: %s", err, out)
		}
		if got := secretKey(t, dir, "rot-superuser", "password"); got != chosen {
			t.Fatalf("the superuser secret holds another password (length %d)", len(got))
		}
		su := strings.TrimSpace(mustPgward(t, "local", "uri", "postgres", "--dir", dir))
		if got, err := psql(ctx, "", su, "SELECT current_user"); err != nil || got != "postgres" {
			t.Errorf("superuser with the chosen password: %v: %q", err, got)
		}
	})

	t.Run("refusals change nothing", func(t *testing.T) {
		before := secretKey(t, dir, "rot-app", "password")
		for _, c := range []struct {
			stdin string
			args  []string
			want  string
		}{
			{"", []string{"streaming_replica"}, "client certificate"},
			{"", []string{"nobody"}, "manages no password"},
			{"bad\x01password\n", []string{"app", "--password-stdin"}, "control character"},
			{"\n", []string{"app", "--password-stdin"}, "no password"},
		} {
			args := append([]string{"local", "rotate-password", "--dir", dir}, c.args...)
			out, err := pgwardStdin(ctx, c.stdin, args...)
			if err == nil || !strings.Contains(out, c.want) {
				t.Errorf("rotate-password %v: want refused with %q, got %v: %s", c.args, c.want, err, out)
			}
		}
		if secretKey(t, dir, "rot-app", "password") != before {
			t.Error("a refused rotation changed the secret")
		}
	})

	t.Run("no restart, the replica still streams, no password leaked", func(t *testing.T) {
		if got := postmasterPids(t, dir, "rot-1", "rot-2"); got != pids {
			t.Errorf("postmaster pids changed from %q to %q", pids, got)
		}
		cs := status(t, dir)
		if cs.Instances[1].State != "streaming" {
			t.Errorf("replica: %+v", cs.Instances[1])
		}
		checkNoLeaks(t, dir)
		for _, name := range []string{"rot-1", "rot-2"} {
			log, err := os.ReadFile(filepath.Join(dir, "instances", name, "postgres.log"))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(log), "SCRAM-SHA-256$") || strings.Contains(string(log), "PASSWORD") {
				t.Errorf("a password statement reached %s's server log", name)
			}
		}
	})
}

// postmasterPids returns the postmaster pid of each named instance.
func postmasterPids(t *testing.T, dir string, names ...string) string {
	t.Helper()
	var pids []string
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, "instances", n, "data", "postmaster.pid"))
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, strings.SplitN(string(b), "\n", 2)[0])
	}
	return strings.Join(pids, ",")
}

// secretKey reads one key of a local secret.
func secretKey(t *testing.T, dir, secret, key string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "secrets", secret, key))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// connectWithPassword connects with uri but an explicit password (held in
// this process only, never on a command line).
func connectWithPassword(ctx context.Context, uri, password string) error {
	cfg, err := pgx.ParseConfig(uri)
	if err != nil {
		return err
	}
	cfg.Password = password // every host of the URI shares it
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

func isAuthFailure(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "28P01"
}

// pgwardStdin runs the CLI with stdin and returns its combined output.
func pgwardStdin(ctx context.Context, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, pgwardBin, args...)
	var out bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}
