package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/internal/instanceapi"
)

// TestSnapshotImportOnRealPostgres is the instance manager's side of a
// recovery from volume snapshots (bootstrap.recovery.volumeSnapshots,
// Kubernetes only), on real PostgreSQL 15 without Kubernetes: a local
// cluster is stopped cleanly, as the operator's cold snapshot stops an
// instance, and a byte copy of its state directory stands for the volumes
// a CSI driver restores (data and, beside it, the instance manager's
// state directory), with standby.signal added as in a standby's snapshot.
// An instance manager started on that copy with a manifest naming
// volumeSnapshots must forget the old instance's state, report itself
// empty, and on the bootstrap command start the copied PGDATA as a new
// cluster: the rows there, a new timeline, writable, and the roles given
// the new credentials (a changed app password works, the old one does
// not).
func TestSnapshotImportOnRealPostgres(t *testing.T) {
	osUser := runAsUser(t)
	ctx := context.Background()
	src := upCluster(t, "snapsrc", "apiVersion: postgresql.pgward.io/v1\nkind: Cluster\nmetadata:\n  name: snapsrc\nspec:\n  instances: 1\n")
	appSQL(t, src, "CREATE TABLE kept(i int); INSERT INTO kept SELECT generate_series(1, 1234)")
	oldPass, err := os.ReadFile(filepath.Join(src, "secrets", "snapsrc-app", "password"))
	if err != nil {
		t.Fatal(err)
	}
	mustPgward(t, "local", "down", "--dir", src)

	// The "restored volumes": a copy with every mode and owner kept.
	dst := newStateDir(t, "snapdst")
	if out, err := exec.CommandContext(ctx, "cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("copying: %v %s", err, out)
	}
	inst := filepath.Join(dst, "instances", "snapsrc-1")
	if err := os.WriteFile(filepath.Join(inst, "data", "standby.signal"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	chownRunAs(t, filepath.Join(inst, "data", "standby.signal"))
	manifest := "apiVersion: postgresql.pgward.io/v1\nkind: Cluster\nmetadata:\n  name: snapsrc\nspec:\n  instances: 1\n" +
		"  bootstrap:\n    recovery:\n      volumeSnapshots:\n        storage: {name: snap-1, kind: VolumeSnapshot, apiGroup: snapshot.storage.k8s.io}\n"
	if err := os.WriteFile(filepath.Join(dst, "cluster.yaml"), []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	// The new cluster's own application password.
	newPass := strconv.FormatInt(time.Now().UnixNano(), 36) + "-new"
	if err := os.WriteFile(filepath.Join(dst, "secrets", "snapsrc-app", "password"), []byte(newPass), 0o600); err != nil {
		t.Fatal(err)
	}
	// Its config: the copy's paths, ports of its own, no supervisor.
	var cfg map[string]any
	b, err := os.ReadFile(filepath.Join(inst, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	b = []byte(strings.ReplaceAll(string(b), src, dst))
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	delete(cfg, "supervisor")
	delete(cfg, "metricsAddress")
	port, status := freePort(t), freePort(t)
	cfg["port"], cfg["statusAddress"] = port, "127.0.0.1:"+strconv.Itoa(status)
	cfg["primary"] = map[string]any{"name": "snapsrc-1", "host": "localhost", "port": port}
	if b, err = json.Marshal(cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(inst, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	chownRunAs(t, dst)

	runCtx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(runCtx, pgwardBin, "instance", "run", "--config", filepath.Join(inst, "config.json")) // #nosec G204 -- the binary under test
	asRunAsUser(t, cmd)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = time.Minute
	logf, err := os.Create(filepath.Join(workRoot, "snapdst-instance.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		_ = logf.Close()
		if t.Failed() {
			out, _ := os.ReadFile(logf.Name())
			t.Logf("instance manager log:\n%s", out)
		}
	})

	c := controllerClient(t, dst, "snapsrc")
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(status))
	var st *instanceapi.Status
	eventually(t, 30*time.Second, "the instance manager answers", func() error {
		st, err = c.Status(ctx, addr, 0)
		return err
	})
	if !st.Empty || st.Epoch != 0 {
		t.Fatalf("status %+v, want an empty instance at epoch 0 (the old instance's data and state set aside)", st)
	}
	ents, _ := os.ReadDir(filepath.Join(inst, "conf"))
	for _, e := range ents {
		if e.Name() == "instance-state.json" || e.Name() == "applied-cluster.yaml" {
			// Written anew by this manager: must not be the old one's.
			b, _ := os.ReadFile(filepath.Join(inst, "conf", e.Name()))
			if strings.Contains(string(b), `"epoch": 1`) || (e.Name() == "applied-cluster.yaml" && !strings.Contains(string(b), "volumeSnapshots")) {
				t.Errorf("%s is the old instance's: %s", e.Name(), b)
			}
		}
	}
	start := time.Now()
	if err := c.Command(ctx, addr, instanceapi.Command{Kind: instanceapi.CommandBootstrap, Epoch: 1}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "the restored instance runs as the primary", func() error {
		st, err = c.Status(ctx, addr, 0)
		if err != nil {
			return err
		}
		if st.Role != instanceapi.RolePrimary || !st.Ready || st.Empty {
			return fmt.Errorf("role %s ready %t empty %t phase %s error %q", st.Role, st.Ready, st.Empty, st.Phase, st.Error)
		}
		return nil
	})
	t.Logf("restored and promoted in %s", time.Since(start).Round(100*time.Millisecond))
	sock := "host=" + filepath.Join(inst, "run") + " port=" + strconv.Itoa(port) + " user=postgres dbname=app"
	q := func(sql string) string {
		t.Helper()
		out, err := psql(ctx, osUser, sock, sql)
		if err != nil {
			t.Fatalf("%s: %v %s", sql, err, out)
		}
		return out
	}
	if got := q("SELECT count(*) FROM kept"); got != "1234" {
		t.Errorf("rows: %s, want 1234", got)
	}
	if got := q("SELECT pg_is_in_recovery()::text || ' ' || (timeline_id > 1)::text FROM pg_control_checkpoint()"); got != "false true" {
		t.Errorf("in recovery, on a new timeline: %s, want false true", got)
	}
	q("INSERT INTO kept VALUES (0)")
	if _, err := os.Stat(filepath.Join(inst, "data", "standby.signal")); err == nil {
		t.Error("standby.signal is still there")
	}
	// Passwords through a 0600 passfile, never on psql's command line.
	tcp := func(pass string) error {
		pf := filepath.Join(workRoot, "snapdst.pgpass")
		if err := os.WriteFile(pf, []byte(fmt.Sprintf("localhost:%d:app:app:%s\n", port, pass)), 0o600); err != nil {
			return err
		}
		out, err := psql(ctx, "", fmt.Sprintf("host=localhost port=%d user=app dbname=app passfile=%s sslmode=require", port, pf), "SELECT 1")
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		return nil
	}
	if err := tcp(newPass); err != nil {
		t.Errorf("the new cluster's app password: %v", err)
	}
	if err := tcp(strings.TrimSpace(string(oldPass))); err == nil {
		t.Error("the source cluster's app password still works")
	}
}

// controllerClient is an mTLS client of the status ports with the local
// controller's certificate.
func controllerClient(t *testing.T, dir, cluster string) *instanceapi.Client {
	t.Helper()
	read := func(s, key string) []byte {
		v, err := os.ReadFile(filepath.Join(dir, "secrets", s, key))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	cert, err := tls.X509KeyPair(read(cluster+"-controller", "tls.crt"), read(cluster+"-controller", "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(read(cluster+"-ca", "ca.crt"))
	return instanceapi.NewClient(pool, cert, "localhost", 5*time.Second)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}
