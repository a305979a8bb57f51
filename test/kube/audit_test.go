//go:build e2e_kube

package kube

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/internal/audit"
)

// pluginAudit runs `kubectl-pgward audit NAME -n NS` (text, or -o json
// when asJSON) and returns its output and exit status.
func pluginAudit(t *testing.T, ns, name string, asJSON bool) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := []string{"audit", name, "-n", ns}
	if asJSON {
		args = append(args, "-o", "json")
	}
	cmd := exec.CommandContext(ctx, filepath.Join(repoRoot, "bin", "kubectl-pgward"), args...) // #nosec G204 -- the binary under test
	cmd.Env = append(os.Environ(), "KUBECONFIG="+os.Getenv("KUBECONFIG"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("kubectl-pgward audit: %v\n%s", err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("kubectl-pgward audit wrote to stderr: %s", stderr.String())
	}
	return stdout.String(), code
}

func auditResults(t *testing.T, ns, name string) (map[string]audit.Result, []audit.Result, int) {
	t.Helper()
	out, code := pluginAudit(t, ns, name, true)
	var rs []audit.Result
	if err := json.Unmarshal([]byte(out), &rs); err != nil {
		t.Fatalf("audit -o json: %v\n%s", err, out)
	}
	by := map[string]audit.Result{}
	for _, r := range rs {
		by[r.Control] = r
	}
	return by, rs, code
}

// TestPluginAuditOnPods runs `kubectl pgward audit` on a real
// three-instance cluster: every control passes (the attacks through
// port-forwards refused, the pods' security contexts and projections as
// pgward builds them, every instance manager reporting processes as uid
// 26, an empty postgresql.auto.conf and the fixed parameters as rendered
// and as running). Then, live, ALTER SYSTEM lowers the primary's TLS
// version and a role sets a fixed parameter for itself: the audit FAILs
// alter-system-drift, settings-running and postgres-tls-1.3-only (the TLS
// 1.2 handshake now succeeds) with exit status 1, while a replication
// login with a password is still refused (PASS). Reset, it passes again.
func TestPluginAuditOnPods(t *testing.T) {
	ns := newNamespace(t, "e2e-audit")
	c := newCluster(t, ns, "cluster-example.yaml", nil)
	primary := c.Status.CurrentPrimary

	start := time.Now()
	eventually(t, 2*time.Minute, "every control passes", func() error {
		_, rs, code := auditResults(t, ns, c.Name)
		var bad []string
		for _, r := range rs {
			if r.Status != audit.Pass {
				bad = append(bad, fmt.Sprintf("%s %s: %s", r.Status, r.Control, r.Evidence))
			}
		}
		if len(bad) > 0 || code != 0 {
			return fmt.Errorf("exit %d: %s", code, strings.Join(bad, "; "))
		}
		return nil
	})
	t.Logf("healthy audit after %s", time.Since(start).Round(time.Millisecond))
	text, code := pluginAudit(t, ns, c.Name, false)
	t.Logf("audit:\n%s", text)
	if code != 0 || strings.Count(text, "\n") != 17 {
		t.Errorf("text audit: exit %d, %d lines", code, strings.Count(text, "\n"))
	}
	by, _, _ := auditResults(t, ns, c.Name)
	for control, evidence := range map[string]string{
		"processes-not-root":            "(uid 26)",
		"replication-needs-certificate": "requires a valid client certificate",
		"replication-streams":           "TLSv1.3, /CN=streaming_replica",
		"status-port-needs-certificate": "with a pgward-controller certificate of another CA: refused: tls: ",
		"postgres-tls-1.3-only":         "protocol version",
		"pod-security-context":          "in 3 pods",
	} {
		if r := by[control]; !strings.Contains(r.Evidence, evidence) {
			t.Errorf("%s: %q, want %q", control, r.Evidence, evidence)
		}
	}

	psqlLocal(t, ns, primary, "postgres", "ALTER SYSTEM SET ssl_min_protocol_version = 'TLSv1.2'")
	psqlLocal(t, ns, primary, "postgres", "SELECT pg_reload_conf()")
	psqlLocal(t, ns, primary, "postgres", "ALTER ROLE app SET password_encryption = 'md5'")
	eventually(t, time.Minute, "the breaks seen", func() error {
		by, _, code := auditResults(t, ns, c.Name)
		for control, evidence := range map[string]string{
			"alter-system-drift":    primary + ": postgresql.auto.conf sets ssl_min_protocol_version",
			"settings-running":      "fixed parameter password_encryption set for role app",
			"postgres-tls-1.3-only": primary + " TLS 1.2: accepted (a TLS 1.2 handshake completed",
		} {
			if r := by[control]; r.Status != audit.Fail || !strings.Contains(r.Evidence, evidence) || r.Fix == "" {
				return fmt.Errorf("%s: %s %q, want FAIL with %q and a fix", control, r.Status, r.Evidence, evidence)
			}
		}
		if r := by["replication-needs-certificate"]; r.Status != audit.Pass {
			return fmt.Errorf("replication-needs-certificate: %s %s", r.Status, r.Evidence)
		}
		if code != 1 {
			return fmt.Errorf("exit status %d, want 1", code)
		}
		return nil
	})
	text, code = pluginAudit(t, ns, c.Name, false)
	t.Logf("audit with the breaks (exit %d):\n%s", code, text)
	if !strings.Contains(text, "FAIL  alter-system-drift  ") || code != 1 {
		t.Errorf("text audit: exit %d without the FAIL line", code)
	}

	psqlLocal(t, ns, primary, "postgres", "ALTER SYSTEM RESET ALL")
	psqlLocal(t, ns, primary, "postgres", "SELECT pg_reload_conf()")
	psqlLocal(t, ns, primary, "postgres", "ALTER ROLE app RESET password_encryption")
	eventually(t, time.Minute, "every control passes again", func() error {
		_, rs, code := auditResults(t, ns, c.Name)
		for _, r := range rs {
			if r.Status != audit.Pass {
				return fmt.Errorf("%s %s: %s", r.Status, r.Control, r.Evidence)
			}
		}
		if code != 0 {
			return fmt.Errorf("exit status %d", code)
		}
		return nil
	})
}
