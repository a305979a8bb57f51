//go:build e2e_kube

package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/bench"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/kube/build"
	"github.com/pgward/pgward/internal/plan"
)

// writer is a client pod that inserts numbered rows through the cluster's
// read-write Service, one connection per row (so it follows the Service
// to a new primary), and logs each acknowledged row with the time it was
// acknowledged and the address of the server that took it, then what the
// server said of the write (bench.ServerAckEpochSQL: WAL file, insert LSN,
// its clock) and when the attempt started:
// "ack <id> <unix ms> <server IP> <walfile> <lsn> <epoch> <unix ms it started>",
// or "err <id> <unix ms> from=<unix ms it started> <message>".
type writer struct {
	ns, pod string
	c       *v1.Cluster
}

func startWriter(t testing.TB, ns string, c *v1.Cluster) *writer {
	t.Helper()
	script := pgClientScript(c.Name+"-app", fmt.Sprintf(`
export PGHOST=%s PGCONNECT_TIMEOUT=2
# An application's dead-peer detection: without it a write sent just
# before the primary's network is cut waits for an answer for ~15 minutes
# of TCP retransmissions (libpq has no environment variable for these).
live='tcp_user_timeout=2000 keepalives_idle=1 keepalives_interval=1 keepalives_count=2'
until psql -XAtq -c "create table if not exists e2e_writes(id bigint primary key)"; do sleep 0.2; done
echo started
i=0
while [ ! -e /tmp/stop ]; do
  i=$((i+1))
  s=$(date +%%s%%3N)
  if ip=$(psql -XAtq -F ' ' -d "$live" -c "insert into e2e_writes values ($i) returning inet_server_addr(), %s" 2>/tmp/err); then
    echo "ack $i $(date +%%s%%3N) $ip $s"
  else
    echo "err $i $(date +%%s%%3N) from=$s $(head -c 160 /tmp/err | tr '\n' ' ')"
    sleep 0.05
  fi
done
echo stopped`, build.ClientHost(c), bench.ServerAckEpochSQL))
	p := clientPod(ns, "writer", map[string]string{"e2e": "writer"}, script, c.Name+"-app")
	if err := cl.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	w := &writer{ns: ns, pod: p.Name, c: c}
	eventually(t, 2*time.Minute, "the writer's first acknowledged row", func() error {
		out, err := kubectl("-n", w.ns, "logs", w.pod)
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		if len(parseAcks(out)) == 0 {
			return fmt.Errorf("no row acknowledged yet:\n%s", out)
		}
		return nil
	})
	return w
}

type ack struct {
	id     int64
	at     time.Time
	server string
}

// log returns the writer's output so far.
func (w *writer) log(t testing.TB) string {
	t.Helper()
	out, err := kubectl("-n", w.ns, "logs", w.pod)
	if err != nil {
		t.Fatalf("writer log: %v\n%s", err, out)
	}
	return out
}

func (w *writer) acks(t testing.TB) []ack {
	return parseAcks(w.log(t))
}

func parseAcks(log string) []ack {
	var out []ack
	for _, line := range strings.Split(log, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || f[0] != "ack" {
			continue
		}
		id, err1 := strconv.ParseInt(f[1], 10, 64)
		ms, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 == nil && err2 == nil {
			out = append(out, ack{id: id, at: time.UnixMilli(ms), server: f[3]})
		}
	}
	return out
}

// firstAckAfter is when the first row sent after t0 was acknowledged by a
// server other than the old primary: with the old primary gone at t0, the
// first write the new primary took.
func firstAckAfter(log string, t0 time.Time, oldServer string) (time.Time, bool) {
	for _, a := range parseAcks(log) {
		if !a.at.Before(t0) && a.server != oldServer {
			return a.at, true
		}
	}
	return time.Time{}, false
}

