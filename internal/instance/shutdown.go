package instance

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
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

// ArchiverShutdownGrace is how long a shutdown still waits for
// PostgreSQL's archiver once everything else is done (the shutdown
// checkpoint written, the standbys handed the WAL up to it), when the
// object store took the last segment before the shutdown: its last cycle
// then pushes in well under a second what became ready since. When the
// store did not take it, the archiver's retries only hold the stop (three
// tries of up to pgBackRest's archive-timeout per cycle, two cycles: the
// whole 180 s stopDelay on real pods), so it gets no grace at all.
const ArchiverShutdownGrace = 10 * time.Second

// stopProgress is what the manager sees of a postmaster in a shutdown.
type stopProgress struct {
	// Clean: pg_control says the data directory is shut down, so the
	// shutdown checkpoint is written and flushed: the next start needs no
	// recovery, whatever stops the remaining processes.
	Clean bool
	// Children are the kinds (process titles' first word: "archiver",
	// "walsender", "checkpointer"...) of the postmaster's processes still
	// running; read only once Clean.
	Children []string
}

// cutArchiver says whether a fast shutdown may end at once with an
// immediate one: the checkpoint is written, and the archiver, past its
// grace since then, is the only process left. A walsender left is still
// handing a standby the WAL up to the shutdown checkpoint (which spares
// the standbys a rewind after a failover): it is waited for, within the
// plan. What the archiver has not pushed loses nothing: the segments keep
// their .ready marks in pg_wal, on the data volume, and PostgreSQL pushes
// them when the instance next runs as a primary.
func cutArchiver(p stopProgress, cleanFor, grace time.Duration) bool {
	return p.Clean && len(p.Children) == 1 && p.Children[0] == "archiver" && cleanFor >= grace
}

// stopWatch lets stopPlanned end a fast shutdown that only waits for the
// archiver (cutArchiver).
type stopWatch struct {
	probe func() stopProgress
	grace time.Duration
	// every is how often probe runs.
	every time.Duration
}

// stopPlanned runs steps on the postmaster from start, each step only if
// PostgreSQL still runs, and logs each one. With w, a step before the
// immediate one ends early when only the archiver holds the stop: the
// immediate step follows at once.
func (p *postmaster) stopPlanned(start time.Time, steps []stopStep, logf func(msg string, args ...any), w *stopWatch) {
	for i := 0; i < len(steps); i++ {
		st := steps[i]
		if !p.Running() {
			return
		}
		logf("requesting "+st.Mode+" shutdown", "signal", st.Signal.String(), "elapsed", time.Since(start).Round(time.Millisecond))
		_ = p.cmd.Process.Signal(st.Signal)
		if st.Until == 0 {
			<-p.done
			return
		}
		deadline := start.Add(st.Until)
		if w == nil || st.Signal == syscall.SIGQUIT || st.Signal == syscall.SIGKILL {
			select {
			case <-p.done:
				return
			case <-time.After(time.Until(deadline)):
			}
			continue
		}
		if !p.waitOrCut(deadline, w, logf) {
			continue
		}
		// The immediate step, now.
		for j := i + 1; j < len(steps); j++ {
			if steps[j].Signal == syscall.SIGQUIT {
				i = j - 1
				break
			}
		}
	}
}

// waitOrCut waits until the postmaster exits or deadline, probing it every
// w.every; true when cutArchiver says to stop waiting.
func (p *postmaster) waitOrCut(deadline time.Time, w *stopWatch, logf func(msg string, args ...any)) bool {
	var cleanSince time.Time
	tick := time.NewTicker(w.every)
	defer tick.Stop()
	end := time.NewTimer(time.Until(deadline))
	defer end.Stop()
	for {
		select {
		case <-p.done:
			return false
		case <-end.C:
			return false
		case <-tick.C:
		}
		pr := w.probe()
		if !pr.Clean {
			continue
		}
		if cleanSince.IsZero() {
			cleanSince = time.Now()
			logf("shutdown checkpoint written; waiting for", "processes", pr.Children)
		}
		if cutArchiver(pr, time.Since(cleanSince), w.grace) {
			logf("only the archiver holds the stop: its segments stay in pg_wal, pushed at the next start as a primary",
				"grace", w.grace, "waited", time.Since(cleanSince).Round(time.Millisecond))
			return true
		}
	}
}

