//go:build e2e_kube

package kube

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/bench"
	"github.com/pgward/pgward/internal/kube/build"
)

// The network-cut fault (issue 12): the primary keeps running, but every
// packet into or out of its pod's network namespace is dropped, loopback
// excepted. Clients outside cannot reach it; a probe inside the namespace
// (on the node, through loopback) keeps writing to it. Unlike a frozen
// primary, its instance manager runs on: it must notice that it can renew
// the primary Lease no longer and fence itself before the operator
// promotes another instance (plan.FenceTiming).

const (
	// cutSelfFence is the self-fencing time the samples' pods run with
	// (kube.DefaultTiming's SelfFence, no spec.primaryLease).
	cutSelfFence = 3 * time.Second
	// cutFenceSlack covers what follows the self-fence timer: the manager
	// checks every 100 ms and stops PostgreSQL with SIGQUIT (SIGKILL after
	// 500 ms), plus a busy node's scheduling, plus the last renewal before
	// the cut (up to a second earlier than it) counted the other way: the
	// timer starts at the last renewal, so this is generous.
	cutFenceSlack = 1500 * time.Millisecond
	// cutOutageBound bounds the first write on the new primary in the
	// e2e test (issue 12's goal is a p50 of 8 s, judged by the benchmark):
	// the promotion at the bound (≈5.1 s) plus the deciding step, then the
	// first commit, which waits for the remaining synchronous standby to
	// stream from it (its WAL receiver's attempts through -rw meet the
	// cut-off address, each given up after walReceiverTCP, until kube-proxy has moved
	// the Service; before that bound it was rewound after 5 s of not
	// streaming in every measured round: 8.2-12.0 s in all,
	// docs/benchmarks.md), and room for a shared CI machine, as the frozen
	// mode's 20 s. What tells the old behaviour apart is the rewind, which
	// the test checks (notStreamedRewind), not this bound.
	cutOutageBound = 20 * time.Second
	// probeUID is who the in-namespace probe runs as: nobody.
	probeUID = 65534
)

// netCut is the cut of one pod's network namespace, entered through the
// /proc entry of one of its processes.
type netCut struct{ pid int }

// cutRules drop everything but loopback, both ways, IPv4 and IPv6.
var cutRules = [][]string{
	{"INPUT", "!", "-i", "lo", "-j", "DROP"},
	{"OUTPUT", "!", "-o", "lo", "-j", "DROP"},
}

// cutNetwork installs cutRules in pid's network namespace and returns the
// time right before (the fault's t0).
func cutNetwork(t testing.TB, pid int) (*netCut, time.Time) {
	t.Helper()
	var script strings.Builder
	for _, bin := range []string{"iptables", "ip6tables"} {
		for _, r := range cutRules {
			fmt.Fprintf(&script, "%s -w -I %s 1 %s && ", bin, r[0], strings.Join(r[1:], " "))
		}
	}
	script.WriteString("true")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t0 := time.Now()
	out, err := exec.CommandContext(ctx, "nsenter", "-t", strconv.Itoa(pid), "-n", "--", "sh", "-c", script.String()).CombinedOutput() // #nosec G204 -- fixed rules, a pid read from containerd
	if err != nil {
		t.Fatalf("cutting the network of pid %d: %v\n%s", pid, err, out)
	}
	return &netCut{pid: pid}, t0
}

// restore removes the rules if the namespace's process still exists (after
// the power fence it does not, and the namespace went with the pod).
func (c *netCut) restore(t testing.TB) {
	t.Helper()
	if syscall.Kill(c.pid, 0) != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, bin := range []string{"iptables", "ip6tables"} {
		for _, r := range cutRules {
			args := append([]string{"-t", strconv.Itoa(c.pid), "-n", "--", bin, "-w", "-D", r[0]}, r[1:]...)
			if out, err := exec.CommandContext(ctx, "nsenter", args...).CombinedOutput(); err != nil && syscall.Kill(c.pid, 0) == nil { // #nosec G204 -- as above
				t.Errorf("restoring the network of pid %d: %v\n%s", c.pid, err, out)
			}
		}
	}
}

