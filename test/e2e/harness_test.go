// Package e2e tests pgward end to end as a user runs it: the built binary,
// real PostgreSQL processes running as an unprivileged OS user, real TLS.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// pgwardBin is the binary under test, built once by TestMain into a
// directory the unprivileged run-as user can read.
var (
	pgwardBin string
	workRoot  string
	repoRoot  string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	// Not t.TempDir: its parents are 0700 and the run-as user must reach the
	// state directory.
	var err error
	workRoot, err = os.MkdirTemp("", "pgward-e2e-")
	if err == nil {
		err = os.Chmod(workRoot, 0o711)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer func() { _ = os.RemoveAll(workRoot) }()
	pgwardBin = filepath.Join(workRoot, "pgward")
	build := exec.CommandContext(context.Background(), "go", "build", "-o", pgwardBin, "./cmd/pgward")
	build.Dir = repoRoot
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building pgward:", err)
		return 1
	}
	return m.Run()
}

// runAsUser is the OS user PostgreSQL runs as in these tests: postgres when
// we are root (as in CI), ourselves otherwise.
func runAsUser(t *testing.T) string {
	t.Helper()
	if os.Geteuid() == 0 {
		if _, err := user.Lookup("postgres"); err != nil {
			t.Fatalf("running as root needs an OS user postgres (apt-get install postgresql-15 creates it): %v", err)
		}
		return "postgres"
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return u.Username
}

// pgward runs the CLI and returns its combined output.
func pgward(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, pgwardBin, args...) // #nosec G702 -- the binary under test, with arguments the tests choose
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func mustPgward(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := pgward(ctx, args...)
	if err != nil {
		t.Fatalf("pgward %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// psql runs Debian's psql with a conninfo; as root, local-socket connections
// (peer authentication) must come from the run-as user, so they go through
// runuser. The password never appears here: it comes from a passfile.
func psql(ctx context.Context, osUser, conninfo, sql string) (string, error) {
	args := []string{"-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-c", sql}
	var cmd *exec.Cmd
	if os.Geteuid() == 0 && osUser != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", osUser, "--", psqlPath()}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, psqlPath(), args...)
	}
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C", "PGCONNECT_TIMEOUT=5"}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}

func psqlPath() string {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/psql")
	if len(matches) > 0 {
		return matches[len(matches)-1]
	}
	return "psql"
}

// eventually retries f until it succeeds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: still failing after %s: %v", what, timeout, err)
}

// newStateDir returns a fresh state directory path under workRoot.
func newStateDir(t *testing.T, name string) string {
	t.Helper()
	return filepath.Join(workRoot, name)
}

// runKill sends SIGKILL to pid (a postmaster started by pgward).
func runKill(pid string) (string, error) {
	out, err := exec.CommandContext(context.Background(), "kill", "-9", strings.TrimSpace(pid)).CombinedOutput()
	return string(out), err
}
