package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pgward/pgward/internal/local"
)

// ExitCodeError carries a child's exit status: it has already said why.
type ExitCodeError struct{ Code int }

func (e *ExitCodeError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// asOwner runs the same command again as owner, the unprivileged user of
// the state directory. Root only decides who that is and claims the
// directory; everything that touches files inside it, or signals the
// cluster's processes, runs as the owner. The manifest, which root may be
// the only one able to read, is passed on stdin (-f -), and the state
// directory as an absolute --dir.
func asOwner(cmd *cobra.Command, args []string, owner *local.Owner, dir string, manifest []byte) error {
	bin, cleanup, err := exportBinary()
	if err != nil {
		return err
	}
	defer cleanup()
	argv := strings.Fields(cmd.CommandPath())[1:]
	cmd.Flags().Visit(func(f *pflag.Flag) {
		switch f.Name {
		case "dir":
		case "file":
			argv = append(argv, "--file=-")
		default:
			argv = append(argv, "--"+f.Name+"="+f.Value.String())
		}
	})
	if dir != "" {
		argv = append(argv, "--dir="+dir)
	}
	argv = append(argv, args...)
	child := exec.CommandContext(cmd.Context(), bin, argv...)
	child.Stdout, child.Stderr = cmd.OutOrStdout(), cmd.ErrOrStderr()
	child.Stdin = os.Stdin
	if manifest != nil {
		child.Stdin = bytes.NewReader(manifest)
	}
	child.Dir = "/"
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		child.Dir = dir
	}
	child.Env = dropEnv()
	child.SysProcAttr = &syscall.SysProcAttr{Credential: owner.Credential()}
	err = child.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return &ExitCodeError{Code: exit.ExitCode()}
	}
	return err
}

// exportBinary copies pgward where the unprivileged user can execute it
// (ours may live under /root): a fresh root-owned directory, removed after.
func exportBinary() (string, func(), error) {
	self, err := os.Executable()
	if err != nil {
		return "", nil, fmt.Errorf("locating pgward: %w", err)
	}
	dir, err := os.MkdirTemp("", "pgward-exec-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { _ = os.RemoveAll(dir) }
	if err := os.Chmod(dir, 0o755); err != nil { // #nosec G302 -- the user must execute the copy; it holds no secret
		cleanup()
		return "", nil, err
	}
	src, err := os.Open(self) // #nosec G304 -- our own executable
	if err != nil {
		cleanup()
		return "", nil, err
	}
	defer func() { _ = src.Close() }()
	bin := filepath.Join(dir, "pgward")
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755) // #nosec G302 G304 -- see above
	if err != nil {
		cleanup()
		return "", nil, err
	}
	if _, err := io.Copy(dst, src); err != nil {
		_ = dst.Close()
		cleanup()
		return "", nil, err
	}
	if err := dst.Close(); err != nil {
		cleanup()
		return "", nil, err
	}
	return bin, cleanup, nil
}

// dropEnv passes the child nothing of root's environment but what it needs.
func dropEnv() []string {
	env := []string{"LC_ALL=C"}
	for _, k := range []string{"PATH", "TZ", "TERM", "PGWARD_LOG_LEVEL"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// isRoot reports whether this process must drop privileges first.
func isRoot() bool { return os.Geteuid() == 0 }

// readManifest reads -f FILE, or stdin for "-".
func readManifest(file string) ([]byte, error) {
	if file == "-" {
		b, err := io.ReadAll(io.LimitReader(os.Stdin, 1<<20+1))
		if err != nil {
			return nil, fmt.Errorf("reading manifest from stdin: %w", err)
		}
		return b, nil
	}
	b, err := os.ReadFile(file) // #nosec G304 -- the user's manifest
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	return b, nil
}