// nsProbe writes to one instance from inside its network namespace: psql
// from the node, through loopback, as nobody, with the app user's
// password in a 0600 passfile (never on a command line) and the server's
// certificate verified for the -rw name. Each write is its own session
// with synchronous_commit=local, which any client may set: synchronous
// replication then does not hold its commit back, so only fencing can.
type nsProbe struct {
	cmd *exec.Cmd
	dir string
	out *os.File
}

func startNSProbe(t testing.TB, ns string, c *v1.Cluster, pid, round int) *nsProbe {
	t.Helper()
	var sec corev1.Secret
	if err := cl.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: c.Name + "-app"}, &sec); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"pgpass", "ca.crt", "username", "dbname"} {
		if len(sec.Data[k]) == 0 {
			t.Fatalf("secret %s-app has no %s", c.Name, k)
		}
	}
	dir, err := os.MkdirTemp("", "pgward-netcut-")
	if err != nil {
		t.Fatal(err)
	}
	// The pgpass line names <c>-rw; the probe reaches the server as
	// 127.0.0.1 under the same name (PGHOST), so the line matches as is
	// once its host is widened, as pgClientScript does.
	pgpass := string(sec.Data["pgpass"])
	if i := strings.IndexByte(pgpass, ':'); i >= 0 {
		pgpass = "*" + pgpass[i:]
	}
	files := map[string][]byte{"pgpass": []byte(pgpass), "ca.crt": sec.Data["ca.crt"]}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{dir, filepath.Join(dir, "pgpass"), filepath.Join(dir, "ca.crt")} {
		if err := os.Chown(p, probeUID, probeUID); err != nil {
			t.Fatal(err)
		}
	}
	out, err := os.Create(filepath.Join(dir, "log")) // #nosec G304 -- our own temporary directory
	if err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf(`psql=/usr/lib/postgresql/15/bin/psql
until $psql -XAtq -c "create table if not exists e2e_probe(id bigint primary key)" 2>"$D/err"; do
  [ -e "$D/stop" ] && exit 0
  sleep 0.2
done
i=$BASE
while [ ! -e "$D/stop" ]; do
  i=$((i+1))
  if out=$($psql -XAtq -F ' ' -c "insert into e2e_probe values ($i) returning %s" 2>"$D/err"); then
    echo "ack $i $(date +%%s%%3N) 127.0.0.1 $out"
  else
    echo "err $i $(date +%%s%%3N) $(head -c 160 "$D/err" | tr '\n' ' ')"
    sleep 0.05
  fi
done
echo stopped`, bench.ServerAckEpochSQL)
	// Not bound to a context: finish stops it, by the stop file first.
	cmd := exec.CommandContext(context.Background(), "nsenter", "-t", strconv.Itoa(pid), "-n", "--", // #nosec G204 -- a fixed script; the secret's values are in files and the environment
		"setpriv", "--reuid", strconv.Itoa(probeUID), "--regid", strconv.Itoa(probeUID), "--clear-groups",
		"--inh-caps=-all", "--no-new-privs", "--", "/bin/sh", "-c", script)
	cmd.Env = []string{
		"PATH=/usr/bin:/bin", "HOME=" + dir, "D=" + dir, "BASE=" + strconv.Itoa(round*1_000_000),
		"PGHOST=" + build.ServerName(c), "PGHOSTADDR=127.0.0.1", "PGPORT=" + strconv.Itoa(build.PostgresPort),
		"PGCONNECT_TIMEOUT=2", "PGSSLMODE=verify-full", "PGSSLROOTCERT=" + filepath.Join(dir, "ca.crt"),
		"PGPASSFILE=" + filepath.Join(dir, "pgpass"), "PGAPPNAME=pgward-netcut-probe",
		"PGUSER=" + strings.TrimSpace(string(sec.Data["username"])), "PGDATABASE=" + strings.TrimSpace(string(sec.Data["dbname"])),
		"PGOPTIONS=-c synchronous_commit=local",
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("probe in pid %d's network namespace: %v", pid, err)
	}
	p := &nsProbe{cmd: cmd, dir: dir, out: out}
	eventually(t, 2*time.Minute, "the in-namespace probe's first acknowledged row", func() error {
		if len(parseAcks(p.log(t))) == 0 {
			return fmt.Errorf("no row acknowledged yet:\n%s", p.log(t))
		}
		return nil
	})
	return p
}

