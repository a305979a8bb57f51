package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/plan"
)

// RestartOptions configure `pgward local restart`.
type RestartOptions struct {
	Dir string
	// Instance restarts only that one (a primary in place); empty: every
	// instance, rolling.
	Instance string
	Timeout  time.Duration
	Out      io.Writer
}

// Restart restarts PostgreSQL without losing a commit and with never more
// than one instance down: each replica in turn, back streaming before the
// next, then a switchover to the most advanced replica, which restarts the
// old primary as it rejoins. With an instance named, only that one (a
// primary restarts in place: writes stop while it does).
func Restart(ctx context.Context, o RestartOptions) error {
	l := Layout{Dir: o.Dir}
	st, err := LoadState(l)
	if err != nil {
		return err
	}
	if !controllerRunning(l) {
		return errors.New("the controller is not running (pgward local up first)")
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	cl, err := newStatusClient(l, st.Cluster, 5*time.Second)
	if err != nil {
		return err
	}
	defer cl.CloseIdle()
	cs, err := Observe(ctx, l)
	if err != nil {
		return err
	}
	if ok, why := healthy(cs, ""); !ok {
		return fmt.Errorf("the cluster is not healthy, nothing restarted: %s", why)
	}
	primary := cs.CurrentPrimary
	var replicas []string
	for _, r := range cs.Instances {
		if r.Name != primary {
			replicas = append(replicas, r.Name)
		}
	}
	if o.Instance != "" {
		if _, ok := st.Instance(o.Instance); !ok {
			return fmt.Errorf("no instance %q in cluster %s", o.Instance, st.Cluster)
		}
		return restartOne(ctx, l, cl, st, o.Instance, primary, o.Out)
	}
	start := time.Now()
	best, bestLSN := "", plan.LSN(0)
	for _, r := range replicas {
		if err := restartOne(ctx, l, cl, st, r, primary, o.Out); err != nil {
			return err
		}
	}
	if len(replicas) == 0 {
		return restartOne(ctx, l, cl, st, primary, primary, o.Out)
	}
	if cs, err = Observe(ctx, l); err != nil {
		return err
	}
	for _, r := range cs.Instances {
		lsn, _ := plan.ParseLSN(r.ReceivedLSN)
		if r.Name != primary && (best == "" || lsn > bestLSN) {
			best, bestLSN = r.Name, lsn
		}
	}
	_, _ = fmt.Fprintf(o.Out, "replicas restarted; switching over from %s to %s (%s restarts as it rejoins)\n", primary, best, primary)
	if err := Promote(ctx, PromoteOptions{Dir: o.Dir, Instance: best, Timeout: time.Until(start.Add(o.Timeout)), Out: o.Out}); err != nil {
		return err
	}
	_, _ = fmt.Fprintf(o.Out, "every instance restarted in %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// restartOne asks name's manager for a restart and waits until the
// cluster is healthy again with it back.
func restartOne(ctx context.Context, l Layout, cl *instanceapi.Client, st *State, name, primary string, out io.Writer) error {
	is, _ := st.Instance(name)
	addr := net.JoinHostPort(loopback, strconv.Itoa(is.StatusPort))
	// The cluster's epoch (the primary's, the highest any instance
	// reports): an instance refuses a command older than what it has seen.
	var epoch uint64
	sts, _ := observe(ctx, cl, st)
	for _, s := range sts {
		if s != nil && s.Epoch > epoch {
			epoch = s.Epoch
		}
	}
	started := time.Now()
	if err := cl.Command(ctx, addr, instanceapi.Command{Kind: instanceapi.CommandRestart, Epoch: epoch}); err != nil {
		return fmt.Errorf("restarting %s: %w", name, err)
	}
	// Wait for the restart to be under way, then for the cluster to be
	// whole again.
	for {
		s, err := cl.Status(ctx, addr, 0)
		if err == nil && s.Busy != instanceapi.CommandRestart && s.Ready && time.Since(started) > 200*time.Millisecond {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not come back: %w", name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	deadline, _ := ctx.Deadline()
	if err := WaitHealthy(ctx, l, primary, time.Until(deadline)); err != nil {
		return fmt.Errorf("after restarting %s: %w", name, err)
	}
	_, _ = fmt.Fprintf(out, "%s restarted and back (%s)\n", name, time.Since(started).Round(time.Millisecond))
	return nil
}
