//go:build e2e_kube

package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/bench"
	"github.com/pgward/pgward/internal/kube/build"
)

// TestLeaseFencing runs the asynchronous sample with a writer through -rw:
//
//  1. The operator is scaled to zero for longer than the old 30 s
//     self-fencing window: the primary renews its Lease itself, so the
//     writer sees no failed write and no gap of a second.
//  2. The primary's container is frozen (SIGSTOP of each of its processes,
//     from the node). The operator replaces it within the new bound, having
//     deleted its pod with grace period 0; a probe that writes straight to
//     the old primary's address never gets a write acknowledged after the
//     new primary's first one, even once the frozen processes are sent
//     SIGCONT. Under asynchronous replication nothing but fencing keeps a
//     woken old primary's writes out.
func TestLeaseFencing(t *testing.T) {
	ns := newNamespace(t, "e2e-lease")
	c := newCluster(t, ns, "cluster-example.yaml", nil)
	w := startWriter(t, ns, c)
	waitStreaming(t, ns, c.Name)

	// 1. No operator for 45 s (PGWARD_OPERATOR_AWAY).
	scale := func(n int) {
		mustKubectl(t, "-n", operatorNamespace, "scale", "deployment", "pgward-operator", "--replicas="+strconv.Itoa(n))
	}
	// Put back what the install asked for (2 replicas): tests after this
	// one, TestOperatorInstall among them, check the operator as installed.
	var dep appsv1.Deployment
	if err := cl.Get(context.Background(), client.ObjectKey{Namespace: operatorNamespace, Name: "pgward-operator"}, &dep); err != nil {
		t.Fatal(err)
	}
	replicas := 1
	if dep.Spec.Replicas != nil {
		replicas = int(*dep.Spec.Replicas)
	}
	scale(0)
	eventually(t, 2*time.Minute, "the operator's pods gone", func() error {
		var pods corev1.PodList
		if err := cl.List(context.Background(), &pods, client.InNamespace(operatorNamespace)); err != nil {
			return err
		}
		for _, p := range pods.Items {
			if strings.HasPrefix(p.Name, "pgward-operator") {
				return fmt.Errorf("%s still there", p.Name)
			}
		}
		return nil
	})
	// 45 s in CI; issue 12's figure is 5 minutes:
	// PGWARD_OPERATOR_AWAY=5m make e2e (or -run TestLeaseFencing).
	away := 45 * time.Second
	if v := os.Getenv("PGWARD_OPERATOR_AWAY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("PGWARD_OPERATOR_AWAY=%q: %v", v, err)
		}
		away = d
	}
	from := time.Now()
	time.Sleep(away)
	to := time.Now()
	scale(replicas)
	gap, errs := writeGaps(w.log(t), from, to)
	t.Logf("operator away %v: longest gap between acknowledged writes %v, %d failed writes", to.Sub(from).Round(time.Second), gap, errs)
	if errs > 0 || gap > time.Second {
		t.Errorf("writes stopped while the operator was away:\n%s", window(w.log(t), from, to))
	}
	eventually(t, 3*time.Minute, "the operator back", func() error {
		if _, err := kubectl("-n", operatorNamespace, "rollout", "status", "deployment/pgward-operator", "--timeout=5s"); err != nil {
			return err
		}
		var d appsv1.Deployment
		if err := cl.Get(context.Background(), client.ObjectKey{Namespace: operatorNamespace, Name: "pgward-operator"}, &d); err != nil {
			return err
		}
		if int(d.Status.ReadyReplicas) != replicas {
			return fmt.Errorf("%d of %d replicas ready", d.Status.ReadyReplicas, replicas)
		}
		return nil
	})

	// 2. Freeze the primary.
	outage := freezeFailover(t, w, c, 1)
	t.Logf("frozen primary: first acknowledged write on the new primary after %v", outage.Round(time.Millisecond))
	mustExec(t, w.ns, w.pod, "touch", "/tmp/stop")
}