// stop ends the writer and checks that every row it saw acknowledged is in
// the table, read on the current primary; it returns how many there were.
func (w *writer) stop(t testing.TB) int {
	t.Helper()
	mustExec(t, w.ns, w.pod, "touch", "/tmp/stop")
	eventually(t, time.Minute, "the writer to stop", func() error {
		var p corev1.Pod
		if err := cl.Get(context.Background(), client.ObjectKey{Namespace: w.ns, Name: w.pod}, &p); err != nil {
			return err
		}
		if p.Status.Phase != corev1.PodSucceeded {
			return fmt.Errorf("writer %s", p.Status.Phase)
		}
		return nil
	})
	acked := w.acks(t)
	c := waitHealthy(t, w.ns, w.c.Name, 3*time.Minute)
	rows := psqlLocal(t, w.ns, c.Status.CurrentPrimary, "app", "select coalesce(string_agg(id::text, ' ' order by id), '') from e2e_writes")
	have := map[int64]bool{}
	for _, f := range strings.Fields(rows) {
		id, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			t.Fatalf("row %q", f)
		}
		have[id] = true
	}
	var lost []int64
	for _, a := range acked {
		if !have[a.id] {
			lost = append(lost, a.id)
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d acknowledged writes lost (of %d): %v", len(lost), len(acked), lost)
	}
	_ = cl.Delete(context.Background(), &corev1.Pod{ObjectMeta: objectMeta(w.ns, w.pod)})
	return len(acked)
}

// failover kills the primary one way, waits for another instance to be
// primary and every instance ready again, and returns the time from the
// kill to the first write the new primary acknowledged through -rw.
func failover(t testing.TB, w *writer, how string) time.Duration {
	t.Helper()
	// Each round starts from a whole cluster: every replica streams, so a
	// synchronous standby is there to promote.
	c := waitStreaming(t, w.ns, w.c.Name)
	old := c.Status.CurrentPrimary
	var oldPod corev1.Pod
	if err := cl.Get(context.Background(), client.ObjectKey{Namespace: w.ns, Name: old}, &oldPod); err != nil {
		t.Fatal(err)
	}
	// Where the time goes: the Service's endpoints and the pods as the API
	// server announces them, printed with the writer's attempts and the
	// operator's log after the round (-v).
	var trace *roundTrace
	if testing.Verbose() {
		trace = traceRound(t, w.ns, clusterName{c.Name, build.RWServiceName(c)})
	}
	var t0 time.Time
	switch how {
	case "kill":
		// The kill's own clock reading, taken in the pod right before it.
		out := mustExec(t, w.ns, old, "sh", "-c", "date +%s%3N; kill -9 $(head -1 /var/lib/postgresql/data/pgdata/postmaster.pid)")
		ms, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
		if err != nil {
			t.Fatalf("kill: %q", out)
		}
		t0 = time.UnixMilli(ms)
	case "delete":
		t0 = time.Now()
		mustKubectl(t, "-n", w.ns, "delete", "pod", old, "--wait=false")
	default:
		t.Fatalf("failover %q", how)
	}
	var outage time.Duration
	var first time.Time
	eventually(t, 2*time.Minute, "a new primary taking writes", func() error {
		cur := getCluster(t, w.ns, w.c.Name)
		if cur.Status.CurrentPrimary == old || cur.Status.CurrentPrimary == "" {
			return fmt.Errorf("primary still %q", cur.Status.CurrentPrimary)
		}
		at, ok := firstAckAfter(w.log(t), t0, oldPod.Status.PodIP)
		if !ok {
			return fmt.Errorf("no write acknowledged since the %s", how)
		}
		outage, first = at.Sub(t0), at
		return nil
	})
	if trace != nil {
		t.Logf("%s of %s: first write on the new primary after %v; timeline:\n%s", how, old, outage.Round(time.Millisecond),
			roundTimeline(t, w, w.ns, t0, first, trace.stop()))
	}
	c = waitHealthy(t, w.ns, w.c.Name, 3*time.Minute)
	if !slices.Contains(c.Status.InstanceNames, old) {
		t.Errorf("%s did not come back: %v", old, c.Status.InstanceNames)
	}
	return outage
}