func (p *nsProbe) log(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(p.dir, "log"))
	if err != nil {
		t.Fatalf("probe log: %v", err)
	}
	return string(b)
}

// finish stops the probe (its loop ends at the stop file; our own child
// is killed if it has not within 10 s) and returns its log.
func (p *nsProbe) finish(t testing.TB) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(p.dir, "stop"), nil, 0o600); err != nil {
		t.Error(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Logf("probe: %v", err)
		}
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Logf("probe killed after 10 s: %v", <-done)
	}
	log := p.log(t)
	_ = p.out.Close()
	_ = os.RemoveAll(p.dir)
	return log
}

// cutRound is what one network-cut failover measured, as offsets from the
// cut.
type cutRound struct {
	outage    time.Duration // the writer's first write on the new primary (through -rw)
	lastOld   time.Duration // the old primary's last write acknowledged to the probe
	refused   time.Duration // the probe's first failed write after that: the fence, as loopback saw it
	promoted  time.Duration // the operator's promote action (its log, the node's clock); 0 if not seen
	killed    time.Duration // every process of the old primary's container gone (the power fence)
	probeAcks int           // writes the old primary acknowledged to the probe after the cut
	late      int           // writes acknowledged at or after the new primary's first, by server order
	rewound   bool          // the planner rewound a replica that had not streamed (RejoinGrace) before that first write
}

// notStreamedRewind is what the planner logs when it rewinds a replica on
// an older timeline that has not streamed for RejoinGrace (rejoinDiverged).
// After a network cut that was every round until the WAL receiver's
// connection got a TCP bound (walReceiverTCP): the remaining standby's
// attempt through -rw hung on the cut-off address, and the new primary's
// first commit waited for the rewind. The replica has no WAL past the fork
// (the new primary is the most advanced), so it must follow by streaming.
const notStreamedRewind = "has not streamed for"

