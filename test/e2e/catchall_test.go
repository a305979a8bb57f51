package e2e

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestCatchAllNetworks restricts the default catch-all to one loopback
// address and connects as the application owner, with the right password
// over verify-full TLS, from inside and from outside it. Replication (which
// pgward's own rules, before the catch-all, let in) must not be affected.
func TestCatchAllNetworks(t *testing.T) {
	runAsUser(t)
	manifest := filepath.Join(workRoot, "catchall.yaml")
	err := os.WriteFile(manifest, []byte(`apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: narrow
spec:
  instances: 2
  postgresql:
    catchAllNetworks: ["127.0.0.2/32"]
  bootstrap:
    initdb:
      database: app
      owner: app
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	// Without --dir, from a directory of its own: the state goes to
	// ./.pgward/narrow, whose parent must let the run-as user through and
	// nobody else in or write (0711).
	cwd := newStateDir(t, "catchall")
	if err := os.Mkdir(cwd, 0o711); err != nil {
		t.Fatal(err)
	}
	up := exec.CommandContext(context.Background(), pgwardBin, "local", "up", "-f", manifest)
	up.Dir = cwd
	if out, err := up.CombinedOutput(); err != nil {
		t.Fatalf("up: %v\n%s", err, out)
	}
	dir := filepath.Join(cwd, ".pgward", "narrow")
	if fi, err := os.Stat(filepath.Join(cwd, ".pgward")); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != 0o711 {
		t.Errorf("./.pgward: mode %v, want 0711", fi.Mode().Perm())
	}
	t.Cleanup(func() { _, _ = pgward(context.Background(), "local", "down", "--purge", "--dir", dir) })
	if st := status(t, dir); len(st.Instances) != 2 {
		t.Fatalf("want 2 instances (a replica streaming), got %+v", st)
	}
	uri := strings.TrimSpace(mustPgward(t, "local", "uri", "app", "--dir", dir))
	from := func(source string) error {
		cfg, err := pgx.ParseConfig(uri)
		if err != nil {
			t.Fatal(err)
		}
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}, Timeout: 5 * time.Second}
		cfg.DialFunc = d.DialContext
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return err
		}
		defer func() { _ = conn.Close(ctx) }()
		var user string
		return conn.QueryRow(ctx, "SELECT current_user").Scan(&user)
	}
	if err := from("127.0.0.2"); err != nil {
		t.Errorf("from 127.0.0.2, inside catchAllNetworks: %v", err)
	}
	if err := from("127.0.0.1"); err == nil || !strings.Contains(err.Error(), "rejects connection") {
		t.Errorf("from 127.0.0.1, outside catchAllNetworks: want rejected by pg_hba, got %v", err)
	}
}
