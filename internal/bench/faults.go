package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgward/pgward/internal/local"
)

// injectFault carries out one of the fault modes on the cluster whose
// primary is old.
func injectFault(ctx context.Context, o FailoverOptions, c *cluster, cs *local.ClusterStatus, old string) error {
	l := local.Layout{Dir: c.dir}
	switch o.Mode {
	case ModeControllerKill:
		return signalController(l, syscall.SIGKILL)
	case ModeControllerStop:
		if err := signalController(l, syscall.SIGSTOP); err != nil {
			return err
		}
		pid, _ := controllerPid(l)
		go func() {
			time.Sleep(o.FreezeFor)
			_ = syscall.Kill(pid, syscall.SIGCONT) // long dead, normally
		}()
		return nil
	case ModeManagerKill:
		return killManager(l, old)
	case ModeReplicaManagerKill:
		return killManager(l, nextReplica(cs, old))
	case ModeReplicaDataLoss:
		// The running postgres may create files while they are deleted
		// ("directory not empty"): try again until the directory is gone.
		data := filepath.Join(l.InstanceDir(nextReplica(cs, old)), "data")
		var err error
		for range 50 {
			if err = os.RemoveAll(data); err == nil {
				return nil
			}
			time.Sleep(10 * time.Millisecond)
		}
		return fmt.Errorf("deleting %s: %w", data, err)
	case ModeSwitchoverControllerKill:
		if _, err := local.RequestSwitchover(l, nextReplica(cs, old)); err != nil {
			return err
		}
		// Kill the controller once it has told the primary to shut down:
		// the switchover is then half done, in its persisted memory only.
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if now, err := local.Observe(ctx, l); err == nil && now.CurrentPrimary == "" {
				return signalController(l, syscall.SIGKILL)
			}
			time.Sleep(10 * time.Millisecond)
		}
		return errors.New("the primary did not start shutting down within 10s of the switchover request")
	case ModeDiskFull:
		if err := fillDisk(l.InstanceDir(old)); err != nil {
			return err
		}
		// Small commits fit in the WAL segment already allocated, and a
		// full data file only fails its own statement (ERROR, not PANIC):
		// write WAL alone (1 MB messages) until the primary needs a new
		// segment, which it cannot create. PostgreSQL then stops (PANIC).
		go func() {
			conn, err := pgx.Connect(ctx, c.uri)
			if err != nil {
				return
			}
			defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
			for range 256 {
				if _, err := conn.Exec(ctx, "SELECT pg_logical_emit_message(false, 'pgward-bench', repeat('x', 1048576))"); err != nil {
					return
				}
			}
		}()
		return nil
	}
	return fmt.Errorf("unknown mode %q", o.Mode)
}

// measureGap waits until the cluster is whole again and measures the
// longest time without an acknowledged write from a second before the
// fault to then. The round's "new" primary is whoever is primary then.
func measureGap(ctx context.Context, o FailoverOptions, c *cluster, ports map[string]int, rec *recorder, r Round, controller int) Round {
	l := local.Layout{Dir: c.dir}
	if o.Mode == ModeControllerKill || o.Mode == ModeControllerStop {
		// Recovered means another controller runs: without one the
		// instances would look healthy until the primary fences itself.
		deadline := time.Now().Add(30 * time.Second)
		for {
			if pid, err := controllerPid(l); err == nil && pid != controller && local.ControllerRunning(l) {
				break
			}
			if time.Now().After(deadline) {
				r.Err = "no new controller within 30s"
				return r
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if err := local.WaitHealthy(ctx, l, "", o.Settle); err != nil {
		r.Err = "did not recover: " + err.Error()
		return r
	}
	cs, err := local.Observe(ctx, l)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	r.NewPrimary = cs.CurrentPrimary
	time.Sleep(500 * time.Millisecond)
	if a, ok := rec.firstWriteAfter(r.Start, 0); ok && a.port == ports[r.NewPrimary] {
		r.FirstWrite = a.at
	}
	r.Duration = longestGap(rec, r.Start.Add(-time.Second), time.Now())
	return r
}

func controllerPid(l local.Layout) (int, error) {
	b, err := os.ReadFile(l.PidFile())
	if err != nil {
		return 0, fmt.Errorf("no controller pid: %w", err)
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

func signalController(l local.Layout, sig syscall.Signal) error {
	pid, err := controllerPid(l)
	if err != nil {
		return err
	}
	return syscall.Kill(pid, sig)
}

// killManager SIGKILLs an instance's manager only (its postgres gets the
// parent-death signal).
func killManager(l local.Layout, name string) error {
	pids, err := local.InstanceProcesses(l, name)
	if err != nil || len(pids) == 0 {
		return fmt.Errorf("no processes for %s: %w", name, err)
	}
	// The manager is the process whose parent is not in the tree.
	in := map[int]bool{}
	for _, p := range pids {
		in[p] = true
	}
	for _, p := range pids {
		if !in[ppid(p)] {
			return syscall.Kill(p, syscall.SIGKILL)
		}
	}
	return fmt.Errorf("no manager found for %s", name)
}

func ppid(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat") // #nosec G304 -- procfs
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndex(s, ")")+1:])
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// maxFillable bounds the filesystem ModeDiskFull may fill: it must be one
// made for the purpose (a tmpfs), never the machine's disk.
const maxFillable = 2 << 30

const fillerName = "disk-full.filler"

// fillDisk writes a file into dir until its filesystem is full.
func fillDisk(dir string) error {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		return err
	}
	if size := int64(fs.Blocks) * fs.Bsize; size > maxFillable { // #nosec G115 -- block counts fit
		return fmt.Errorf("%s is on a %d MiB filesystem: mode %s fills only small ones (mount a tmpfs there)", dir, size>>20, ModeDiskFull)
	}
	f, err := os.OpenFile(filepath.Join(dir, fillerName), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600) // #nosec G304 -- inside the state dir
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return nil
			}
			return err
		}
	}
}

// freeDisk removes what fillDisk wrote.
func freeDisk(c *cluster, name string) {
	_ = os.Remove(filepath.Join(local.Layout{Dir: c.dir}.InstanceDir(name), fillerName))
}
