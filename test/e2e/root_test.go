package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNeverRoot checks the refusals that keep PostgreSQL and everything
// that touches its files from running as root.
func TestNeverRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("these refusals are about running as root; CI runs as root")
	}
	ctx := context.Background()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"instance", "run", "--config", "/nonexistent.json"}, "never runs as root"},
		{[]string{"local", "controller", "--dir", workRoot}, "does not run as root"},
		{[]string{"local", "up", "-f", filepath.Join(repoRoot, "config", "samples", "cluster-example.yaml"), "--dir", filepath.Join(workRoot, "as-root"), "--run-as", "root"}, "is root"},
	}
	for _, c := range cases {
		out, err := pgward(ctx, c.args...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("pgward %s: want refusal %q, got %v: %s", strings.Join(c.args, " "), c.want, err, out)
		}
	}
	// A state directory owned by root is not used (pgward would have to act
	// as root inside it).
	rootDir := filepath.Join(workRoot, "root-owned")
	if err := os.Mkdir(rootDir, 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := pgward(ctx, "local", "status", "--dir", rootDir)
	if err == nil || !strings.Contains(out, "owned by root") {
		t.Errorf("status on a root-owned directory: %v: %s", err, out)
	}
}