// networkCutFailover cuts the primary's network, waits for the first write
// a new primary acknowledges through -rw, and checks by server order that
// the old primary, still running and written to through its loopback,
// acknowledged nothing from then on, that it stopped acknowledging within
// the self-fencing time (its own timer, not the operator's kill), and that
// the power fence then killed it.
func networkCutFailover(t testing.TB, w *writer, c *v1.Cluster, round int) cutRound {
	t.Helper()
	ns := w.ns
	c = waitStreaming(t, ns, c.Name)
	old := c.Status.CurrentPrimary
	var oldPod corev1.Pod
	if err := cl.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: old}, &oldPod); err != nil {
		t.Fatal(err)
	}
	procs := containerProcs(t, &oldPod, "postgres")
	root := rootProc(t, procs)
	probe := startNSProbe(t, ns, c, root.pid, round)
	probeDone := false
	var t0 time.Time
	defer func() {
		if probeDone {
			return
		}
		// A round that stopped early: what the old primary told the
		// probe after the cut says whether it fenced itself.
		log := probe.finish(t)
		if t.Failed() && !t0.IsZero() {
			lines := strings.Split(window(log, t0, time.Now()), "\n")
			t.Logf("the probe after the cut (first %d lines):\n%s", min(len(lines), 150), strings.Join(lines[:min(len(lines), 150)], "\n"))
		}
	}()
	oldTLI := serverAcks(t, probe.log(t))[0].Timeline()

	var trace *replicaTrace
	if netcutTraceOn() {
		trace = startReplicaTrace(t, ns, c, old)
	}
	cut, t0 := cutNetwork(t, root.pid)
	defer cut.restore(t)
	var first time.Time
	eventually(t, 2*time.Minute, "a new primary taking writes", func() error {
		cur := getCluster(t, ns, c.Name)
		if cur.Status.CurrentPrimary == old || cur.Status.CurrentPrimary == "" {
			return fmt.Errorf("primary still %q", cur.Status.CurrentPrimary)
		}
		// The first write on a later timeline, by the writer's clock
		// for the figure; server order judges the overlap below.
		at, ok := firstOnLaterTimeline(w.log(t), t0, oldTLI)
		if !ok {
			return fmt.Errorf("no write acknowledged on a timeline after %d", oldTLI)
		}
		first = at
		return nil
	})
	r := cutRound{outage: first.Sub(t0)}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && alive(procs) > 0 {
		time.Sleep(100 * time.Millisecond)
	}
	r.killed = time.Since(t0)
	if n := alive(procs); n > 0 {
		t.Errorf("round %d: %d of the cut-off primary's %d processes still exist 30 s after the cut: no fencing by power", round, n, len(procs))
	}
	cut.restore(t)
	log := probe.finish(t)
	probeDone = true

	for _, a := range parseAcks(log) {
		if !a.at.Before(t0) {
			r.probeAcks++
			r.lastOld = a.at.Sub(t0)
		}
	}
	for _, line := range strings.Split(log, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "err" {
			continue
		}
		if ms, err := strconv.ParseInt(f[2], 10, 64); err == nil && time.UnixMilli(ms).Sub(t0) > r.lastOld {
			r.refused = time.UnixMilli(ms).Sub(t0)
			break
		}
	}
	if at, ok := operatorLogAt(t, ns, t0, `"action":"promote `); ok {
		r.promoted = at.Sub(t0)
	}
	if at, ok := operatorLogAt(t, ns, t0, notStreamedRewind); ok && at.Before(first) {
		r.rewound = true
	}

	newPrimary := getCluster(t, ns, c.Name).Status.CurrentPrimary
	if trace != nil {
		trace.finish(t, t0, newPrimary)
	}
	acks := append(serverAcks(t, w.log(t)), serverAcks(t, log)...)
	divergent, overlapping := splitBrainOnPods(t, ns, newPrimary, acks)
	r.late = overlapping
	t.Logf("round %d timeline, from the cut:\n%s", round, failoverTimeline(t, w, ns, t0, first))
	t.Logf("round %d: cut %s off; probe through its loopback: %d writes acknowledged after the cut, the last at +%.3fs, first refusal at +%.3fs; promote at +%.3fs; writer's first write on the new primary %s at +%.3fs; processes gone by +%.3fs; by server order %d divergent (the probe's synchronous_commit=local writes), %d acknowledged at or after the new primary's first write; remaining replica rewound first: %v",
		round, old, r.probeAcks, r.lastOld.Seconds(), r.refused.Seconds(), r.promoted.Seconds(), newPrimary, r.outage.Seconds(), r.killed.Seconds(), divergent, overlapping, r.rewound)
	if overlapping > 0 {
		t.Errorf("round %d: %d writes acknowledged while two primaries took writes (server order); probe log after the cut:\n%s", round, overlapping, window(log, t0, time.Now()))
	}
	// The old primary fenced itself: it stopped taking the probe's writes
	// within its self-fencing time, whatever the operator did.
	if r.lastOld > cutSelfFence+cutFenceSlack {
		t.Errorf("round %d: the cut-off primary acknowledged writes until +%.3fs, later than its self-fencing time (%v) allows:\n%s",
			round, r.lastOld.Seconds(), cutSelfFence, window(log, t0, time.Now()))
	}
	if r.refused == 0 {
		t.Errorf("round %d: the probe never saw the cut-off primary refuse a write:\n%s", round, window(log, t0, time.Now()))
	}
	return r
}

// firstOnLaterTimeline is when the writer saw acknowledged the first row
// it sent after t0 that its server wrote on a timeline after tli.
func firstOnLaterTimeline(log string, t0 time.Time, tli uint32) (time.Time, bool) {
	for _, line := range strings.Split(log, "\n") {
		f := strings.Fields(line)
		if len(f) < 7 || f[0] != "ack" {
			continue
		}
		ms, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil || time.UnixMilli(ms).Before(t0) {
			continue
		}
		if a, err := bench.ParseServerAck(f[4], f[5], f[6], time.Time{}); err == nil && a.Timeline() > tli {
			return time.UnixMilli(ms), true
		}
	}
	return time.Time{}, false
}

