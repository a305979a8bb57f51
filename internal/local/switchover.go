package local

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/pgward/pgward/internal/instance"
)

// PromoteOptions configure `pgward local promote`.
type PromoteOptions struct {
	Dir      string
	Instance string
	Timeout  time.Duration
	Out      io.Writer
}

// Promote asks the controller for a switchover to o.Instance (clean
// shutdown of the primary, the target catches up, is promoted, the others
// follow) and waits until the target is the working primary and every other
// instance streams from it.
func Promote(ctx context.Context, o PromoteOptions) error {
	l := Layout{Dir: o.Dir}
	st, err := LoadState(l)
	if err != nil {
		return err
	}
	if _, ok := st.Instance(o.Instance); !ok {
		return fmt.Errorf("no instance %q in cluster %s", o.Instance, st.Cluster)
	}
	if !controllerRunning(l) {
		return fmt.Errorf("the controller is not running (pgward local up first)")
	}
	if err := RequestSwitchover(l, o.Instance); err != nil {
		return err
	}
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Minute
	}
	_, _ = fmt.Fprintf(o.Out, "switchover to %s requested\n", o.Instance)
	start := time.Now()
	if err := WaitHealthy(ctx, l, o.Instance, o.Timeout); err != nil {
		return err
	}
	_, _ = fmt.Fprintf(o.Out, "%s is primary; every replica streams from it (%s)\n", o.Instance, time.Since(start).Round(time.Millisecond))
	return nil
}

// RequestSwitchover leaves a request the controller picks up on its next
// tick.
func RequestSwitchover(l Layout, to string) error {
	if os.Geteuid() == 0 {
		return errRoot
	}
	return instance.WriteFileAtomic(switchoverFile(l), []byte(to+"\n"), 0o600)
}

// WaitHealthy waits until primary (or, when empty, the planner's target) is
// the only working primary, at the planner's target, and every other
// instance streams from it.
func WaitHealthy(ctx context.Context, l Layout, primary string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last string
	for {
		cs, err := Observe(ctx, l)
		if err == nil {
			ok, why := healthy(cs, primary)
			if ok {
				return nil
			}
			last = why
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster not healthy after %s: %s", timeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// healthy reports whether cs shows primary serving and all replicas streaming.
func healthy(cs *ClusterStatus, primary string) (bool, string) {
	if primary == "" {
		primary = cs.TargetPrimary
	}
	if cs.TargetPrimary != primary || cs.CurrentPrimary != primary {
		return false, fmt.Sprintf("target %q, current %q, want %q", cs.TargetPrimary, cs.CurrentPrimary, primary)
	}
	for _, r := range cs.Instances {
		if r.Name == primary {
			continue
		}
		if r.Role != "replica" || r.State != "streaming" || r.LagBytes == nil {
			return false, fmt.Sprintf("%s is %s/%s", r.Name, r.Role, r.State)
		}
	}
	return true, ""
}
