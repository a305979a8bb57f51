//go:build e2e_kube

package kube

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
)

// PGWARD_NETCUT_TRACE=1 makes the network-cut test record, once a second
// from the cut, what each other instance's WAL receiver does: its TCP
// sockets towards PostgreSQL's port (ss, in the pod's network namespace)
// and what PostgreSQL reports (pg_stat_wal_receiver, received and replayed
// positions, timeline); after the round, the instances' own logs since the
// cut and the new primary's timeline history. It costs a psql and an ss
// per instance per second, so it is off by default (and in CI). With it
// the cluster runs with log_min_messages=debug1 (the WAL receiver's and
// startup process's messages).
func netcutTraceOn() bool { return os.Getenv("PGWARD_NETCUT_TRACE") == "1" }

// netcutDebugLogs is the cluster edit for a traced run.
func netcutDebugLogs(c *v1.Cluster) {
	if !netcutTraceOn() {
		return
	}
	if c.Spec.PostgresConfiguration.Parameters == nil {
		c.Spec.PostgresConfiguration.Parameters = map[string]string{}
	}
	c.Spec.PostgresConfiguration.Parameters["log_min_messages"] = "debug1"
}

// replicaTrace samples the instances other than the cut-off primary.
type replicaTrace struct {
	ns    string
	pods  []string
	pids  map[string]containerProc
	stop  chan struct{}
	done  sync.WaitGroup
	mu    sync.Mutex
	lines []string
}

func startReplicaTrace(t testing.TB, ns string, c *v1.Cluster, old string) *replicaTrace {
	t.Helper()
	r := &replicaTrace{ns: ns, pids: map[string]containerProc{}, stop: make(chan struct{})}
	for _, n := range c.Status.InstanceNames {
		if n == old {
			continue
		}
		var pod corev1.Pod
		if err := cl.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: n}, &pod); err != nil {
			t.Fatal(err)
		}
		r.pods = append(r.pods, n)
		r.pids[n] = rootProc(t, containerProcs(t, &pod, "postgres"))
	}
	r.done.Add(1)
	go func() {
		defer r.done.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			var wg sync.WaitGroup
			for _, n := range r.pods {
				wg.Add(1)
				go func() { defer wg.Done(); r.sample(n) }()
			}
			wg.Wait()
			select {
			case <-r.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return r
}

const replicaTraceSQL = `select pg_is_in_recovery(), coalesce(pg_last_wal_receive_lsn()::text,'-'), coalesce(pg_last_wal_replay_lsn()::text,'-'),
 (select timeline_id from pg_control_checkpoint()),
 coalesce((select status||' sender='||coalesce(sender_host,'')||' tli='||received_tli||' flushed='||coalesce(flushed_lsn::text,'')||' pid='||pid from pg_stat_wal_receiver),'no walreceiver')`

// sample records one line for instance n: the time, its sockets towards
// port 5432 and PostgreSQL's answer (through the container's own psql,
// entered from the node, so no API server round trip).
func (r *replicaTrace) sample(n string) {
	p := r.pids[n]
	at := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	pid := strconv.Itoa(p.pid)
	ss, err := exec.CommandContext(ctx, "nsenter", "-t", pid, "-n", "--", "ss", "-tnoH", "state", "all", "( dport = :5432 )").CombinedOutput() // #nosec G204 -- a pid read from containerd
	sock := strings.Join(strings.Fields(string(ss)), " ")
	if err != nil {
		sock = "ss: " + err.Error()
	}
	uid := p.status["Uid"]
	cmd := exec.CommandContext(ctx, "nsenter", "-t", pid, "-a", "-S", uid, "-G", uid, "--", // #nosec G204 -- as above
		"psql", "-h", "/run/postgresql", "-U", "postgres", "-XAtq", "-F", " ", "-c", replicaTraceSQL)
	cmd.Env = []string{"PATH=/usr/lib/postgresql/15/bin:/usr/bin:/bin"}
	pg, err := cmd.CombinedOutput()
	answer := strings.TrimSpace(string(pg))
	if err != nil {
		answer = "psql: " + err.Error() + ": " + answer
	}
	r.mu.Lock()
	r.lines = append(r.lines, fmt.Sprintf("%s %s recovery,received,replayed,checkpoint-tli,walreceiver: %s | sockets: %s",
		at.UTC().Format("15:04:05.000"), n, answer, sock))
	r.mu.Unlock()
}

// finish stops the sampling and logs what it saw, the instances' logs
// from t0 and the new primary's timeline history.
func (r *replicaTrace) finish(t testing.TB, t0 time.Time, newPrimary string) {
	t.Helper()
	close(r.stop)
	r.done.Wait()
	r.mu.Lock()
	t.Logf("replica trace from the cut (%s):\n%s", t0.UTC().Format("15:04:05.000"), strings.Join(r.lines, "\n"))
	r.mu.Unlock()
	for _, n := range r.pods {
		out, err := kubectl("-n", r.ns, "logs", n, "-c", "postgres", "--since-time="+t0.Add(-2*time.Second).UTC().Format(time.RFC3339), "--timestamps")
		if err != nil {
			t.Logf("logs of %s: %v", n, err)
		}
		var keep []string
		for _, l := range strings.Split(out, "\n") {
			// The writer's connections and the probes' are noise here.
			if strings.Contains(l, "connection authorized") || strings.Contains(l, "connection received") || strings.Contains(l, "disconnection:") {
				continue
			}
			keep = append(keep, l)
		}
		if len(keep) > 400 {
			keep = keep[:400]
		}
		t.Logf("log of %s since the cut (%d lines kept):\n%s", n, len(keep), strings.Join(keep, "\n"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hist, err := podExec(ctx, r.ns, newPrimary, "psql", "-h", "/run/postgresql", "-U", "postgres", "-XAtc",
		`select name, pg_read_file('pg_wal/'||name) from pg_ls_waldir() where name like '%.history' order by name`)
	t.Logf("timeline history on the new primary %s (err %v):\n%s", newPrimary, err, hist)
}
