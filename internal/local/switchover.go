package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/pgward/pgward/internal/instance"
	"github.com/pgward/pgward/internal/plan"
)

// A switchover request travels through two files in the state directory:
// switchover.request ({id, to}), which the controller removes only once the
// request is in its persisted memory, so that a controller crash loses
// nothing; and switchover.result, the outcome of the last request, which
// `pgward local promote` waits for.

func switchoverFile(l Layout) string       { return filepath.Join(l.Dir, "switchover.request") }
func switchoverResultFile(l Layout) string { return filepath.Join(l.Dir, "switchover.result") }

// switchoverRequest is the content of switchover.request.
type switchoverRequest struct {
	ID string `json:"id"`
	To string `json:"to"`
}

// switchoverResult is the content of switchover.result.
type switchoverResult struct {
	ID     string                `json:"id"`
	To     string                `json:"to"`
	Result plan.SwitchoverResult `json:"result"`
	Reason string                `json:"reason,omitempty"`
	At     time.Time             `json:"at"`
}

func readJSON(path string, v any) bool {
	b, err := os.ReadFile(path) // #nosec G304 -- inside the state dir
	return err == nil && json.Unmarshal(b, v) == nil
}

// takeSwitchoverRequest puts a pending request into the planner's memory,
// unless it is already there or already has an outcome. A request cannot
// replace one whose shutdown is under way; it waits for it. It returns the
// request (nil if none), which the caller removes once the memory holding
// it is saved (the next step saves it, as any change of the switchover).
func (h *haLoop) takeSwitchoverRequest() *switchoverRequest {
	var req switchoverRequest
	if !readJSON(switchoverFile(h.layout), &req) || req.ID == "" {
		return nil
	}
	var res switchoverResult
	if readJSON(switchoverResultFile(h.layout), &res) && res.ID == req.ID {
		return &req // handled before a crash: only the file is left
	}
	mem := h.mem.Latest()
	sw := &mem.Switchover
	switch {
	case sw.ID == req.ID:
		return &req
	case sw.From != "":
		return nil
	default:
		if sw.ID != "" {
			_ = writeSwitchoverResult(h.layout, &plan.SwitchoverOutcome{ID: sw.ID, To: sw.To,
				Result: plan.SwitchoverSuperseded, Reason: "a newer switchover request (to " + req.To + ") replaced it"})
		}
		h.log.Info("switchover requested", "id", req.ID, "to", req.To)
		*sw = plan.Switchover{ID: req.ID, To: req.To}
		h.mem.Set(mem)
		return &req
	}
}

func writeSwitchoverResult(l Layout, o *plan.SwitchoverOutcome) error {
	b, err := json.Marshal(switchoverResult{ID: o.ID, To: o.To, Result: o.Result, Reason: o.Reason, At: time.Now()})
	if err != nil {
		return err
	}
	return instance.WriteFileAtomic(switchoverResultFile(l), b, 0o600)
}

// PromoteOptions configure `pgward local promote`.
type PromoteOptions struct {
	Dir      string
	Instance string
	Timeout  time.Duration
	Out      io.Writer
}

// Promote asks the controller for a switchover to o.Instance (clean
// shutdown of the primary, the target catches up, is promoted, the others
// follow) and waits for its outcome: an error as soon as the controller
// refuses or aborts it, or a failover supersedes it; success once the
// target is the working primary and every other instance streams from it.
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
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Minute
	}
	id, err := RequestSwitchover(l, o.Instance)
	if err != nil {
		return err
	}
	_, _ = fmt.Fprintf(o.Out, "switchover to %s requested\n", o.Instance)
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	for {
		var res switchoverResult
		if readJSON(switchoverResultFile(l), &res) && res.ID == id {
			switch res.Result {
			case plan.SwitchoverDone:
				_, _ = fmt.Fprintf(o.Out, "%s already is the primary\n", o.Instance)
				return nil
			case plan.SwitchoverPromoting:
				if err := WaitHealthy(ctx, l, o.Instance, time.Until(start.Add(o.Timeout))); err != nil {
					return err
				}
				_, _ = fmt.Fprintf(o.Out, "%s is primary; every replica streams from it (%s)\n", o.Instance, time.Since(start).Round(time.Millisecond))
				return nil
			default:
				return fmt.Errorf("switchover to %s %s: %s", o.Instance, res.Result, res.Reason)
			}
		}
		select {
		case <-ctx.Done():
			pending := "the controller has not taken the request yet (is it running?)"
			if _, err := os.Stat(switchoverFile(l)); errors.Is(err, fs.ErrNotExist) {
				pending = "it is still in progress: waiting for " + o.Instance + " to be a streaming replica and catch up"
			}
			return fmt.Errorf("switchover to %s: no outcome after %s; %s", o.Instance, o.Timeout, pending)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// RequestSwitchover leaves a request the controller picks up on its next
// tick, and returns its ID.
func RequestSwitchover(l Layout, to string) (string, error) {
	if os.Geteuid() == 0 {
		return "", errRoot
	}
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	id := strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + hex.EncodeToString(r[:])
	b, err := json.Marshal(switchoverRequest{ID: id, To: to})
	if err != nil {
		return "", err
	}
	return id, instance.WriteFileAtomic(switchoverFile(l), b, 0o600)
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
