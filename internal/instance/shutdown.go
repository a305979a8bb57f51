package instance

import (
	"fmt"
	"syscall"
	"time"

	v1 "github.com/pgward/pgward/api/v1"
)

// stopStep is one step of a shutdown: send Signal, then wait until Until
// after the shutdown began (zero: until PostgreSQL exits).
type stopStep struct {
	Mode   string
	Signal syscall.Signal
	Until  time.Duration
}

// shutdownPlan is how the manager stops PostgreSQL when it is itself told
// to stop (SIGTERM: `local down`, a pod deleted), within spec.stopDelay as
// CloudNativePG does: a smart shutdown (new sessions refused, open ones
// may finish) for smartShutdownTimeout, then a fast one (sessions rolled
// back, a checkpoint, the WAL sent to the replicas) until the last
// v1.ImmediateShutdownReserve of stopDelay, then an immediate one
// (SIGQUIT: crash recovery at the next start), SIGKILL one second before
// the end. On Kubernetes the kubelet kills the container at stopDelay
// (the pods' grace period); locally the controller waits as long.
func shutdownPlan(s *v1.ClusterSpec) []stopStep {
	stop, smart := s.StopDelay(), s.SmartShutdown()
	var steps []stopStep
	if smart > 0 {
		steps = append(steps, stopStep{Mode: "smart", Signal: syscall.SIGTERM, Until: smart})
	}
	return append(steps,
		stopStep{Mode: "fast", Signal: syscall.SIGINT, Until: max(stop-v1.ImmediateShutdownReserve, smart)},
		stopStep{Mode: "immediate", Signal: syscall.SIGQUIT, Until: max(stop-time.Second, smart)},
		stopStep{Mode: "forced", Signal: syscall.SIGKILL},
	)
}

// demotePlan is how a demoted primary stops with spec.switchoverDelay set,
// as CloudNativePG stops it in a switchover: a fast shutdown (its WAL sent
// to the replicas, which the switchover needs) for switchoverDelay, then
// an immediate one, which leaves no clean end of WAL, so the planner
// abandons the switchover rather than promote. Nil when left out: the
// manager's usual fast shutdown.
func demotePlan(s *v1.ClusterSpec) []stopStep {
	d := s.SwitchoverDelay()
	if d == 0 {
		return nil
	}
	return []stopStep{
		{Mode: "fast", Signal: syscall.SIGINT, Until: d},
		{Mode: "immediate", Signal: syscall.SIGQUIT, Until: d + 2*time.Second},
		{Mode: "forced", Signal: syscall.SIGKILL},
	}
}

// describePlan is the plan in one log line's words.
func describePlan(steps []stopStep) string {
	out := ""
	for i, st := range steps {
		if i > 0 {
			out += ", "
		}
		if st.Until > 0 {
			out += fmt.Sprintf("%s until %s", st.Mode, st.Until)
		} else {
			out += st.Mode
		}
	}
	return out
}

// stopPlanned runs steps on the postmaster from start, each step only if
// PostgreSQL still runs, and logs each one.
func (p *postmaster) stopPlanned(start time.Time, steps []stopStep, logf func(msg string, args ...any)) {
	for _, st := range steps {
		if !p.Running() {
			return
		}
		logf("requesting "+st.Mode+" shutdown", "signal", st.Signal.String(), "elapsed", time.Since(start).Round(time.Millisecond))
		_ = p.cmd.Process.Signal(st.Signal)
		if st.Until == 0 {
			<-p.done
			return
		}
		select {
		case <-p.done:
			return
		case <-time.After(time.Until(start.Add(st.Until))):
		}
	}
}

// shutdown stops PostgreSQL for good when the manager is told to stop: the
// last WAL archived, then shutdownPlan, all within spec.stopDelay from
// start.
func (m *Manager) shutdown(start time.Time) {
	m.archiveLast()
	m.mu.Lock()
	pm := m.pm
	m.mu.Unlock()
	if pm != nil {
		// Stopped with the postmaster still on record, so that the
		// status says "running" until it has exited: a fast shutdown's
		// walsenders first hand every connected standby the WAL up to the
		// shutdown checkpoint. Seen stopped earlier, a standby was
		// promoted before it had that checkpoint while another received
		// it, which then had to be rewound before the new primary's first
		// synchronous commit (5-8 s on real pods).
		steps := shutdownPlan(&m.cluster.Spec)
		m.log.Info("stopping postgres within spec.stopDelay", "stopDelay", m.cluster.Spec.StopDelay(), "plan", describePlan(steps))
		pm.stopPlanned(start, steps, m.log.Info)
		m.log.Info("postgres stopped", "after", time.Since(start).Round(time.Millisecond))
	}
	m.mu.Lock()
	pool := m.pool
	m.pm, m.pool, m.primary = nil, nil, false
	m.mu.Unlock()
	if pool != nil {
		pool.Close()
	}
	m.setPhase(PhaseStopped)
}
