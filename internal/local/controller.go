package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instance"
)

// Controller supervises a local cluster's instance managers: it starts
// them, restarts any that exits, drives the planner, and stops them all
// when its context ends. It runs as the unprivileged user.
//
// Managers outlive the controller (no parent-death signal): a controller
// that crashes takes no instance down, and the managers start a new one
// (instance.Supervisor), which adopts the managers it finds running and
// resumes from the planner's persisted memory. Only one controller runs per
// state directory (an exclusive flock); another one started meanwhile exits
// at once.
type Controller struct {
	Layout Layout
	Log    *slog.Logger
	// Binary is the pgward executable to run instance managers with.
	Binary string
	// Level is Log's level, set to the manifest's spec.logLevel (nil:
	// left as it is).
	Level *slog.LevelVar
}

// Run holds the state directory's lock until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	unlock, err := lockDir(c.Layout)
	if errors.Is(err, errAlreadyRunning) {
		// Several managers may start a controller at the same moment;
		// the first to lock the directory is the controller.
		c.Log.Info("another controller holds the lock; exiting")
		return nil
	}
	if err != nil {
		return err
	}
	defer unlock()
	if err := os.WriteFile(c.Layout.PidFile(), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		return fmt.Errorf("writing pid file: %w", err)
	}
	defer func() { _ = os.Remove(c.Layout.PidFile()) }()

	st, err := LoadState(c.Layout)
	if err != nil {
		return err
	}
	manifest, err := os.ReadFile(c.Layout.ClusterFile())
	if err != nil {
		return err
	}
	cluster, err := v1.LoadAndValidate(manifest)
	if err != nil {
		return err
	}
	if c.Level != nil {
		c.Level.Set(instance.SlogLevel(&cluster.Spec))
	}
	ha, err := newHALoop(c.Layout, cluster, st, c.Log)
	if err != nil {
		return err
	}
	running := managers(c.Layout)
	var wg sync.WaitGroup
	for _, is := range st.Instances[:cluster.Spec.Instances] {
		wg.Add(1)
		adopt, ok := running[is.Name]
		go func() {
			defer wg.Done()
			var p *proc
			if ok {
				c.Log.Info("adopting running instance manager", "instance", is.Name, "pid", adopt.pid)
				p = &adopt
			}
			c.superviseInstance(ctx, is.Name, p)
		}()
	}
	c.Log.Info("controller running", "cluster", cluster.Name, "instances", cluster.Spec.Instances, "adopted", len(running))
	// The instance managers start with postgres down; the planner decides
	// what each one does (bootstrap, clone, start, promote...).
	ha.run(ctx)
	c.Log.Info("stopping instances")
	wg.Wait()
	c.Log.Info("all instances stopped")
	return nil
}

// superviseInstance keeps one instance manager running until ctx ends, then
// stops it. running is a manager found running at start (adopted), if any.
func (c *Controller) superviseInstance(ctx context.Context, name string, running *proc) {
	backoff := 100 * time.Millisecond
	exits := 0
	for {
		p := running
		running = nil
		if p == nil {
			started, err := c.startManager(name)
			if err != nil {
				c.Log.Error("starting instance manager", "instance", name, "err", err)
			} else {
				p = started
			}
		}
		started := time.Now()
		if p != nil && waitGone(ctx, *p) {
			c.stopManager(name, *p)
			return
		}
		if ctx.Err() != nil {
			return
		}
		ran := time.Since(started)
		if ran > managerStableAfter {
			exits = 0
		}
		exits++
		rec := managerExit{At: time.Now(), InARow: exits, Message: lastError(c.Layout.InstanceLog(name))}
		c.Log.Warn("instance manager exited; restarting", "instance", name, "ran", ran.Round(time.Millisecond),
			"inARow", exits, "error", rec.Message)
		if err := rec.save(c.Layout, name); err != nil {
			c.Log.Error("recording the manager's exit", "instance", name, "err", err)
		}
		if ran > time.Minute {
			backoff = 100 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 15*time.Second)
	}
}

// managerStableAfter: a manager that ran this long before exiting starts a
// new count of exits in a row.
const managerStableAfter = 10 * time.Second

// managerExit records why an instance manager last exited, for `up` and
// `status`: a manager that cannot start (a corrupt state file, a bad
// config) exits again and again, and only its own log would say why.
type managerExit struct {
	At time.Time `json:"at"`
	// InARow counts exits within managerStableAfter of their start.
	InARow  int    `json:"inARow"`
	Message string `json:"message"`
}

func managerExitFile(l Layout, name string) string {
	return filepath.Join(l.InstanceDir(name), "manager-exit.json")
}

func (r managerExit) save(l Layout, name string) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return instance.WriteFileAtomic(managerExitFile(l, name), b, 0o600)
}

// crashLooping returns why an instance's manager keeps exiting, if it
// exited at least 3 times in a row, the last within 30 s.
func crashLooping(l Layout, name string) (string, bool) {
	var r managerExit
	if !readJSON(managerExitFile(l, name), &r) || r.InARow < 3 || time.Since(r.At) > 30*time.Second {
		return "", false
	}
	return fmt.Sprintf("its instance manager exited %d times in a row: %s (log: %s)", r.InARow, r.Message, l.InstanceLog(name)), true
}

