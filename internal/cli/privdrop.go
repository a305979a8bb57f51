package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

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
	image, err := execImage()
	if err != nil {
		return err
	}
	defer func() { _ = image.Close() }()
	argv := strings.Fields(cmd.CommandPath())[1:]
	cmd.Flags().Visit(func(f *pflag.Flag) {
		switch f.Name {
		case "dir", "file":
		default:
			argv = append(argv, "--"+f.Name+"="+f.Value.String())
		}
	})
	// The manifest root read (a default path included) goes on stdin.
	if manifest != nil {
		argv = append(argv, "--file=-")
	}
	if dir != "" {
		argv = append(argv, "--dir="+dir)
	}
	if len(args) > 0 {
		// Positional arguments stay positional ("--"), even ones that
		// look like flags (psql's, after `pgward local psql --`).
		argv = append(append(argv, "--"), args...)
	}
	// The child executes the image through its own descriptor 3 (our
	// binary may live where the user cannot read it, e.g. under /root).
	child := exec.CommandContext(cmd.Context(), "/proc/self/fd/3", argv...)
	child.ExtraFiles = []*os.File{image}
	child.Stdout, child.Stderr = cmd.OutOrStdout(), cmd.ErrOrStderr()
	child.Stdin = os.Stdin
	if manifest != nil {
		child.Stdin = bytes.NewReader(manifest)
	}
	child.Dir = "/"
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		child.Dir = dir
	}
	child.Env = append(dropEnv(), execImageEnv+"=3")
	// The child dies with this process (Pdeathsig, set after the switch
	// of user, which would clear it): a root run that is killed, SIGKILL
	// included, leaves no unprivileged half running on, nor the in-memory
	// copy of pgward that half executes. The signal follows the thread
	// that started the child, so this goroutine keeps it until the child
	// is gone.
	child.SysProcAttr = &syscall.SysProcAttr{Credential: owner.Credential(), Pdeathsig: syscall.SIGKILL}
	runtime.LockOSThread()
	err = child.Run()
	runtime.UnlockOSThread()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return &ExitCodeError{Code: exit.ExitCode()}
	}
	return err
}

// execImageEnv names, in the unprivileged child, the descriptor its own
// binary arrived on, which it closes at start (see DropExecImage).
const execImageEnv = "PGWARD_EXEC_FD"

// execImage returns a copy of pgward that the unprivileged user can
// execute: an anonymous in-memory file (memfd). Nothing is written to disk,
// and the copy is gone when its last descriptor closes, on every exit path
// of this process, SIGKILL included (a temporary file left an 82 MB copy
// behind each time a root run was killed).
func execImage() (*os.File, error) {
	fd, err := unix.MemfdCreate("pgward", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("creating an in-memory copy of pgward: %w", err)
	}
	image := os.NewFile(uintptr(fd), "memfd:pgward")
	self, err := os.Open("/proc/self/exe")
	if err != nil {
		_ = image.Close()
		return nil, fmt.Errorf("reading pgward: %w", err)
	}
	defer func() { _ = self.Close() }()
	if _, err := io.Copy(image, self); err != nil {
		_ = image.Close()
		return nil, fmt.Errorf("copying pgward: %w", err)
	}
	return image, nil
}

// DropExecImage closes the descriptor a root parent passed its binary on
// (asOwner), so it neither lingers in this process nor leaks into the
// processes it starts (the controller would keep the 82 MB copy alive).
func DropExecImage() {
	v, ok := os.LookupEnv(execImageEnv)
	if !ok {
		return
	}
	_ = os.Unsetenv(execImageEnv)
	if fd, err := strconv.Atoi(v); err == nil && fd > 2 {
		_ = syscall.Close(fd)
	}
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
