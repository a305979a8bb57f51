package instance

import (
	"context"
	"errors"
	"fmt"
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

	mu  sync.Mutex
	err error
}

// startPostgres starts postgres on dataDir with the configuration rendered
// under confDir. PostgreSQL's stderr (its log) goes to logFile.
func startPostgres(binDir, dataDir, confFile, logFile string) (*postmaster, error) {
	logf, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600) // #nosec G304 -- path from our own config
	if err != nil {
		return nil, fmt.Errorf("opening postgres log: %w", err)
	}
	// No context: postgres is stopped by explicit signals (Stop), never
	// killed outright when some caller's context ends.
	cmd := exec.Command(filepath.Join(binDir, "postgres"), "-D", dataDir, "-c", "config_file="+confFile) //nolint:noctx // see above
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Env = pgEnv()
	// If the instance manager dies, postgres gets a fast shutdown instead of
	// running on unsupervised (a primary nobody watches could split the brain).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGINT}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("starting postgres: %w", err)
	}
	p := &postmaster{cmd: cmd, done: make(chan struct{})}
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
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, name), args...)
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
