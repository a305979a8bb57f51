//go:build e2e_kube

package kube

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"
)

// The Kubernetes numbers of docs/benchmarks.md (`make bench-kube`). Each
// benchmark runs its rounds once (-benchtime 1x) and reports the median and
// the maximum; PGWARD_BENCH_ROUNDS overrides the number of rounds.

func rounds(def int) int {
	if n, err := strconv.Atoi(os.Getenv("PGWARD_BENCH_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return def
}

func report(b *testing.B, what string, ds []time.Duration) {
	b.Helper()
	if len(ds) == 0 {
		b.Fatalf("%s: no rounds", what)
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	p50, mx := s[len(s)/2], s[len(s)-1]
	b.ReportMetric(p50.Seconds(), "p50-s")
	b.ReportMetric(mx.Seconds(), "max-s")
	b.ReportMetric(float64(len(s)), "rounds")
	b.Logf("%s: p50 %v, max %v over %d rounds: %v", what, p50.Round(10*time.Millisecond), mx.Round(10*time.Millisecond), len(s), round(ds))
}

func round(ds []time.Duration) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Round(10 * time.Millisecond).String()
	}
	return out
}

// BenchmarkClusterReady: from `kubectl create` of the 3-instance sample to
// the Cluster saying all three instances are ready (initdb, two base
// backups over TLS, streaming).
func BenchmarkClusterReady(b *testing.B) {
	var ds []time.Duration
	for i := range rounds(3) {
		ns := newNamespace(b, fmt.Sprintf("bench-ready-%d", i))
		c := loadSample(b, "cluster-example.yaml")
		start := time.Now()
		createCluster(b, ns, c)
		waitHealthy(b, ns, c.Name, 5*time.Minute)
		ds = append(ds, time.Since(start))
	}
	report(b, "kubectl create -> 3 instances ready", ds)
}

// BenchmarkFailoverKill: kill -9 of the primary's postmaster -> the first
// write a new primary acknowledged through <c>-rw, with a writer that
// connects for every row (synchronous sample; no acknowledged write may be
// lost).
func BenchmarkFailoverKill(b *testing.B) { benchFailover(b, "kill") }

// BenchmarkFailoverPodDeleted: the primary's pod deleted -> the first write
// a new primary acknowledged through <c>-rw.
func BenchmarkFailoverPodDeleted(b *testing.B) { benchFailover(b, "delete") }

func benchFailover(b *testing.B, how string) {
	ns := newNamespace(b, "bench-"+how)
	c := newCluster(b, ns, "cluster-sync.yaml", nil)
	w := startWriter(b, ns, c)
	var ds []time.Duration
	for range rounds(10) {
		ds = append(ds, failover(b, w, how))
	}
	n := w.stop(b)
	report(b, how+" of the primary -> first acknowledged write through -rw", ds)
	b.Logf("%d acknowledged writes checked after %d failovers", n, len(ds))
}

// BenchmarkFailoverFrozen: the primary's container frozen (SIGSTOP of its
// processes) under asynchronous replication -> the first write a new
// primary acknowledged through <c>-rw; every round also checks that the
// old primary acknowledged nothing after it (freezeFailover).
func BenchmarkFailoverFrozen(b *testing.B) { benchFrozen(b, "cluster-example.yaml") }

// BenchmarkFailoverFrozenSync is the same on the synchronous sample, the
// issue's figure. The probe to the frozen primary commits with
// synchronous_commit=local, which any client may set, so that synchronous
// replication does not hold its writes back: only fencing can.
func BenchmarkFailoverFrozenSync(b *testing.B) { benchFrozen(b, "cluster-sync.yaml") }

func benchFrozen(b *testing.B, sample string) {
	ns := newNamespace(b, "bench-freeze")
	c := newCluster(b, ns, sample, nil)
	w := startWriter(b, ns, c)
	var ds []time.Duration
	for i := range rounds(5) {
		ds = append(ds, freezeFailover(b, w, c, i))
	}
	mustExec(b, w.ns, w.pod, "touch", "/tmp/stop")
	report(b, "primary frozen ("+sample+") -> first acknowledged write on the new primary", ds)
}
