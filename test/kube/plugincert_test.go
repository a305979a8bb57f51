//go:build e2e_kube

package kube

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	v1 "github.com/pgward/pgward/api/v1"
)

// TestPluginCertificateAndPsqlOnPods runs the plugin's certificate and
// psql verbs against a real pod: psql on this machine, through a
// port-forward, is the app owner over TLS (verify-full against the
// cluster's CA, the password from a temporary pgpass) and returns psql's
// exit status; a certificate made by `kubectl pgward certificate` for a
// role that a `hostssl ... cert` line admits logs in with no password;
// the reserved users and --superuser (superuser access off) are refused.
func TestPluginCertificateAndPsqlOnPods(t *testing.T) {
	ns := newNamespace(t, "e2e-plugincert")
	c := newCluster(t, ns, "cluster-example.yaml", func(c *v1.Cluster) {
		c.Name = "certs"
		c.Spec.Instances = 1
		c.Spec.PostgresConfiguration.PgHBA = append([]string{"hostssl app reporter all cert"}, c.Spec.PostgresConfiguration.PgHBA...)
	})
	primary := c.Status.CurrentPrimary
	psqlLocal(t, ns, primary, "app", "CREATE ROLE reporter LOGIN; GRANT CONNECT ON DATABASE app TO reporter")

	start := time.Now()
	out := plugin(t, "psql", c.Name, "-n", ns, "--", "-c", "select current_user, ssl from pg_stat_ssl where pid = pg_backend_pid()")
	if !regexp.MustCompile(`(?m)^\s*app\s*\|\s*t\s*$`).MatchString(out) {
		t.Fatalf("psql as the app owner over TLS: %s", out)
	}
	t.Logf("kubectl pgward psql: %s\n%s", time.Since(start).Round(time.Millisecond), out)
	// psql's exit status is the plugin's.
	bin := filepath.Join(repoRoot, "bin", "kubectl-pgward")
	fail := exec.CommandContext(context.Background(), bin, "psql", c.Name, primary, "-n", ns, "--", "-v", "ON_ERROR_STOP=1", "-c", "select 1/0") // #nosec G204 -- the binary under test
	var ee *exec.ExitError
	if o, err := fail.CombinedOutput(); !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(o), "division by zero") {
		t.Errorf("psql -c 'select 1/0': %v %s, want psql's exit status 1", err, o)
	}
	if o, err := exec.CommandContext(context.Background(), bin, "psql", c.Name, "--superuser", "-n", ns).CombinedOutput(); err == nil || !strings.Contains(string(o), "enableSuperuserAccess") { // #nosec G204 -- the binary under test
		t.Errorf("psql --superuser without superuser access: %v %s", err, o)
	}

	// A certificate for reporter, admitted by the cert line alone.
	dir := filepath.Join(t.TempDir(), "reporter")
	conninfo := strings.TrimSpace(plugin(t, "certificate", c.Name, "--user", "reporter", "--out", dir, "-n", ns))
	if !strings.Contains(conninfo, "sslmode=verify-full") {
		t.Errorf("connection string %q", conninfo)
	}
	port := portForward(t, ns, primary)
	// The printed connection string names the read-write Service, which
	// the server certificate carries: verify-full checks that name while
	// the bytes go through the port-forward (hostaddr, port).
	cs := conninfo + " hostaddr=127.0.0.1 port=" + port + " dbname=app"
	q := exec.CommandContext(context.Background(), "psql", cs, "-X", "-A", "-t", "-c", "select current_user || ' ' || ssl from pg_stat_ssl where pid = pg_backend_pid()") // #nosec G204 -- the test's own query
	q.Env = []string{"PATH=/usr/bin:/bin", "PGPASSWORD="}                                                                                                                 // no password anywhere
	if o, err := q.CombinedOutput(); err != nil || strings.TrimSpace(string(o)) != "reporter true" {
		t.Fatalf("login with the certificate: %v %s", err, o)
	}

	// --secret: a kubernetes.io/tls Secret owned by the Cluster.
	plugin(t, "certificate", c.Name, "--user", "reporter", "--secret", "reporter-cert", "-n", ns)
	var s corev1.Secret
	if err := cl.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "reporter-cert"}, &s); err != nil || s.Type != corev1.SecretTypeTLS || len(s.OwnerReferences) != 1 {
		t.Errorf("secret reporter-cert: %v %s %v", err, s.Type, s.OwnerReferences)
	}
	for _, user := range []string{"streaming_replica", "postgres"} {
		if o, err := exec.CommandContext(context.Background(), bin, "certificate", c.Name, "--user", user, "--secret", "x", "-n", ns).CombinedOutput(); err == nil { // #nosec G204 -- the binary under test
			t.Errorf("certificate for %s issued: %s", user, o)
		}
	}
}

// portForward forwards a local port to pod's 5432 with kubectl for the
// test's life and returns the local port.
func portForward(t *testing.T, ns, pod string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, kubectlB, "port-forward", "-n", ns, "pod/"+pod, "--address", "127.0.0.1", ":5432") // #nosec G204 -- the test's kubectl
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		re := regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+)`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	select {
	case p := <-found:
		return p
	case <-time.After(time.Minute):
		t.Fatalf("kubectl port-forward: no port: %s", stderr.String())
	}
	return ""
}
