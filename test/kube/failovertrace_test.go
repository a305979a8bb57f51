//go:build e2e_kube

package kube

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/kube/build"
)

// A failover round's trace: where the time between the fault and the first
// write on the new primary goes. It records, as the API server announces
// them, every change of the read-write Service's EndpointSlice (which
// addresses, and their ready/serving/terminating conditions) and of the
// cluster's pods (role label, Ready, deletion), and merges them with the
// writer's attempts and the operator's log lines.

type traceEvent struct {
	at   time.Time
	what string
}

type roundTrace struct {
	mu     sync.Mutex
	evs    []traceEvent
	cancel context.CancelFunc
	done   sync.WaitGroup
}

func (r *roundTrace) add(what string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, traceEvent{time.Now(), what})
}

// traceRound watches the Cluster's read-write EndpointSlices and its pods
// until stop.
func traceRound(t testing.TB, ns string, c clusterName) *roundTrace {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", os.Getenv("KUBECONFIG"))
	if err != nil {
		t.Fatal(err)
	}
	scheme, err := kube.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	wc, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &roundTrace{cancel: cancel}
	sw, err := wc.Watch(ctx, &discoveryv1.EndpointSliceList{}, client.InNamespace(ns), client.MatchingLabels{discoveryv1.LabelServiceName: c.rw})
	if err != nil {
		t.Fatal(err)
	}
	pw, err := wc.Watch(ctx, &corev1.PodList{}, client.InNamespace(ns), client.MatchingLabels{build.ClusterLabel: c.name})
	if err != nil {
		t.Fatal(err)
	}
	r.done.Add(2)
	go func() {
		defer r.done.Done()
		last := ""
		for ev := range sw.ResultChan() {
			s, ok := ev.Object.(*discoveryv1.EndpointSlice)
			if !ok || ev.Type == watch.Bookmark {
				continue
			}
			if d := describeSlice(s); d != last {
				r.add("endpoints of " + c.rw + ": " + d)
				last = d
			}
		}
	}()
	go func() {
		defer r.done.Done()
		last := map[string]string{}
		for ev := range pw.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || ev.Type == watch.Bookmark {
				continue
			}
			d := describePod(p)
			if ev.Type == watch.Deleted {
				d = "gone"
			}
			if d != last[p.Name] {
				r.add("pod " + p.Name + ": " + d)
				last[p.Name] = d
			}
		}
	}()
	return r
}

type clusterName struct{ name, rw string }

func (r *roundTrace) stop() []traceEvent {
	r.cancel()
	r.done.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.evs)
}

func describeSlice(s *discoveryv1.EndpointSlice) string {
	var parts []string
	for _, e := range s.Endpoints {
		cond := func(b *bool, name string) string {
			if b != nil && *b {
				return name
			}
			return "!" + name
		}
		who := strings.Join(e.Addresses, ",")
		if e.TargetRef != nil {
			who = e.TargetRef.Name + "/" + who
		}
		parts = append(parts, fmt.Sprintf("%s(%s %s %s)", who, cond(e.Conditions.Ready, "ready"), cond(e.Conditions.Serving, "serving"), cond(e.Conditions.Terminating, "terminating")))
	}
	if len(parts) == 0 {
		return "none"
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

func describePod(p *corev1.Pod) string {
	ready := "!ready"
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			ready = "ready"
		}
	}
	d := fmt.Sprintf("role=%s %s ip=%s", p.Labels[build.RoleLabel], ready, p.Status.PodIP)
	if p.DeletionTimestamp != nil {
		d += " deleting"
	}
	return d
}

// roundTimeline merges a round's trace with the writer's attempts between
// the last acknowledged write before t0 and first (each with the time it
// started, from=...), and the operator's log lines about namespace ns, as
// offsets from t0.
func roundTimeline(t testing.TB, w *writer, ns string, t0, first time.Time, trace []traceEvent) string {
	t.Helper()
	evs := slices.Clone(trace)
	log := w.log(t)
	var lastAck time.Time
	for _, a := range parseAcks(log) {
		if a.at.Before(t0) {
			lastAck = a.at
		}
	}
	for _, line := range strings.Split(log, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || (f[0] != "ack" && f[0] != "err") {
			continue
		}
		ms, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			continue
		}
		at := time.UnixMilli(ms)
		if at.Before(lastAck) || at.After(first) {
			continue
		}
		evs = append(evs, traceEvent{at, "writer: " + line})
	}
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
		if err != nil || at.Before(t0.Add(-time.Second)) || at.After(first.Add(time.Second)) {
			continue
		}
		evs = append(evs, traceEvent{at, "operator: " + logMessage(rest)})
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].at.Before(evs[j].at) })
	var b strings.Builder
	for _, e := range evs {
		if e.at.Before(t0.Add(-2*time.Second)) || e.at.After(first.Add(500*time.Millisecond)) {
			continue
		}
		fmt.Fprintf(&b, "  %+8.3fs  %s\n", e.at.Sub(t0).Seconds(), e.what)
	}
	return b.String()
}