// freezeFailover freezes the primary's container (SIGSTOP of each of its
// processes, from the node), waits for the first write a new primary
// acknowledges through -rw and returns the time from the freeze to it. It
// checks that the failover came within the bound, that the frozen
// processes were killed (the pod deletion), and that a probe writing
// straight to the old primary got nothing acknowledged after the new
// primary's first write, even once whatever survived is sent SIGCONT.
func freezeFailover(t testing.TB, w *writer, c *v1.Cluster, round int) time.Duration {
	t.Helper()
	ns := w.ns
	c = waitStreaming(t, ns, c.Name)
	old := c.Status.CurrentPrimary
	var oldPod corev1.Pod
	if err := cl.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: old}, &oldPod); err != nil {
		t.Fatal(err)
	}
	probe := startProbe(t, ns, c.Name, oldPod.Status.PodIP, round)
	t0 := time.Now()
	procs := freeze(t, &oldPod)
	// Whatever happens, nothing stays stopped after the round.
	defer func() {
		for _, p := range procs {
			_ = syscall.Kill(p.pid, syscall.SIGCONT)
		}
	}()
	var first time.Time
	eventually(t, 2*time.Minute, "a new primary taking writes", func() error {
		cur := getCluster(t, ns, c.Name)
		if cur.Status.CurrentPrimary == old || cur.Status.CurrentPrimary == "" {
			return fmt.Errorf("primary still %q", cur.Status.CurrentPrimary)
		}
		at, ok := firstAckAfter(w.log(t), t0, oldPod.Status.PodIP)
		if !ok {
			return fmt.Errorf("no write acknowledged since the freeze")
		}
		first = at
		return nil
	})
	outage := first.Sub(t0)
	// The bound (~5.1 s) from the later of the primary's last answer and
	// the operator's read that saw its last renewal (up to a check
	// interval, 2 s, after it), the step that decides (its status request
	// to the silent pod waits 500 ms at most), and the writer's
	// reconnection (its attempt in flight waits out libpq's 2 s connect
	// timeout); 35 s or more with the 30 s self-fencing of before.
	if outage > 20*time.Second {
		t.Errorf("failover of the frozen %s took %v, more than the bound allows", old, outage)
	}
	// The power fence: the kubelet kills the deleted pod's processes. Only
	// then (or after 30 s) are the survivors woken: with the fence off, the
	// frozen postgres would take the probe's pending insert.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && alive(procs) > 0 {
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("round %d: the frozen processes were gone %.3fs after the freeze (polled every 200 ms)", round, time.Since(t0).Seconds())
	// Where the time went: the operator's own log lines about this cluster
	// (kubelet timestamps, the node's clock, as t0), and the writer's.
	t.Logf("round %d timeline, from the freeze:\n%s", round, failoverTimeline(t, w, ns, t0, first))
	if n := alive(procs); n > 0 {
		t.Errorf("%d of the frozen primary's %d processes still exist 30 s after the failover: no fencing by power", n, len(procs))
	}
	for _, p := range procs {
		_ = syscall.Kill(p.pid, syscall.SIGCONT)
	}
	time.Sleep(5 * time.Second)
	log := probe.finish(t)
	acks := parseAcks(log)
	// Judged by server order (bench.SplitBrain): the old primary's writes
	// by their acknowledgement on the node's clock, the new primary's
	// first write by its server's own clock, never by when the writer,
	// maybe waiting for the CPU, saw it.
	newPrimary := getCluster(t, ns, c.Name).Status.CurrentPrimary
	divergent, overlapping := splitBrainOnPods(t, ns, newPrimary, append(serverAcks(t, w.log(t)), serverAcks(t, log)...))
	if overlapping > 0 {
		t.Errorf("round %d: %d writes acknowledged by the frozen primary at or after the new primary's first (server order); probe log:\n%s",
			round, overlapping, window(log, t0, time.Now()))
	}
	t.Logf("round %d: froze %s (%d processes); new primary's first write after %v; the probe to the old primary had %d rows acknowledged, the last %v before that; by server order %d divergent, %d overlapping",
		round, old, len(procs), outage.Round(time.Millisecond), len(acks), lastBefore(acks, first), divergent, overlapping)
	return outage
}

// freeze sends SIGSTOP to every process of pod's postgres container and
// returns them. Backends come and go (the writer and the probe connect for
// every row): one that exited between the listing and its signal is
// skipped, and the container is listed again until a pass finds no process
// left running, so that one forked just before its postmaster stopped is
// frozen too.
func freeze(t testing.TB, pod *corev1.Pod) []containerProc {
	t.Helper()
	stopped := map[int]containerProc{}
	for pass := 0; pass < 5; pass++ {
		fresh := 0
		for _, p := range containerProcs(t, pod, "postgres") {
			if _, ok := stopped[p.pid]; ok {
				continue
			}
			err := syscall.Kill(p.pid, syscall.SIGSTOP)
			if errors.Is(err, syscall.ESRCH) {
				continue
			}
			if err != nil {
				t.Fatalf("SIGSTOP %d: %v", p.pid, err)
			}
			stopped[p.pid] = p
			fresh++
		}
		if fresh == 0 {
			break
		}
	}
	procs := make([]containerProc, 0, len(stopped))
	for _, p := range stopped {
		procs = append(procs, p)
	}
	return procs
}

