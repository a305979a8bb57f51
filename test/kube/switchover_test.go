//go:build e2e_kube

package kube

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
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
	r.done.Add(3)
	go func() {
		defer r.done.Done()
		// Each pod's Ready condition as the API server has it (what the
		// EndpointSlice controller reads), with the kubelet's transition
		// time (to the second), logged when seen.
		last := map[string]string{}
		for ctx.Err() == nil {
			var l corev1.PodList
			if err := cl.List(ctx, &l, client.InNamespace(ns), client.MatchingLabels{build.ClusterLabel: c.Name}); err == nil {
				for _, p := range l.Items {
					for _, cond := range p.Status.Conditions {
						if cond.Type != corev1.PodReady {
							continue
						}
						s := fmt.Sprintf("pod %s: Ready=%s since %s", p.Name, cond.Status, cond.LastTransitionTime.UTC().Format("15:04:05"))
						if s != last[p.Name] {
							r.add(time.Now(), s)
							last[p.Name] = s
						}
					}
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	go func() {
		defer r.done.Done()
		last := ""
		for ctx.Err() == nil {
			var l discoveryv1.EndpointSliceList
			if err := cl.List(ctx, &l, client.InNamespace(ns), client.MatchingLabels{discoveryv1.LabelServiceName: c.Name + "-rw"}); err == nil {
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
		// kube-proxy's metrics listen on the node's loopback, inside its
		// network namespace (hack/kube-up.sh): one loop there reads them.
		cmd := exec.CommandContext(ctx, "nsenter", "--net=/run/netns/pgward-kube", "sh", "-c",
			`while :; do curl -s --max-time 1 http://127.0.0.1:10249/metrics | grep '^kubeproxy_sync_proxy_rules_last_timestamp_seconds'; sleep 0.02; done`)
		out, err := cmd.StdoutPipe()
		if err != nil || cmd.Start() != nil {
			return
		}
		defer func() { _ = cmd.Wait() }()
		sc := bufio.NewScanner(out)
		last, newest := "", 0.0
		for sc.Scan() {
			// "name{labels} value": the value is the last field.
			f := strings.Fields(sc.Text())
			if len(f) < 2 {
				continue
			}
			v := f[len(f)-1]
			if f, err := strconv.ParseFloat(v, 64); err == nil && f > newest {
				if last != "" {
					r.add(time.UnixMilli(int64(f*1000)), "kube-proxy: iptables rules synced")
				}
				newest = f
			}
			last = v
		}
	}()
	return r
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
			m := logfmt(rest)
			msg := m["msg"]
			switch msg {
			case "command", "postgres stopped", "postgres is running", "promoted", "following", "synchronous standbys",
				"restarting postgres to apply settings that need a restart", "command failed", "pg_rewind failed; cloning afresh",
				"checkpoint before shutdown":
			default:
				continue
			}
			for _, k := range []string{"kind", "primary", "names", "err", "took"} {
				if v, ok := m[k]; ok && v != "" {
					msg += fmt.Sprintf(" %s=%v", k, v)
				}
			}
			evs = append(evs, event{at, name + ": " + msg})
		}
	}
	return evs
}

// logfmt reads one line of slog's text format (the instance manager's
// log): key=value pairs, values quoted when they hold spaces.
func logfmt(line string) map[string]string {
	out := map[string]string{}
	for line != "" {
		line = strings.TrimLeft(line, " ")
		k, rest, ok := strings.Cut(line, "=")
		if !ok {
			break
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			if q, err := strconv.QuotedPrefix(rest); err == nil {
				v, _ = strconv.Unquote(q)
				rest = rest[len(q):]
			} else {
				v, rest = rest, ""
			}
		} else {
			v, rest, _ = strings.Cut(rest, " ")
		}
		out[k] = v
		line = rest
	}
	return out
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
	for _, l := range writerLines(log, from, to) {
		at, f := l.at, l.fields
		switch f[0] {
		case "ack":
			if prev != nil && (prev.server != f[3] || at.Sub(prev.at) > 200*time.Millisecond) {
				evs = append(evs, event{prev.at, "writer: ack on " + prev.server})
				evs = append(evs, event{at, "writer: ack on " + f[3] + fmt.Sprintf(" (%d ms after the previous)", at.Sub(prev.at).Milliseconds())})
			}
			prev = &ack{at: at, server: f[3]}
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

// downOutage sums the writer's gaps between consecutive acknowledged
// writes that overlap one of the down intervals (an instance restarting,
// one second added after each) and are longer than normal: the time
// without writes that the rolling update caused, not the machine's noise
// over the minute it waits for the pods' configuration.
func downOutage(log string, down []downInterval, normal time.Duration) (total time.Duration) {
	acks := parseAcks(log)
	for i := 1; i < len(acks); i++ {
		from, to := acks[i-1].at, acks[i].at
		if to.Sub(from) <= normal {
			continue
		}
		for _, d := range down {
			if from.Before(d.to.Add(time.Second)) && d.from.Before(to) {
				total += to.Sub(from)
				break
			}
		}
	}
	return total
}

// outage sums the writer's gaps between consecutive acknowledged writes in
// [from, to] that exceed normal (its usual time between two writes), and
// returns the sum, the longest gap and the failed writes.
func outage(log string, from, to time.Time, normal time.Duration) (total, longest time.Duration, failed int) {
	var last time.Time
	for _, l := range writerLines(log, from, to) {
		at, f := l.at, l.fields
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

// downInterval is one instance's time down during a rolling update: from
// the command that stopped it (restart, or a switchover's demote) to its
// postgres running again.
type downInterval struct {
	name       string
	from, to   time.Time
	wasPrimary bool
}

// rollResult is what one rolling update did, read from the instance
// managers' logs and the writer's.
type rollResult struct {
	took              time.Duration
	downtime, longest time.Duration
	normal            time.Duration
	failed            int
	down              []downInterval
	promoted          string
	promotedAt        time.Time
	timeline          string
}

// rollingUpdate changes shared_buffers (a parameter that needs a restart)
// on the cluster and waits until every instance runs with it and streams
// again. It checks the order issue 12 asks for: never two instances down at
// once, the replicas first, then a switchover to an updated replica (no
// write acknowledged by the old primary after the new one's first), the
// old primary last.
func rollingUpdate(t testing.TB, w *writer, value string) rollResult {
	t.Helper()
	ns := w.ns
	c := waitStreaming(t, ns, w.c.Name)
	old := c.Status.CurrentPrimary
	var oldPod corev1.Pod
	if err := cl.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: old}, &oldPod); err != nil {
		t.Fatal(err)
	}
	rec := record(t, ns, c)
	time.Sleep(300 * time.Millisecond)
	normal := normalGap(w.log(t), time.Now())
	t0 := time.Now()
	patch := fmt.Sprintf(`{"spec":{"postgresql":{"parameters":{"shared_buffers":%q}}}}`, value)
	if err := cl.Patch(context.Background(), c, client.RawPatch("application/merge-patch+json", []byte(patch))); err != nil {
		t.Fatalf("patching shared_buffers: %v", err)
	}
	// The new settings reach each pod when its kubelet refreshes the config
	// Secret's volume: at its next periodic sync, a minute or more apart
	// and at a different moment for each pod. Nothing here hurries them:
	// the operator waits until each replica reports the new manifest
	// loaded, with no restart pending, before it moves on to the primary
	// (plan.Spec.Manifests), so the order below holds whichever pod learns
	// first.
	eventually(t, 8*time.Minute, "every instance running with shared_buffers "+value, func() error {
		cur := getCluster(t, ns, c.Name)
		if err := healthy(cur); err != nil {
			return err
		}
		for _, name := range build.InstanceNames(cur) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			out, err := podExec(ctx, ns, name, "psql", "-h", "/run/postgresql", "-U", "postgres", "-XAtc", "show shared_buffers")
			cancel()
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if got := strings.TrimSpace(out); got != value {
				return fmt.Errorf("%s runs with shared_buffers %s", name, got)
			}
		}
		return nil
	})
	cur := waitStreaming(t, ns, c.Name)
	end := time.Now()
	evs := rec.stop()
	log := w.log(t)
	res := rollResult{took: end.Sub(t0)}
	_, res.longest, res.failed = outage(log, t0, end, normal)

	// The instances' down intervals, from their managers' logs.
	pevs := podLogEvents(t, ns, c, t0.Add(-time.Second), end)
	stopping := map[string]time.Time{}
	for _, e := range slices.SortedStableFunc(slices.Values(pevs), func(a, b event) int { return a.at.Compare(b.at) }) {
		name, msg, _ := strings.Cut(e.what, ": ")
		switch {
		case msg == "command kind=restart" || msg == "command kind=demote":
			if _, ok := stopping[name]; !ok {
				stopping[name] = e.at
			}
		case strings.HasPrefix(msg, "postgres is running"):
			if from, ok := stopping[name]; ok {
				res.down = append(res.down, downInterval{name: name, from: from, to: e.at, wasPrimary: name == old})
				delete(stopping, name)
			}
		case strings.HasPrefix(msg, "promoted"):
			res.promoted, res.promotedAt = name, e.at
		}
	}
	res.downtime = downOutage(log, res.down, normal)
	res.normal = normal
	for name, from := range stopping {
		t.Errorf("%s stopped at %+.3fs and was not seen running again", name, from.Sub(t0).Seconds())
	}
	evs = append(evs, pevs...)
	evs = append(evs, writerEvents(log, t0, end)...)
	evs = append(evs, operatorEvents(t, ns, t0, end)...)
	evs = append(evs, event{t0, "test: shared_buffers=" + value + " applied"})
	res.timeline = formatTimeline(evs, t0)

	// The order.
	if len(res.down) != len(build.InstanceNames(c)) {
		t.Errorf("%d instances restarted, want every one once: %+v", len(res.down), res.down)
	}
	for i := range res.down {
		for j := range i {
			a, b := res.down[i], res.down[j]
			if a.from.Before(b.to) && b.from.Before(a.to) {
				t.Errorf("%s (down %+.3fs to %+.3fs) and %s (down %+.3fs to %+.3fs) were down at the same time",
					a.name, a.from.Sub(t0).Seconds(), a.to.Sub(t0).Seconds(), b.name, b.from.Sub(t0).Seconds(), b.to.Sub(t0).Seconds())
			}
		}
	}
	for _, d := range res.down {
		if !d.wasPrimary && len(res.down) > 0 && d.from.After(res.down[len(res.down)-1].from) {
			t.Errorf("replica %s restarted after the primary", d.name)
		}
	}
	if len(res.down) > 0 && !res.down[len(res.down)-1].wasPrimary {
		t.Errorf("the primary %s was not the last to restart: %+v", old, res.down)
	}
	if res.promoted == "" || res.promoted == old || cur.Status.CurrentPrimary != res.promoted {
		t.Errorf("no switchover to an updated replica: promoted %q, primary %s (was %s)", res.promoted, cur.Status.CurrentPrimary, old)
	}
	for _, d := range res.down {
		if !d.wasPrimary && !d.to.Before(res.promotedAt) {
			t.Errorf("%s was promoted at %+.3fs before replica %s was back (%+.3fs)", res.promoted, res.promotedAt.Sub(t0).Seconds(), d.name, d.to.Sub(t0).Seconds())
		}
	}
	// A single writable primary, as the writer saw it: nothing acknowledged
	// by the old primary after the new one's first write.
	var newFirst time.Time
	for _, a := range parseAcks(log) {
		if a.at.After(t0) && a.server != oldPod.Status.PodIP && newFirst.IsZero() {
			newFirst = a.at
		}
		if !newFirst.IsZero() && a.server == oldPod.Status.PodIP {
			t.Errorf("the old primary %s acknowledged row %d at %+.3fs, after the new primary's first write at %+.3fs",
				old, a.id, a.at.Sub(t0).Seconds(), newFirst.Sub(t0).Seconds())
		}
	}
	return res
}

func (r rollResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "rolling update in %v: write downtime %v (gaps over %v while an instance was down), longest gap %v, %d failed writes; promoted %s; down:",
		r.took.Round(time.Millisecond), r.downtime.Round(time.Millisecond), r.normal.Round(time.Millisecond), r.longest.Round(time.Millisecond), r.failed, r.promoted)
	for _, d := range r.down {
		role := "replica"
		if d.wasPrimary {
			role = "primary"
		}
		fmt.Fprintf(&b, " %s (%s) %v;", d.name, role, d.to.Sub(d.from).Round(time.Millisecond))
	}
	return b.String()
}

// TestRollingUpdateOnPods: a parameter that needs a restart (shared_buffers)
// changed on the synchronous sample under the writer: replicas restarted one
// at a time, then a switchover to an updated replica and the old primary
// restarted, never two instances down, the old primary acknowledging
// nothing after the new one's first write, and no acknowledged write lost.
func TestRollingUpdateOnPods(t *testing.T) {
	ns := newNamespace(t, "e2e-rolling")
	c := newCluster(t, ns, "cluster-sync.yaml", nil)
	w := startWriter(t, ns, c)
	res := rollingUpdate(t, w, "64MB")
	t.Logf("%s\ntimeline from the change:\n%s", res, res.timeline)
	n := w.stop(t)
	t.Logf("%d acknowledged writes, none lost", n)
}

// BenchmarkRollingUpdate: rolling updates of the synchronous sample
// (shared_buffers changed back and forth) under the writer; the figure is
// the total write downtime of each (the sum of the gaps between
// acknowledged writes longer than the writer's usual one).
func BenchmarkRollingUpdate(b *testing.B) {
	ns := newNamespace(b, "bench-rolling")
	c := newCluster(b, ns, "cluster-sync.yaml", nil)
	w := startWriter(b, ns, c)
	var total, longest []time.Duration
	for i := range rounds(5) {
		res := rollingUpdate(b, w, []string{"64MB", "96MB"}[i%2])
		b.Logf("round %d: %s\ntimeline from the change:\n%s", i, res, res.timeline)
		total, longest = append(total, res.downtime), append(longest, res.longest)
	}
	n := w.stop(b)
	report(b, "rolling update: total write downtime", total)
	report(b, "rolling update: longest gap between two acknowledged writes", longest)
	b.Logf("%d acknowledged writes checked after %d rolling updates", n, len(total))
}
