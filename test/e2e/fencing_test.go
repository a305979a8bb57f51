package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/local"
)

// stateOf returns each instance's state and role from `local status`.
func statesOf(t *testing.T, dir string) (map[string]string, map[string]string) {
	t.Helper()
	states, roles := map[string]string{}, map[string]string{}
	for _, is := range status(t, dir).Instances {
		states[is.Name], roles[is.Name] = is.State, is.Role
	}
	return states, roles
}

// postgresAnswers reports whether the instance's PostgreSQL accepts a
// connection on its own port (any role).
func postgresAnswers(t *testing.T, dir, name string) bool {
	t.Helper()
	u, err := url.Parse(strings.TrimSpace(mustPgward(t, "local", "uri", "app", "--dir", dir)))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("target_session_attrs", "any")
	q.Set("connect_timeout", "2")
	u.Host, u.RawQuery = fmt.Sprintf("localhost:%d", instancePorts(t, dir)[name]), q.Encode()
	_, err = psql(context.Background(), "", u.String(), "SELECT 1")
	return err == nil
}

// watchClient is an mTLS client of the cluster's status ports with the
// client certificate in secret, and the status address of instance.
func watchClient(t *testing.T, dir, cluster, secret, instance string) (*instanceapi.Client, string) {
	t.Helper()
	read := func(s, key string) []byte {
		v, err := os.ReadFile(filepath.Join(dir, "secrets", s, key))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	cert, err := tls.X509KeyPair(read(secret, "tls.crt"), read(secret, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(read(cluster+"-ca", "ca.crt"))
	st, err := local.LoadState(local.Layout{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for _, is := range st.Instances {
		if is.Name == instance {
			return instanceapi.NewClient(pool, cert, "localhost", 2*time.Second), net.JoinHostPort("127.0.0.1", strconv.Itoa(is.StatusPort))
		}
	}
	t.Fatalf("no instance %s", instance)
	return nil, ""
}

// TestFenceAndHibernate runs CloudNativePG's fencing and hibernation on a
// real three-instance cluster: a fenced replica's PostgreSQL is down, its
// manager reports it fenced, and writes go on; a fenced primary is not
// failed over (no other instance becomes primary while it is down), and
// unfenced it comes back as the primary; hibernation shuts every instance
// down, and off brings the same primary back with every row.
func TestFenceAndHibernate(t *testing.T) {
	runAsUser(t)
	dir := upCluster(t, "fen", `apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: fen
spec:
  instances: 3
`)
	appSQL(t, dir, "CREATE TABLE t(i int); INSERT INTO t SELECT generate_series(1, 10)")
	primary := currentPrimary(t, dir)
	replica := "fen-2"
	if primary == replica {
		replica = "fen-3"
	}

	// The operator's wake-ups: a watch held open on the replica's status
	// port answers as soon as its manager shuts PostgreSQL down.
	watch, addr := watchClient(t, dir, "fen", "fen-controller", replica)
	d0, err := watch.Watch(context.Background(), addr, "")
	if err != nil {
		t.Fatal(err)
	}
	woke := make(chan time.Time, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if d, err := watch.Watch(ctx, addr, d0); err == nil && d != d0 {
			woke <- time.Now()
		}
		close(woke)
	}()
	start := time.Now()
	mustPgward(t, "local", "fence", "on", replica, "--dir", dir)
	t.Logf("replica %s fenced in %s", replica, time.Since(start).Round(time.Millisecond))
	select {
	case at, ok := <-woke:
		if !ok {
			t.Fatal("the watch ended without a change")
		}
		t.Logf("the watch answered %s after the fence was asked", at.Sub(start).Round(time.Millisecond))
		if at.Sub(start) > instanceapi.WatchWait {
			t.Errorf("the watch answered after %s: it waited out its time, not the change", at.Sub(start))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the watch did not answer within 10 s of the fence")
	}
	// Only the controller's identity may watch: the metrics client
	// certificate comes from the same client CA and is refused.
	other, _ := watchClient(t, dir, "fen", "fen-metrics", replica)
	if _, err := other.Watch(context.Background(), addr, ""); !instanceapi.IsForbidden(err) {
		t.Errorf("a watch with the metrics certificate: %v, want forbidden", err)
	}
	if states, _ := statesOf(t, dir); states[replica] != "fenced" {
		t.Fatalf("states after fencing %s: %v", replica, states)
	}
	if postgresAnswers(t, dir, replica) {
		t.Fatalf("the fenced replica %s still accepts connections", replica)
	}
	appSQL(t, dir, "INSERT INTO t SELECT generate_series(11, 20)")
	if !strings.Contains(mustPgward(t, "local", "status", "--dir", dir), "Fenced on request: "+replica) {
		t.Error("status does not say which instance is fenced")
	}

	start = time.Now()
	mustPgward(t, "local", "fence", "on", primary, "--dir", dir)
	t.Logf("primary %s fenced in %s", primary, time.Since(start).Round(time.Millisecond))
	// Failover takes ~2 s here (docs/benchmarks.md): wait well past it.
	time.Sleep(10 * time.Second)
	states, roles := statesOf(t, dir)
	if states[primary] != "fenced" {
		t.Fatalf("states with the primary fenced: %v", states)
	}
	for n, r := range roles {
		if n != primary && r == "primary" {
			t.Fatalf("%s became primary while %s was fenced: roles %v states %v", n, primary, roles, states)
		}
	}
	if p := currentPrimary(t, dir); p != "" {
		t.Fatalf("a running primary %s while %s is fenced", p, primary)
	}

	start = time.Now()
	mustPgward(t, "local", "fence", "off", primary, "--dir", dir)
	t.Logf("primary %s unfenced in %s", primary, time.Since(start).Round(time.Millisecond))
	if p := currentPrimary(t, dir); p != primary {
		t.Fatalf("after unfencing, the primary is %q, want %s", p, primary)
	}
	appSQL(t, dir, "INSERT INTO t SELECT generate_series(21, 30)")
	mustPgward(t, "local", "fence", "off", replica, "--dir", dir)
	eventually(t, 30*time.Second, replica+" streaming again", func() error {
		if states, _ := statesOf(t, dir); states[replica] != "streaming" {
			return fmt.Errorf("states %v", states)
		}
		return nil
	})

	start = time.Now()
	mustPgward(t, "local", "hibernate", "on", "--dir", dir)
	t.Logf("hibernated in %s", time.Since(start).Round(time.Millisecond))
	states, _ = statesOf(t, dir)
	for _, n := range []string{"fen-1", "fen-2", "fen-3"} {
		if states[n] != "fenced" || postgresAnswers(t, dir, n) {
			t.Fatalf("hibernated, %s is %q", n, states[n])
		}
	}
	if !strings.Contains(mustPgward(t, "local", "status", "--dir", dir), "Hibernated") {
		t.Error("status does not say the cluster hibernates")
	}
	start = time.Now()
	mustPgward(t, "local", "hibernate", "off", "--dir", dir)
	t.Logf("back from hibernation in %s", time.Since(start).Round(time.Millisecond))
	if p := currentPrimary(t, dir); p != primary {
		t.Fatalf("after hibernation the primary is %q, want %s", p, primary)
	}
	if n := strings.TrimSpace(appSQL(t, dir, "SELECT count(*) FROM t")); n != "30" {
		t.Fatalf("after hibernation %s rows, want 30", n)
	}
	// Refused before anything is written.
	if out, err := pgward(context.Background(), "local", "fence", "on", "fen-9", "--dir", dir); err == nil || !strings.Contains(out, "not an instance") {
		t.Errorf("fencing fen-9: %v %s", err, out)
	}
	if out, err := pgward(context.Background(), "local", "hibernate", "maybe", "--dir", dir); err == nil || !strings.Contains(out, "on or off") {
		t.Errorf("hibernate maybe: %v %s", err, out)
	}
}

// TestUpWithFencingAnnotation: the manifest's own cnpg.io/fencedInstances
// takes effect at `up`: the primary is made and takes writes, the fenced
// replica is kept down (not even cloned), and `up` returns.
func TestUpWithFencingAnnotation(t *testing.T) {
	runAsUser(t)
	dir := upCluster(t, "fup", `apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: fup
  annotations:
    cnpg.io/fencedInstances: '["fup-2"]'
spec:
  instances: 2
`)
	appSQL(t, dir, "CREATE TABLE t(i int); INSERT INTO t VALUES (1)")
	if p := currentPrimary(t, dir); p != "fup-1" {
		t.Fatalf("primary %q, want fup-1", p)
	}
	if postgresAnswers(t, dir, "fup-2") {
		t.Fatal("the fenced fup-2 accepts connections")
	}
	mustPgward(t, "local", "fence", "off", "fup-2", "--dir", dir)
	eventually(t, time.Minute, "fup-2 streaming", func() error {
		if states, _ := statesOf(t, dir); states["fup-2"] != "streaming" {
			return fmt.Errorf("states %v", states)
		}
		return nil
	})
}
