package local

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	v1 "github.com/pgward/pgward/api/v1"
)

// Controller supervises a local cluster's instance managers: it starts them
// (the primary first, since replicas clone it), restarts any that exit, and
// stops them all when its context ends. It runs as the unprivileged user.
type Controller struct {
	Layout Layout
	Log    *slog.Logger
	// Binary is the pgward executable to run instance managers with.
	Binary string
}

// Run holds the state directory's lock until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	unlock, err := lockDir(c.Layout)
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
	ha, err := newHALoop(c.Layout, cluster, st, c.Log)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	for _, is := range st.Instances[:cluster.Spec.Instances] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.superviseInstance(ctx, is.Name)
		}()
	}
	c.Log.Info("controller running", "cluster", cluster.Name, "instances", cluster.Spec.Instances)
	// The instance managers start with postgres down; the planner decides
	// what each one does (bootstrap, clone, start, promote...).
	ha.run(ctx)
	c.Log.Info("stopping instances")
	wg.Wait()
	c.Log.Info("all instances stopped")
	return nil
}

// superviseInstance keeps one instance manager running until ctx ends.
func (c *Controller) superviseInstance(ctx context.Context, name string) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		started := time.Now()
		err := c.runInstance(ctx, name)
		if ctx.Err() != nil {
			return
		}
		c.Log.Warn("instance manager exited; restarting", "instance", name, "err", err)
		if time.Since(started) > time.Minute {
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

// runInstance runs `pgward instance run` and, when ctx ends, asks it to shut
// down (SIGTERM: fast shutdown of PostgreSQL) and waits for it.
func (c *Controller) runInstance(ctx context.Context, name string) error {
	logf, err := os.OpenFile(c.Layout.InstanceLog(name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer func() { _ = logf.Close() }()
	// Stopped by SIGTERM below (a clean shutdown), not killed by ctx.
	cmd := exec.Command(c.Binary, "instance", "run", "--config", c.Layout.InstanceConfig(name)) //nolint:noctx // see above
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = minimalEnv()
	// A controller that dies must not leave instance managers behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting instance manager %s: %w", name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			return err
		case <-time.After(90 * time.Second):
			_ = cmd.Process.Kill()
			return <-done
		}
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