// shutdown stops PostgreSQL for good when the manager is told to stop: the
// last WAL archived, then shutdownPlan, all within spec.stopDelay from
// start.
func (m *Manager) shutdown(start time.Time) {
	archived := m.archiveLast()
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
		w := &stopWatch{probe: m.stopProbe(pm), every: 200 * time.Millisecond}
		if archived {
			w.grace = ArchiverShutdownGrace
		}
		m.log.Info("stopping postgres within spec.stopDelay", "stopDelay", m.cluster.Spec.StopDelay(), "plan", describePlan(steps), "archiverGrace", w.grace)
		pm.stopPlanned(start, steps, m.log.Info, w)
		m.log.Info("postgres stopped", "after", time.Since(start).Round(time.Millisecond), "walReadyToArchive", readySegments(m.cfg.DataDir))
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

// stopProbe reads a stopping postmaster's progress: pg_control's state
// (pg_controldata), and its processes from /proc.
func (m *Manager) stopProbe(pm *postmaster) func() stopProgress {
	return func() stopProgress {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		state, err := controlState(ctx, m.cfg.PGBinDir, m.cfg.DataDir)
		if err != nil || (state != "shut down" && state != "shut down in recovery") {
			return stopProgress{}
		}
		kids, err := postgresChildren("/proc", pm.Pid())
		if err != nil {
			// Unknown children are never cut short.
			return stopProgress{Clean: true, Children: []string{"unknown"}}
		}
		return stopProgress{Clean: true, Children: kids}
	}
}

// postgresChildren lists the kinds of the processes whose parent is ppid,
// from their process titles under proc (/proc).
func postgresChildren(proc string, ppid int) ([]string, error) {
	ents, err := os.ReadDir(proc)
	if err != nil {
		return nil, err
	}
	var kinds []string
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(proc, e.Name(), "stat")) // #nosec G304 -- a /proc entry
		if err != nil {
			continue // gone meanwhile
		}
		if parent, ok := statParent(string(stat)); !ok || parent != ppid {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "cmdline")) // #nosec G304 -- a /proc entry
		if err != nil {
			continue
		}
		kinds = append(kinds, processKind(string(cmdline)))
	}
	sort.Strings(kinds)
	return kinds, nil
}

// statParent is the parent pid in a /proc/PID/stat line: the fourth
// field, counted after the command name, which is in parentheses and may
// hold spaces and parentheses itself.
func statParent(stat string) (int, bool) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	return ppid, err == nil
}

// processKind is the kind of a PostgreSQL child from its process title,
// "postgres: <cluster_name>: <kind> ..." (cluster_name is pgward's
// instance name, a DNS label: it holds no ": "), or "other".
func processKind(cmdline string) string {
	title := strings.TrimRight(strings.ReplaceAll(cmdline, "\x00", " "), " ")
	rest, ok := strings.CutPrefix(title, "postgres: ")
	if !ok {
		return "other"
	}
	if name, after, ok := strings.Cut(rest, ": "); ok && !strings.Contains(name, " ") {
		rest = after
	}
	if f := strings.Fields(rest); len(f) > 0 {
		return f[0]
	}
	return "other"
}

// controlState is pg_control's "Database cluster state".
func controlState(ctx context.Context, binDir, dataDir string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "pg_controldata"), dataDir)
	cmd.Env = pgEnv()
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("pg_controldata: %w", err)
	}
	return parseControlState(string(out))
}

// parseControlState reads the cluster state from pg_controldata's output.
func parseControlState(out string) (string, error) {
	// Read while PostgreSQL rewrites it, pg_control may be torn:
	// pg_controldata then warns of a CRC mismatch, and nothing it printed
	// counts.
	if strings.Contains(out, "CRC checksum does not match") {
		return "", errors.New("pg_controldata: pg_control read while being written (CRC mismatch)")
	}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "Database cluster state" {
			return strings.TrimSpace(v), nil
		}
	}
	return "", errors.New("pg_controldata printed no cluster state")
}

// readySegments counts the WAL files waiting for the archiver (.ready in
// pg_wal/archive_status).
func readySegments(dataDir string) int {
	m, _ := filepath.Glob(filepath.Join(dataDir, "pg_wal", "archive_status", "*.ready"))
	return len(m)
}