// lastError is the last "error: ..." line of a manager's log (what main
// prints before exiting), or its last line.
func lastError(logFile string) string {
	lines := strings.Split(strings.TrimRight(tail(logFile, 50), "\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if msg, ok := strings.CutPrefix(lines[i], "error: "); ok {
			return msg
		}
	}
	return lines[len(lines)-1]
}

// waitGone returns false when p exits, true when ctx ends first. Managers
// a previous controller started are not our children: exit is seen in /proc.
func waitGone(ctx context.Context, p proc) bool {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for p.alive() {
		select {
		case <-ctx.Done():
			return true
		case <-t.C:
		}
	}
	return false
}

// startManager runs `pgward instance run`, reaped by a goroutine when it
// exits. It has no parent-death signal: it outlives this controller.
func (c *Controller) startManager(name string) (*proc, error) {
	logf, err := os.OpenFile(c.Layout.InstanceLog(name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer func() { _ = logf.Close() }()
	// Stopped by SIGTERM in stopManager (a clean shutdown), not by a context.
	cmd := exec.Command(c.Binary, "instance", "run", "--config", c.Layout.InstanceConfig(name)) //nolint:noctx // see above
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = minimalEnv()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting instance manager %s: %w", name, err)
	}
	p, ok := procOf(cmd.Process.Pid)
	go func() { _ = cmd.Wait() }()
	if !ok {
		return nil, fmt.Errorf("instance manager %s exited at once", name)
	}
	return &p, nil
}

// stopManager asks a manager to shut down (SIGTERM: it stops PostgreSQL
// within the manifest's spec.stopDelay) and waits that long and 10 s for
// the manager's own exit, then kills it.
func (c *Controller) stopManager(name string, p proc) {
	if !p.alive() {
		return
	}
	_ = syscall.Kill(p.pid, syscall.SIGTERM)
	deadline := time.Now().Add(stopDelayOf(c.Layout) + 10*time.Second)
	for p.alive() {
		if time.Now().After(deadline) {
			c.Log.Error("instance manager did not stop; killing it", "instance", name, "pid", p.pid)
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// minimalEnv passes nothing secret-bearing to children.
func minimalEnv() []string {
	env := []string{"LC_ALL=C"}
	for _, k := range []string{"PATH", "TZ", "PGWARD_LOG_LEVEL"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// lockDir takes an exclusive flock on the state directory so that only one
// controller ever supervises a cluster.
func lockDir(l Layout) (func(), error) {
	// Read-only is enough for flock, and the file is created by prepare
	// (before the directory is handed to the run-as user).
	f, err := os.Open(l.LockFile())
	if err != nil {
		return nil, fmt.Errorf("opening lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil { // #nosec G115 -- fd fits in int
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errAlreadyRunning
		}
		return nil, fmt.Errorf("locking %s: %w", l.LockFile(), err)
	}
	return func() { _ = f.Close() }, nil
}

var errAlreadyRunning = errors.New("a controller is already running for this cluster")

// lockUp takes the state directory's up/down lock, waiting (and saying so)
// while another command or the controller's certificate check holds it.
func lockUp(ctx context.Context, l Layout, say func(string)) (func(), error) {
	waiting := false
	for {
		unlock, ok, err := tryLockUp(l)
		if err != nil || ok {
			return unlock, err
		}
		if !waiting {
			say("another `pgward local up`, `down` or `rotate-ca`, or the controller's certificate check, is working on " + l.Dir + "; waiting for it")
			waiting = true
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("another `pgward local up`, `down` or `rotate-ca`, or the controller's certificate check, still holds %s: %w", l.UpLockFile(), ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// tryLockUp takes up.lock if nobody holds it; ok is false if someone does.
// The controller's certificate check uses it, so that it never runs beside
// `up`, `down` or `rotate-ca`, and never blocks the HA loop.
func tryLockUp(l Layout) (unlock func(), ok bool, err error) {
	f, err := os.OpenFile(l.UpLockFile(), os.O_CREATE|os.O_RDONLY, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("opening %s: %w", l.UpLockFile(), err)
	}
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) // #nosec G115 -- fd fits in int
	switch {
	case err == nil:
		return func() { _ = f.Close() }, true, nil
	case errors.Is(err, syscall.EWOULDBLOCK):
		_ = f.Close()
		return nil, false, nil
	default:
		_ = f.Close()
		return nil, false, fmt.Errorf("locking %s: %w", l.UpLockFile(), err)
	}
}

// ControllerRunning reports whether a controller supervises the cluster in l.
func ControllerRunning(l Layout) bool { return controllerRunning(l) }

// controllerRunning reports whether a controller holds the lock.
func controllerRunning(l Layout) bool {
	unlock, err := lockDir(l)
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	unlock()
	return false
}

// readPid reads the controller's pid file.
func readPid(l Layout) (int, error) {
	b, err := os.ReadFile(l.PidFile())
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(string(trimNL(b)))
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// stopDelayOf is spec.stopDelay of the manifest in the state directory, as
// the instance managers read it; the default when it cannot be read (a
// damaged directory is still stopped).
func stopDelayOf(l Layout) time.Duration {
	if b, err := os.ReadFile(l.ClusterFile()); err == nil {
		if c, err := v1.LoadAndValidate(b); err == nil {
			return c.Spec.StopDelay()
		}
	}
	return v1.DefaultStopDelaySeconds * time.Second
}