// failoverTimeline lists, as offsets from t0, the writer's last
// acknowledged write before t0, the operator's log lines of namespace ns
// after t0 that say what it decided and did (holds, power fence, Lease
// move, commands), the writer's first error after t0 and its first
// acknowledged write on the new primary (first).
func failoverTimeline(t testing.TB, w *writer, ns string, t0, first time.Time) string {
	t.Helper()
	type event struct {
		at   time.Time
		what string
	}
	var evs []event
	var lastAck time.Time
	for _, a := range parseAcks(w.log(t)) {
		if a.at.Before(t0) {
			lastAck = a.at
		}
	}
	if !lastAck.IsZero() {
		evs = append(evs, event{lastAck, "writer: last acknowledged write before the freeze"})
	}
	for _, line := range strings.Split(w.log(t), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "err" {
			continue
		}
		if ms, err := strconv.ParseInt(f[2], 10, 64); err == nil && time.UnixMilli(ms).After(t0) {
			evs = append(evs, event{time.UnixMilli(ms), "writer: first failed write after the freeze: " + strings.Join(f[3:], " ")})
			break
		}
	}
	evs = append(evs, event{first, "writer: first acknowledged write on the new primary"})
	out, err := kubectl("-n", operatorNamespace, "logs", "-l", "app.kubernetes.io/name=pgward-operator",
		"--timestamps", "--tail=-1", "--prefix=false")
	if err != nil {
		t.Logf("operator logs: %v", err)
	}
	for _, line := range strings.Split(out, "\n") {
		ts, rest, ok := strings.Cut(line, " ")
		if !ok || !strings.Contains(rest, `"`+ns+`"`) {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil || at.Before(t0.Add(-3*time.Second)) || at.After(first.Add(5*time.Second)) {
			continue
		}
		for _, key := range []string{"fenced by power", "primary lease moved", `"action"`, "planner", "failed", "hold"} {
			if strings.Contains(rest, key) {
				evs = append(evs, event{at, "operator: " + logMessage(rest)})
				break
			}
		}
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].at.Before(evs[j].at) })
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "  %+8.3fs  %s\n", e.at.Sub(t0).Seconds(), e.what)
	}
	return b.String()
}

// logMessage shortens one JSON log line of the operator to its message and
// the fields that say what happened.
func logMessage(line string) string {
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		return line
	}
	msg := fmt.Sprint(m["msg"])
	for _, k := range []string{"action", "event", "message", "pod", "from", "to", "reason", "error"} {
		if v, ok := m[k]; ok {
			msg += fmt.Sprintf(" %s=%v", k, v)
		}
	}
	return msg
}

// lastBefore is how long before t the last of acks was acknowledged.
func lastBefore(acks []ack, t time.Time) time.Duration {
	if len(acks) == 0 {
		return 0
	}
	return t.Sub(acks[len(acks)-1].at).Round(time.Millisecond)
}

// writeGaps returns the longest time between two acknowledged writes in
// [from, to] (including from the window's edges) and the failed writes.
func writeGaps(log string, from, to time.Time) (time.Duration, int) {
	last, gap, errs := from, time.Duration(0), 0
	for _, l := range writerLines(log, from, to) {
		at, f := l.at, l.fields
		switch f[0] {
		case "ack":
			gap, last = max(gap, at.Sub(last)), at
		case "err":
			errs++
		}
	}
	return max(gap, to.Sub(last)), errs
}

// alive counts the processes that still exist.
func alive(procs []containerProc) int {
	n := 0
	for _, p := range procs {
		if syscall.Kill(p.pid, 0) == nil {
			n++
		}
	}
	return n
}

// probeWriter writes straight to one instance's address (verifying its
// certificate for the -rw name it carries), logging like writer. It
// commits with synchronous_commit=local, which any client may set: under
// synchronous replication a cut-off or frozen primary could otherwise
// acknowledge nothing whatever pgward does, and only fencing is tested.
type probeWriter struct{ ns, pod string }

func startProbe(t testing.TB, ns, cluster, addr string, round int) *probeWriter {
	t.Helper()
	script := pgClientScript(cluster+"-app", fmt.Sprintf(`
export PGHOST=%s PGHOSTADDR=%s PGCONNECT_TIMEOUT=2 PGOPTIONS="-c synchronous_commit=local"
until psql -XAtq -c "create table if not exists e2e_probe(id bigint primary key)"; do sleep 0.2; done
i=%d
while [ ! -e /tmp/stop ]; do
  i=$((i+1))
  if ip=$(psql -XAtq -F ' ' -c "insert into e2e_probe values ($i) returning inet_server_addr(), %s" 2>/tmp/err); then
    echo "ack $i $(date +%%s%%3N) $ip"
  else
    echo "err $i $(date +%%s%%3N) $(head -c 160 /tmp/err | tr '\n' ' ')"
    sleep 0.05
  fi
done
echo stopped`, build.ServerName(getCluster(t, ns, cluster)), addr, round*1_000_000, bench.ServerAckEpochSQL))
	p := clientPod(ns, fmt.Sprintf("probe-%d", round), map[string]string{"e2e": "probe"}, script, cluster+"-app")
	if err := cl.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	pr := &probeWriter{ns: ns, pod: p.Name}
	eventually(t, 2*time.Minute, "the probe's first acknowledged row", func() error {
		out, err := kubectl("-n", ns, "logs", p.Name)
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		if len(parseAcks(out)) == 0 {
			return fmt.Errorf("no row acknowledged yet:\n%s", out)
		}
		return nil
	})
	return pr
}

// finish stops the probe and returns its log.
func (p *probeWriter) finish(t testing.TB) string {
	t.Helper()
	_, _ = podExec(context.Background(), p.ns, p.pod, "touch", "/tmp/stop")
	time.Sleep(3 * time.Second)
	out, err := kubectl("-n", p.ns, "logs", p.pod)
	if err != nil {
		t.Fatalf("probe log: %v\n%s", err, out)
	}
	return out
}
