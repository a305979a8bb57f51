package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/pgward/pgward/internal/local"
)

// Failure modes of the failover benchmark.
const (
	// ModeKill kills -9 the primary's postmaster; its instance manager
	// stays up and reports the death.
	ModeKill = "kill"
	// ModeFreeze SIGSTOPs the primary's instance manager and postgres for
	// FreezeFor, then SIGCONTs them: the controller cannot tell a frozen
	// primary from a dead one, and must not end up with two writers.
	ModeFreeze = "freeze"
	// ModeFreezeManager SIGSTOPs only the primary's instance manager for
	// FreezeFor: its postgres keeps serving and nothing inside the
	// instance can fence it (the manager that would is stopped); only the
	// controller's power fence (SIGKILL of the manager's process tree)
	// stops it before another instance is promoted.
	ModeFreezeManager = "freeze-manager"
	// ModeSwitchover asks for planned switchovers.
	ModeSwitchover = "switchover"

	// Faults of the local runtime's own processes and files (pgward bench
	// fault). The writer must not notice most of them.

	// ModeControllerKill SIGKILLs the controller: the managers start
	// another, which adopts them; the primary keeps writing.
	ModeControllerKill = "controller-kill"
	// ModeControllerStop SIGSTOPs the controller for FreezeFor: a manager
	// kills it after a second and starts another.
	ModeControllerStop = "controller-stop"
	// ModeManagerKill SIGKILLs the primary's instance manager: its postgres
	// shuts down (parent-death signal) and a replica takes over.
	ModeManagerKill = "manager-kill"
	// ModeReplicaManagerKill SIGKILLs a replica's instance manager.
	ModeReplicaManagerKill = "replica-manager-kill"
	// ModeReplicaDataLoss deletes a replica's data directory under its
	// running postgres: it is cloned afresh.
	ModeReplicaDataLoss = "replica-data-loss"
	// ModeSwitchoverControllerKill asks for a switchover and SIGKILLs the
	// controller once the old primary has been told to shut down: the next
	// controller finishes it from the persisted memory.
	ModeSwitchoverControllerKill = "switchover-controller-kill"
	// ModeDiskFull fills the filesystem of the primary's instance directory
	// (which must be a small one, e.g. a tmpfs the caller mounted), keeps
	// it full for FullFor after another instance took over (the full one's
	// restarts fail and must back off, not loop), then frees it.
	ModeDiskFull = "disk-full"
)

// FaultModes are the modes of `pgward bench fault`.
var FaultModes = []string{ModeControllerKill, ModeControllerStop, ModeManagerKill, ModeReplicaManagerKill,
	ModeReplicaDataLoss, ModeSwitchoverControllerKill, ModeDiskFull}

// keepsPrimary reports whether a mode leaves the primary where it is: its
// cost is the longest gap in acknowledged writes, not a failover time.
func keepsPrimary(mode string) bool {
	switch mode {
	case ModeControllerKill, ModeControllerStop, ModeReplicaManagerKill, ModeReplicaDataLoss:
		return true
	}
	return false
}

// FailoverOptions configure `pgward bench failover` and `bench switchover`.
type FailoverOptions struct {
	Options
	Mode      string
	Rounds    int
	FreezeFor time.Duration
	// FullFor is how long ModeDiskFull keeps the disk full after the failover.
	FullFor time.Duration
	// Settle bounds the wait for the cluster to be fully healthy between rounds.
	Settle time.Duration
}