// TestFailover runs the synchronous sample with a writer through -rw,
// kills the primary's postgres, then deletes the primary's pod: each time
// another instance becomes primary, -rw follows it, the old primary rejoins
// as a replica, and no acknowledged write is lost.
func TestFailover(t *testing.T) {
	ns := newNamespace(t, "e2e-failover")
	c := newCluster(t, ns, "cluster-sync.yaml", nil)
	w := startWriter(t, ns, c)
	for _, how := range []string{"kill", "delete"} {
		d := failover(t, w, how)
		t.Logf("%s of the primary: first acknowledged write on the new primary after %v", how, d.Round(time.Millisecond))
	}
	// The old primaries rejoined and stream from the new one.
	cur := waitStreaming(t, ns, c.Name)
	// A switchover as `pgward promote` asks for it (the annotation), to a
	// replica; the writer goes on through -rw.
	to := ""
	for _, name := range cur.Status.InstanceNames {
		if name != cur.Status.CurrentPrimary {
			to = name
			break
		}
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := kube.RequestSwitchover(ctx, cl, client.ObjectKey{Namespace: ns, Name: c.Name}, to, 2*time.Minute); err != nil {
		t.Fatalf("switchover to %s: %v", to, err)
	}
	t.Logf("switchover %s -> %s in %v", cur.Status.CurrentPrimary, to, time.Since(start).Round(time.Millisecond))
	waitStreaming(t, ns, c.Name)
	n := w.stop(t)
	t.Logf("%d acknowledged writes, none lost", n)
}

// window is the part of a writer log between two times.
func window(log string, from, to time.Time) string {
	var b strings.Builder
	for _, line := range strings.Split(log, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		ms, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil || ms < from.UnixMilli() || ms > to.UnixMilli() {
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// waitStreaming waits until the Cluster is healthy and every replica
// streams from the primary over TLS as streaming_replica (as the primary's
// pg_stat_replication sees it), and returns the Cluster.
func waitStreaming(t testing.TB, ns, name string) *v1.Cluster {
	t.Helper()
	var c *v1.Cluster
	eventually(t, 3*time.Minute, "every replica streaming", func() error {
		c = getCluster(t, ns, name)
		if err := healthy(c); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := podExec(ctx, ns, c.Status.CurrentPrimary, "psql", "-h", "/run/postgresql", "-U", "postgres", "-XAtc",
			"select count(*) from pg_stat_replication join pg_stat_ssl using (pid) where state = 'streaming' and ssl and client_dn = '/CN=streaming_replica'")
		if err != nil {
			return err
		}
		if got := strings.TrimSpace(out); got != strconv.Itoa(c.Spec.Instances-1) {
			return fmt.Errorf("%s of %d replicas streaming from %s", got, c.Spec.Instances-1, c.Status.CurrentPrimary)
		}
		// And the planner has settled: one synchronous_standby_names value
		// (no older one whose standbys it must still account for) and no
		// replica left on an old timeline. Until then it may rightly
		// prefer restarting a crashed primary to promoting.
		var mem plan.Memory
		if c.Status.PlannerMemory == nil || json.Unmarshal(c.Status.PlannerMemory.Raw, &mem) != nil {
			return fmt.Errorf("no planner memory in the status")
		}
		if len(mem.SyncStandbys) > 1 || len(mem.Diverged) > 0 {
			return fmt.Errorf("planner not settled: %d synchronous_standby_names values, %d diverged replicas", len(mem.SyncStandbys), len(mem.Diverged))
		}
		return nil
	})
	return c
}

// writerLine is one "ack" or "err" line of the writer's log, by the time
// it records; fields are all of the line's fields.
type writerLine struct {
	at     time.Time
	fields []string
}

// writerLines returns the writer's lines timed within [from, to].
func writerLines(log string, from, to time.Time) []writerLine {
	var out []writerLine
	for _, line := range strings.Split(log, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || (f[0] != "ack" && f[0] != "err") {
			continue
		}
		ms, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			continue
		}
		if at := time.UnixMilli(ms); !at.Before(from) && !at.After(to) {
			out = append(out, writerLine{at: at, fields: f})
		}
	}
	return out
}
