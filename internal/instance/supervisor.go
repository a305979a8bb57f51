package instance

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pgward/pgward/internal/instanceapi"
)

// Supervisor is instanceapi.Supervisor: the controller a manager keeps alive.
type Supervisor = instanceapi.Supervisor

// Timing of the supervisor watch.
const (
	// SupervisorCheckInterval is how often a manager looks at its controller.
	SupervisorCheckInterval = 250 * time.Millisecond
	// frozenControllerKillAfter is how long a controller may stay stopped
	// (SIGSTOP, a tracer) before a manager kills it.
	frozenControllerKillAfter = time.Second
	firstRespawnBackoff       = time.Second
	maxRespawnBackoff         = 30 * time.Second
)

var errOrphaned = errors.New("no controller")

// supervisorWatch is a manager's view of its controller.
type supervisorWatch struct {
	cfg *Supervisor
	log *slog.Logger
	// stoppedSince is when the controller was first seen stopped.
	stoppedSince time.Time
	nextStart    time.Time
	backoff      time.Duration
}

func newSupervisorWatch(cfg *Supervisor, log *slog.Logger) *supervisorWatch {
	if cfg == nil || len(cfg.Command) == 0 {
		return nil
	}
	return &supervisorWatch{cfg: cfg, log: log, backoff: firstRespawnBackoff}
}

// check looks at the controller once. away is how long ago this manager
// last completed an exchange with a controller. It returns errOrphaned when
// the manager should stop PostgreSQL and exit.
func (w *supervisorWatch) check(now time.Time, away time.Duration) error {
	if _, err := os.Stat(w.cfg.StopFile); err == nil {
		return nil // a stop is under way; the controller stops us
	}
	pid, state := w.controller()
	switch {
	case pid != 0 && (state == 'T' || state == 't'):
		if w.stoppedSince.IsZero() {
			w.stoppedSince = now
			return nil
		}
		if now.Sub(w.stoppedSince) < frozenControllerKillAfter {
			return nil
		}
		// Killing a stopped process ends it at once; its lock goes with
		// it, and the next check starts a controller that resumes from
		// the planner's persisted memory. The frozen one can never wake
		// up and act on what it knew before.
		w.log.Warn("the controller is stopped; killing it so that another takes over", "pid", pid,
			"stopped", now.Sub(w.stoppedSince).Round(time.Millisecond))
		_ = syscall.Kill(pid, syscall.SIGKILL)
		w.stoppedSince = time.Time{}
		w.nextStart = time.Time{}
		return nil
	case pid != 0:
		w.stoppedSince = time.Time{}
		w.backoff = firstRespawnBackoff
		return nil
	}
	w.stoppedSince = time.Time{}
	if w.cfg.OrphanAfter > 0 && away > w.cfg.OrphanAfter {
		return fmt.Errorf("%w for %s and none could be started (see %s)", errOrphaned, away.Round(time.Second), w.cfg.LogFile)
	}
	if now.Before(w.nextStart) {
		return nil
	}
	w.nextStart = now.Add(w.backoff)
	w.backoff = min(2*w.backoff, maxRespawnBackoff)
	if err := w.start(); err != nil {
		w.log.Error("starting a controller", "err", err)
		return nil
	}
	w.log.Warn("no controller running; started one")
	return nil
}

// controller returns the running controller's pid and process state, or 0.
func (w *supervisorWatch) controller() (int, byte) {
	b, err := os.ReadFile(w.cfg.PidFile)
	if err != nil {
		return 0, 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, 0
	}
	// The pid must still run this very command: a pid file left by a
	// crashed controller may name a reused pid.
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || !bytes.Equal(bytes.TrimRight(cmdline, "\x00"), []byte(strings.Join(w.cfg.Command, "\x00"))) {
		return 0, 0
	}
	state := ProcState(pid)
	if state == 0 || state == 'Z' || state == 'X' {
		return 0, 0
	}
	return pid, state
}

// start launches a controller in a session of its own; it outlives us.
func (w *supervisorWatch) start() error {
	logf, err := os.OpenFile(w.cfg.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer func() { _ = logf.Close() }()
	// Not tied to a context: the controller must outlive this manager.
	cmd := exec.Command(w.cfg.Command[0], w.cfg.Command[1:]...) //nolint:noctx // see above
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = "/"
	cmd.Env = os.Environ()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { _ = cmd.Wait() }() // reaped if it exits while we run
	return nil
}

// ProcState is the state letter of a process (R, S, D, T, Z...), or 0 if
// there is no such process.
func ProcState(pid int) byte {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name is in parentheses and may hold anything.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}
