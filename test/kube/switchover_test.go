//go:build e2e_kube

package kube

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/kube/build"
)

// The switchover window and the rolling update on real pods (issue 12):
// how long the writer of failover_test.go, one connection per row through
// <c>-rw, goes without an acknowledged write, and where that time goes.

// event is one timestamped line of a round's timeline.
type event struct {
	at   time.Time
	what string
}

// recorder samples, while a round runs, what the writer's log cannot
// show: the EndpointSlices of <c>-rw (what kube-proxy is told) and the
// times kube-proxy rewrote its iptables rules (its own metric, read on the
// node every 20 ms).
type recorder struct {
	mu     sync.Mutex
	evs    []event
	cancel context.CancelFunc
	done   sync.WaitGroup
}

func record(t testing.TB, ns string, c *v1.Cluster) *recorder {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &recorder{cancel: cancel}
	ips := map[string]string{}
	var pods corev1.PodList
	if err := cl.List(ctx, &pods, client.InNamespace(ns)); err == nil {
		for _, p := range pods.Items {
			ips[p.Status.PodIP] = p.Name
		}
	}
	r.done.Add(2)
	go func() {
		defer r.done.Done()
		last := ""
		for ctx.Err() == nil {
			var l discoveryv1.EndpointSliceList
			if err := cl.List(ctx, &l, client.InNamespace(ns), client.MatchingLabels{discoveryv1.LabelServiceName: build.ClientHost(c)}); err == nil {
				var eps []string
				for _, s := range l.Items {
					for _, e := range s.Endpoints {
						ready := e.Conditions.Ready == nil || *e.Conditions.Ready
						for _, a := range e.Addresses {
							name := ips[a]
							if name == "" {
								name = a
							}
							eps = append(eps, fmt.Sprintf("%s(ready=%t)", name, ready))
						}
					}
				}
				slices.Sort(eps)
				if s := strings.Join(eps, " "); s != last {
					r.add(time.Now(), "EndpointSlice of -rw: ["+s+"]")
					last = s
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	go func() {
		defer r.done.Done()
		last := ""
		for ctx.Err() == nil {
			if v := proxySyncTime(ctx); v != "" && v != last {
				if last != "" {
					if f, err := strconv.ParseFloat(v, 64); err == nil {
						r.add(time.UnixMilli(int64(f*1000)), "kube-proxy: iptables rules synced")
					}
				}
				last = v
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return r
}

// proxySyncTime is kube-proxy's kubeproxy_sync_proxy_rules_last_timestamp_seconds
// (hack/kube-up.sh: metrics on 127.0.0.1:10249), "" if unreadable.
func proxySyncTime(ctx context.Context) string {
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, "http://127.0.0.1:10249/metrics", nil)
	if err != nil {
		return ""
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	defer func() { _ = resp.Body.Close() }()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "kubeproxy_sync_proxy_rules_last_timestamp_seconds "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func (r *recorder) add(at time.Time, what string) {
	r.mu.Lock()
	r.evs = append(r.evs, event{at, what})
	r.mu.Unlock()
}

func (r *recorder) stop() []event {
	r.cancel()
	r.done.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.evs)
}

// podLogEvents are the instance managers' log lines of the cluster's pods
// between from and to (kubelet timestamps) that say what they did.
func podLogEvents(t testing.TB, ns string, c *v1.Cluster, from, to time.Time) []event {
	t.Helper()
	var evs []event
	for _, name := range build.InstanceNames(c) {
		out, err := kubectl("-n", ns, "logs", name, "-c", "postgres", "--timestamps", "--since-time", from.UTC().Format(time.RFC3339))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(out, "\n") {
			ts, rest, ok := strings.Cut(line, " ")
			if !ok {
				continue
			}
			at, err := time.Parse(time.RFC3339Nano, ts)
			if err != nil || at.Before(from) || at.After(to) {
				continue
			}
			var m map[string]any
			if json.Unmarshal([]byte(rest), &m) != nil {
				continue
			}
			msg, _ := m["msg"].(string)
			switch msg {
			case "command", "postgres stopped", "postgres is running", "promoted", "following", "synchronous standbys",
				"restarting postgres to apply settings that need a restart", "command failed":
			default:
				continue
			}
			for _, k := range []string{"kind", "primary", "names", "err"} {
				if v, ok := m[k]; ok && v != "" {
					msg += fmt.Sprintf(" %s=%v", k, v)
				}
			}
			evs = append(evs, event{at, name + ": " + msg})
		}
	}
	return evs
}

// operatorEvents are the operator's log lines about namespace ns between
// from and to.
func operatorEvents(t testing.TB, ns string, from, to time.Time) []event {
	t.Helper()
	out, err := kubectl("-n", operatorNamespace, "logs", "-l", "app.kubernetes.io/name=pgward-operator",
		"--timestamps", "--tail=-1", "--prefix=false")
	if err != nil {
		t.Logf("operator logs: %v", err)
	}
	var evs []event
	for _, line := range strings.Split(out, "\n") {
		ts, rest, ok := strings.Cut(line, " ")
		if !ok || !strings.Contains(rest, `"`+ns+`"`) {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil || at.Before(from) || at.After(to) {
			continue
		}
		evs = append(evs, event{at, "operator: " + logMessage(rest)})
	}
	return evs
}

// writerEvents are, between from and to, the writer's failed writes (the
// first of each kind of message) and the acknowledged writes around them.
func writerEvents(log string, from, to time.Time) []event {
	var evs []event
	var prev *ack
	seen := map[string]bool{}
	for _, line := range strings.Split(log, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		ms, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			continue
		}
		at := time.UnixMilli(ms)
		if at.Before(from) || at.After(to) {
			continue
		}
		switch f[0] {
		case "ack":
			if prev != nil && (prev.server != strings.Join(f[3:], " ") || at.Sub(prev.at) > 200*time.Millisecond) {
				evs = append(evs, event{prev.at, "writer: ack on " + prev.server})
				evs = append(evs, event{at, "writer: ack on " + strings.Join(f[3:], " ") + fmt.Sprintf(" (%d ms after the previous)", at.Sub(prev.at).Milliseconds())})
			}
			prev = &ack{at: at, server: strings.Join(f[3:], " ")}
		case "err":
			msg := strings.Join(f[3:], " ")
			if len(msg) > 90 {
				msg = msg[:90]
			}
			if !seen[msg] {
				seen[msg] = true
				evs = append(evs, event{at, "writer: failed: " + msg})
			}
		}
	}
	return evs
}

func formatTimeline(evs []event, t0 time.Time) string {
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].at.Before(evs[j].at) })
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "  %+8.3fs  %s\n", e.at.Sub(t0).Seconds(), e.what)
	}
	return b.String()
}

// outage sums the writer's gaps between consecutive acknowledged writes in
// [from, to] that exceed normal (its usual time between two writes), and
// returns the sum, the longest gap and the failed writes.
func outage(log string, from, to time.Time, normal time.Duration) (total, longest time.Duration, failed int) {
	var last time.Time
	for _, line := range strings.Split(log, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		ms, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			continue
		}
		at := time.UnixMilli(ms)
		if at.Before(from) || at.After(to) {
			continue
		}
		switch f[0] {
		case "ack":
			if !last.IsZero() {
				if g := at.Sub(last); g > normal {
					total += g
					longest = max(longest, g)
				}
			}
			last = at
		case "err":
			failed++
		}
	}
	return total, longest, failed
}

// normalGap is the writer's usual time between two acknowledged writes
// (the 90th percentile over the last 10 s before t), with a floor of
// 100 ms: a gap above it is time without writes.
func normalGap(log string, t time.Time) time.Duration {
	var gaps []time.Duration
	var last time.Time
	for _, a := range parseAcks(log) {
		if a.at.After(t) || a.at.Before(t.Add(-10*time.Second)) {
			continue
		}
		if !last.IsZero() {
			gaps = append(gaps, a.at.Sub(last))
		}
		last = a.at
	}
	if len(gaps) == 0 {
		return 100 * time.Millisecond
	}
	slices.Sort(gaps)
	return max(gaps[len(gaps)*9/10], 100*time.Millisecond)
}

// switchoverRound asks for a switchover from the settled primary to the
// next instance and returns the window: the longest time between two
// acknowledged writes around it. The timeline of where that went is logged.
func switchoverRound(t testing.TB, w *writer, round int) time.Duration {
	t.Helper()
	c := waitStreaming(t, w.ns, w.c.Name)
	old := c.Status.CurrentPrimary
	names := build.InstanceNames(c)
	to := names[(slices.Index(names, old)+1)%len(names)]
	rec := record(t, w.ns, c)
	time.Sleep(300 * time.Millisecond) // the recorder's first samples
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := kube.RequestSwitchover(ctx, cl, client.ObjectKey{Namespace: w.ns, Name: c.Name}, to, 2*time.Minute); err != nil {
		t.Fatalf("round %d: switchover to %s: %v", round, to, err)
	}
	var newPod corev1.Pod
	if err := cl.Get(ctx, client.ObjectKey{Namespace: w.ns, Name: to}, &newPod); err != nil {
		t.Fatal(err)
	}
	var first time.Time
	eventually(t, time.Minute, "a write acknowledged by the new primary", func() error {
		for _, a := range w.acks(t) {
			if a.at.After(t0) && a.server == newPod.Status.PodIP {
				first = a.at
				return nil
			}
		}
		return fmt.Errorf("no write acknowledged by %s yet", to)
	})
	time.Sleep(time.Second)
	evs := rec.stop()
	log := w.log(t)
	_, window, failed := outage(log, t0.Add(-time.Second), first, 0)
	evs = append(evs, writerEvents(log, t0.Add(-time.Second), first.Add(500*time.Millisecond))...)
	evs = append(evs, operatorEvents(t, w.ns, t0.Add(-500*time.Millisecond), first.Add(time.Second))...)
	evs = append(evs, podLogEvents(t, w.ns, c, t0.Add(-500*time.Millisecond), first.Add(time.Second))...)
	evs = append(evs, event{t0, "test: switchover requested (annotation)"})
	t.Logf("round %d: switchover %s -> %s: window %v (%d failed writes); timeline from the request:\n%s",
		round, old, to, window.Round(time.Millisecond), failed, formatTimeline(evs, t0))
	return window
}

// BenchmarkSwitchover: a switchover asked for as `pgward promote` does
// (the annotation) on the synchronous sample, with the writer of
// failover_test.go; each round's figure is the longest time between two
// acknowledged writes around it, and every acknowledged write must be
// there at the end.
func BenchmarkSwitchover(b *testing.B) {
	ns := newNamespace(b, "bench-switchover")
	c := newCluster(b, ns, "cluster-sync.yaml", nil)
	w := startWriter(b, ns, c)
	var ds []time.Duration
	for i := range rounds(20) {
		ds = append(ds, switchoverRound(b, w, i))
	}
	n := w.stop(b)
	report(b, "switchover window (longest time between two acknowledged writes)", ds)
	b.Logf("%d acknowledged writes checked after %d switchovers", n, len(ds))
}