// operatorLogAt is when the operator first logged a line about namespace
// ns containing key at or after t0 (kubelet timestamps, the node's clock).
func operatorLogAt(t testing.TB, ns string, t0 time.Time, key string) (time.Time, bool) {
	t.Helper()
	out, err := kubectl("-n", operatorNamespace, "logs", "-l", "app.kubernetes.io/name=pgward-operator",
		"--timestamps", "--tail=-1", "--prefix=false")
	if err != nil {
		t.Logf("operator logs: %v", err)
		return time.Time{}, false
	}
	var first time.Time
	for _, line := range strings.Split(out, "\n") {
		ts, rest, ok := strings.Cut(line, " ")
		if !ok || !strings.Contains(rest, `"`+ns+`"`) || !strings.Contains(rest, key) {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err == nil && !at.Before(t0) && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	return first, !first.IsZero()
}

// TestFailoverNetworkCut: the synchronous sample with a writer through
// -rw; the primary's network namespace is cut (every packet dropped both
// ways but loopback's) while it keeps running and a probe writes to it
// through its loopback. The new primary takes its first write within
// cutOutageBound; the old one stopped acknowledging within its self-fencing
// time and acknowledged nothing at or after the new primary's first write
// (server order); no write acknowledged to the writer is lost.
func TestFailoverNetworkCut(t *testing.T) {
	ns := newNamespace(t, "e2e-netcut")
	c := newCluster(t, ns, "cluster-sync.yaml", netcutDebugLogs)
	w := startWriter(t, ns, c)
	r := networkCutFailover(t, w, c, 0)
	if r.outage > cutOutageBound {
		t.Errorf("first write on the new primary %.3fs after the cut; the bound is %v", r.outage.Seconds(), cutOutageBound)
	}
	if r.rewound {
		t.Errorf("the remaining replica was rewound for not streaming before the new primary's first write (%q in the operator's log): its WAL receiver did not reach the new primary", notStreamedRewind)
	}
	n := w.stop(t)
	t.Logf("network cut: first write on the new primary after %v; %d acknowledged writes, none lost", r.outage.Round(time.Millisecond), n)
}

// BenchmarkFailoverNetworkCut: issue 12's network-cut figure, 20 rounds of
// networkCutFailover on the synchronous sample.
func BenchmarkFailoverNetworkCut(b *testing.B) {
	ns := newNamespace(b, "bench-netcut")
	c := newCluster(b, ns, "cluster-sync.yaml", netcutDebugLogs)
	w := startWriter(b, ns, c)
	var rs []cutRound
	for i := range rounds(20) {
		rs = append(rs, networkCutFailover(b, w, c, i))
	}
	n := w.stop(b)
	pick := func(f func(cutRound) time.Duration) []time.Duration {
		var ds []time.Duration
		for _, r := range rs {
			ds = append(ds, f(r))
		}
		return ds
	}
	outage := pick(func(r cutRound) time.Duration { return r.outage })
	report(b, "network cut of the primary -> first acknowledged write on the new primary", outage)
	s := slices.Clone(outage)
	slices.Sort(s)
	b.ReportMetric(s[(len(s)*95+99)/100-1].Seconds(), "p95-s")
	late, probe, rewound := 0, 0, 0
	for _, r := range rs {
		late += r.late
		probe += r.probeAcks
		if r.rewound {
			rewound++
		}
	}
	b.ReportMetric(float64(late), "late-writes")
	b.ReportMetric(float64(rewound), "rewound-rounds")
	var sum bytes.Buffer
	for _, part := range []struct {
		what string
		f    func(cutRound) time.Duration
	}{
		{"old primary's last acknowledged write (self-fence)", func(r cutRound) time.Duration { return r.lastOld }},
		{"probe's first refusal", func(r cutRound) time.Duration { return r.refused }},
		{"operator's promote", func(r cutRound) time.Duration { return r.promoted }},
		{"first write on the new primary", func(r cutRound) time.Duration { return r.outage }},
		{"old primary's processes gone", func(r cutRound) time.Duration { return r.killed }},
	} {
		d := pick(part.f)
		slices.Sort(d)
		fmt.Fprintf(&sum, "  %-52s p50 +%.2fs, min +%.2fs, max +%.2fs\n", part.what, d[len(d)/2].Seconds(), d[0].Seconds(), d[len(d)-1].Seconds())
	}
	b.Logf("network cut, %d rounds, from the cut:\n%s%d writes acknowledged to the writer, none lost; the probe had %d writes acknowledged by cut-off primaries, %d of them at or after the new primary's first (server order); %d rounds rewound the remaining replica before the first write",
		len(rs), sum.String(), n, probe, late, rewound)
}