// Run runs the benchmark and prints its report.
func Run(ctx context.Context, o FailoverOptions) (Summary, error) {
	if o.Settle == 0 {
		o.Settle = 3 * time.Minute
	}
	c, err := startCluster(ctx, o.Options)
	if err != nil {
		return Summary{}, err
	}
	defer c.stop()
	l := local.Layout{Dir: c.dir}
	if err := prepareTables(ctx, c.uri); err != nil {
		return Summary{}, err
	}
	if err := local.WaitHealthy(ctx, l, "", o.Settle); err != nil {
		return Summary{}, err
	}
	rec := &recorder{}
	wctx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	go writer(wctx, c.uri, rec)
	ports := map[string]int{}
	for port, name := range c.ports {
		ports[name] = port
		go prober(wctx, c.uri, port, rec)
	}
	time.Sleep(time.Second) // some writes before the first failure
	var rounds []Round
	for n := 1; n <= o.Rounds; n++ {
		r := runRound(ctx, o, c, ports, rec, n)
		if r.Err == "" {
			if err := local.WaitHealthy(ctx, l, "", o.Settle); err != nil {
				r.Err = "did not recover: " + err.Error()
			}
		}
		rounds = append(rounds, r)
		printRound(o, r)
		if r.Err != "" {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	stopLoad()
	s := summarize(o.Mode, rounds)
	rec.mu.Lock()
	acks := append([]ack(nil), rec.writes...)
	rec.mu.Unlock()
	s.Acknowledged = len(acks)
	if err := local.WaitHealthy(ctx, l, "", o.Settle); err != nil {
		return s, err
	}
	lost, err := missing(ctx, c.uri, acks)
	if err != nil {
		return s, fmt.Errorf("checking acknowledged writes: %w", err)
	}
	s.MissingAcked = len(lost)
	for i, a := range lost {
		if i == 10 {
			break
		}
		s.MissingSample = append(s.MissingSample, fmt.Sprintf("id %d acknowledged by %s at %s", a.id, c.ports[a.port], a.at.Format("15:04:05.000")))
	}
	final, err := local.Observe(ctx, l)
	if err != nil {
		return s, err
	}
	s.Divergent, s.SplitBrain, err = splitBrain(rec, filepath.Join(l.InstanceDir(final.CurrentPrimary), "data"))
	if err != nil {
		return s, err
	}
	s.SyncReplication = syncOn(o.Manifest)
	return s, printSummary(o, s)
}

func runRound(ctx context.Context, o FailoverOptions, c *cluster, ports map[string]int, rec *recorder, n int) Round {
	l := local.Layout{Dir: c.dir}
	cs, err := local.Observe(ctx, l)
	if err != nil {
		return Round{N: n, Err: err.Error()}
	}
	old := cs.CurrentPrimary
	r := Round{N: n, OldPrimary: old}
	switch o.Mode {
	case ModeKill:
		pid, err := postmasterPid(c.dir, old)
		if err != nil {
			r.Err = err.Error()
			return r
		}
		r.Start = time.Now()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			r.Err = err.Error()
			return r
		}
	case ModeFreeze:
		r.Start = time.Now()
		if err := signalInstance(c.dir, old, syscall.SIGSTOP); err != nil {
			r.Err = err.Error()
			return r
		}
		go func() {
			time.Sleep(o.FreezeFor)
			_ = signalInstance(c.dir, old, syscall.SIGCONT)
		}()
	case ModeFreezeManager:
		pid, ok := local.InstanceManagerPid(l, old)
		if !ok {
			r.Err = "no instance manager found for " + old
			return r
		}
		r.Start = time.Now()
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			r.Err = err.Error()
			return r
		}
		go func() {
			time.Sleep(o.FreezeFor)
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}()
	case ModeSwitchover:
		to := nextReplica(cs, old)
		r.Start = time.Now()
		if _, err := local.RequestSwitchover(l, to); err != nil {
			r.Err = err.Error()
			return r
		}
	default:
		controller, _ := controllerPid(l)
		r.Start = time.Now()
		if err := injectFault(ctx, o, c, cs, old); err != nil {
			r.Err = err.Error()
			return r
		}
		if keepsPrimary(o.Mode) {
			return measureGap(ctx, o, c, ports, rec, r, controller)
		}
	}
	deadline := r.Start.Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if a, ok := rec.firstWriteAfter(r.Start, ports[old]); ok {
			r.FirstWrite, r.NewPrimary = a.at, c.ports[a.port]
			r.Duration = a.at.Sub(r.Start)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r.FirstWrite.IsZero() {
		r.Err = "no write acknowledged by a new primary within 90s"
	}
	if o.Mode == ModeDiskFull {
		if !r.FirstWrite.IsZero() {
			time.Sleep(time.Until(r.FirstWrite.Add(o.FullFor)))
		}
		freeDisk(c, old)
	}
	if (o.Mode == ModeSwitchover || o.Mode == ModeSwitchoverControllerKill) && r.Err == "" {
		// The switchover's cost is the longest gap in acknowledged writes.
		r.Duration = longestGap(rec, r.Start.Add(-time.Second), r.FirstWrite.Add(time.Second))
	}
	if o.Mode == ModeFreeze || o.Mode == ModeFreezeManager {
		// Round ends after the frozen primary woke and was dealt with.
		time.Sleep(time.Until(r.Start.Add(o.FreezeFor)))
	}
	return r
}

// longestGap is the longest time between consecutive writer acks in [from, to].
func longestGap(rec *recorder, from, to time.Time) time.Duration {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var gap time.Duration
	var prev time.Time
	for _, a := range rec.writes {
		if a.at.Before(from) {
			prev = a.at
			continue
		}
		if a.at.After(to) {
			break
		}
		if !prev.IsZero() && a.at.Sub(prev) > gap {
			gap = a.at.Sub(prev)
		}
		prev = a.at
	}
	return gap
}

func nextReplica(cs *local.ClusterStatus, primary string) string {
	for i, r := range cs.Instances {
		if r.Name == primary {
			return cs.Instances[(i+1)%len(cs.Instances)].Name
		}
	}
	return ""
}

func printRound(o FailoverOptions, r Round) {
	if o.JSON {
		return
	}
	if r.Err != "" {
		_, _ = fmt.Fprintf(o.Out, "round %2d  %s  FAILED: %s\n", r.N, r.OldPrimary, r.Err)
		return
	}
	what := "fault to first write on the new primary"
	if o.Mode == ModeSwitchover || o.Mode == ModeSwitchoverControllerKill || keepsPrimary(o.Mode) {
		what = "longest time without an acknowledged write"
	}
	_, _ = fmt.Fprintf(o.Out, "round %2d  %s -> %s  %s: %s\n", r.N, r.OldPrimary, r.NewPrimary, what, r.Duration.Round(time.Millisecond))
}

func printSummary(o FailoverOptions, s Summary) error {
	if o.JSON {
		enc := json.NewEncoder(o.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	w := tabwriter.NewWriter(o.Out, 0, 4, 2, ' ', 0)
	_, _ = fmt.Fprintf(w, "\nmode\t%s (%d rounds, %d failed; %d cores, %s)\n", s.Mode, len(s.Rounds), s.FailedRounds, runtime.NumCPU(), runtime.GOOS)
	_, _ = fmt.Fprintf(w, "p50\t%s\n", s.P50.Round(time.Millisecond))
	_, _ = fmt.Fprintf(w, "p95\t%s\n", s.P95.Round(time.Millisecond))
	_, _ = fmt.Fprintf(w, "max\t%s\n", s.Max.Round(time.Millisecond))
	_, _ = fmt.Fprintf(w, "acknowledged writes\t%d\n", s.Acknowledged)
	_, _ = fmt.Fprintf(w, "acknowledged writes missing\t%d\n", s.MissingAcked)
	for _, m := range s.MissingSample {
		_, _ = fmt.Fprintf(w, "  missing\t%s\n", m)
	}
	_, _ = fmt.Fprintf(w, "split-brain moments\t%d\n", s.SplitBrain)
	_, _ = fmt.Fprintf(w, "acknowledged writes the final history lacks\t%d\n", s.Divergent)
	_, _ = fmt.Fprintf(w, "synchronous replication\t%v\n", s.SyncReplication)
	return w.Flush()
}
