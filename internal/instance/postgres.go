package instance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// postmaster is a running postgres process, a direct child of the instance
// manager. Running it ourselves (rather than through pg_ctl) means we reap
// it and learn of its death the moment it happens: an orphaned postmaster
// lingering as a zombie would block pg_rewind with a stale postmaster.pid.
type postmaster struct {
	cmd  *exec.Cmd
	done chan struct{}
	// logFile and logStart locate this run's output when the log is a
	// regular file (the local runtime; in a pod it is stderr).
	logFile  string
	logStart int64

	mu  sync.Mutex
	err error
}

// startPostgres starts postgres on dataDir with the configuration rendered
// under confDir. PostgreSQL's stderr (its log) goes to logFile.
func startPostgres(binDir, dataDir, confFile, logFile string, extraEnv ...string) (*postmaster, error) {
	logf, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600) // #nosec G304 -- path from our own config
	if err != nil {
		return nil, fmt.Errorf("opening postgres log: %w", err)
	}
	logStart := int64(-1)
	if fi, err := logf.Stat(); err == nil && fi.Mode().IsRegular() {
		logStart = fi.Size()
	}
	// No context: postgres is stopped by explicit signals (Stop), never
	// killed outright when some caller's context ends.
	cmd := exec.Command(filepath.Join(binDir, "postgres"), "-D", dataDir, "-c", "config_file="+confFile) //nolint:noctx // see above
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Env = append(pgEnv(), extraEnv...)
	// If the instance manager dies, postgres gets a fast shutdown instead of
	// running on unsupervised (a primary nobody watches could split the brain).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGINT}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("starting postgres: %w", err)
	}
	p := &postmaster{cmd: cmd, done: make(chan struct{}), logFile: logFile, logStart: logStart}
	go func() {
		err := cmd.Wait()
		_ = logf.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// Cause is the server's own account of why this run failed: the last FATAL
// or PANIC line it logged (e.g. "FATAL: could not write lock file
// "postmaster.pid": No space left on device"), or "" when there is none or
// the log is not a file we can read back.
func (p *postmaster) Cause() string {
	if p.logStart < 0 {
		return ""
	}
	f, err := os.Open(p.logFile)
	if err != nil {
		return ""
	}
	defer func() { _ = f.Close() }()
	const window = 64 << 10
	start := p.logStart
	if fi, err := f.Stat(); err == nil && fi.Size()-window > start {
		start = fi.Size() - window
	}
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return ""
	}
	b, err := io.ReadAll(io.LimitReader(f, window))
	if err != nil {
		return ""
	}
	return lastFatal(string(b))
}

// lastFatal picks the last FATAL or PANIC message out of log text.
func lastFatal(log string) string {
	lines := strings.Split(log, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		for _, level := range []string{"PANIC:", "FATAL:"} {
			if j := strings.Index(lines[i], level); j >= 0 {
				msg := strings.Join(strings.Fields(lines[i][j:]), " ")
				if len(msg) > 300 {
					msg = msg[:300] + "..."
				}
				return msg
			}
		}
	}
	return ""
}

// exitReason describes how a postmaster on dataDir ended: its exit status
// and the server's own message when it left one. A full filesystem may not
// even let it log (the log often lives on it too): that is checked directly.
func (p *postmaster) exitReason(dataDir string) string {
	reason := fmt.Sprint(p.ExitErr())
	if c := p.Cause(); c != "" {
		return reason + ": " + c
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dataDir, &fs); err == nil && fs.Bavail*uint64(fs.Bsize) < 1<<20 { // #nosec G115 -- block size is positive
		reason += ": No space left on device (the data directory's filesystem is full)"
	}
	return reason
}

// Done is closed when the postmaster has exited and been reaped.
func (p *postmaster) Done() <-chan struct{} { return p.done }

// Running reports whether the postmaster has not exited.
func (p *postmaster) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// ExitErr is the postmaster's exit status once Done is closed.
func (p *postmaster) ExitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Stop asks for a fast shutdown (SIGINT: roll back sessions, checkpoint) and
// escalates to an immediate one (SIGQUIT), then SIGKILL, if it takes too long.
func (p *postmaster) Stop(timeout time.Duration) {
	steps := []syscall.Signal{syscall.SIGINT, syscall.SIGQUIT, syscall.SIGKILL}
	for _, sig := range steps {
		if !p.Running() {
			return
		}
		_ = p.cmd.Process.Signal(sig)
		select {
		case <-p.done:
			return
		case <-time.After(timeout):
		}
	}
	<-p.done
}

// Kill is an immediate shutdown: the quickest way to stop accepting writes.
// Crash recovery runs at the next start. The 500 ms before SIGKILL is part
// of the self-fencing bound (StopTime in plan.FenceTiming).
func (p *postmaster) Kill() {
	for _, sig := range []syscall.Signal{syscall.SIGQUIT, syscall.SIGKILL} {
		if !p.Running() {
			return
		}
		_ = p.cmd.Process.Signal(sig)
		select {
		case <-p.done:
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
	<-p.done
}

// Pid is the postmaster's process id.
func (p *postmaster) Pid() int { return p.cmd.Process.Pid }

// pgEnv is a minimal environment for PostgreSQL programs: no inherited
// PGPASSWORD or similar can leak into them, and messages are untranslated so
// we can read them.
func pgEnv() []string {
	env := []string{"LC_ALL=C", "LANG=C"}
	if path := os.Getenv("PATH"); path != "" {
		env = append(env, "PATH="+path)
	}
	if tz := os.Getenv("TZ"); tz != "" {
		env = append(env, "TZ="+tz)
	}
	return env
}

// runTool runs one of PostgreSQL's programs (initdb, pg_basebackup, ...) and
// returns its combined output in the error when it fails.
func runTool(ctx context.Context, binDir, name string, env []string, args ...string) error {
	return runToolIn(ctx, "", binDir, name, env, args...)
}

// runToolIn runs a tool with dir as its working directory. The local
// runtime's tablespace locations resolve through /proc/self/cwd (see
// instanceapi.Config.TablespaceLocation): a tool that follows them
// (pg_basebackup writing them, pg_rewind) must run from the data directory
// it works on, as PostgreSQL's own processes do.
func runToolIn(ctx context.Context, dir, binDir, name string, env []string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, name), args...)
	cmd.Dir = dir
	cmd.Env = append(pgEnv(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s failed: %w: %s", name, err, strings.TrimSpace(lastLines(string(out), 15)))
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// errPostmasterExited is returned when postgres dies while we wait on it.
var errPostmasterExited = errors.New("postgres exited")
