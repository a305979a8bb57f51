package kube_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/yaml"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/kube/build"
	"github.com/pgward/pgward/internal/plan/plantest"
)

// BenchmarkOperator runs the real `pgward operator` binary (as its own
// process, with the generated RBAC only, against the real API server),
// creates 100 three-instance Clusters, lets it reconcile them for a while,
// and reports the operator's peak RSS, the latency of its Reconcile calls
// (p50/p99, from its own debug log) and the time from creating a Cluster to
// its first status. Without a kubelet no pod runs, so each reconcile also
// finds every instance unreachable; that is the cost of the objects and
// the status, not of talking to PostgreSQL.
//
//	make bench-operator
func BenchmarkOperator(b *testing.B) {
	clusters := benchClusters(b)
	steady := 30 * time.Second
	if s := os.Getenv("PGWARD_BENCH_STEADY"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			b.Fatal(err)
		}
		steady = d
	}
	bin := filepath.Join(b.TempDir(), "pgward")
	gobuild := exec.CommandContext(context.Background(), "go", "build", "-o", bin, "../../cmd/pgward")
	gobuild.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := gobuild.CombinedOutput(); err != nil {
		b.Fatalf("building pgward: %v\n%s", err, out)
	}
	kubeconfig, err := opUser.KubeConfig()
	if err != nil {
		b.Fatal(err)
	}
	kc := filepath.Join(b.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, kubeconfig, 0o600); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	args := []string{"operator", "--namespace", operatorNamespace,
		"--leader-elect=false", "--webhooks=false", "--metrics-bind-address=0", "--health-probe-bind-address=0",
		"--log-level=debug"}
	// PGWARD_BENCH_PPROF=FILE writes a CPU profile of the steady state, and
	// FILE.heap the heap at its end.
	profile := os.Getenv("PGWARD_BENCH_PPROF")
	pprofAddr := ""
	if profile != "" {
		pprofAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(b)))
		args = append(args, "--pprof-bind-address="+pprofAddr)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kc)
	// The environment the shipped Deployment gives the operator (its
	// memory bound), so the figures are the deployed operator's.
	cmd.Env = append(cmd.Env, deploymentEnv(b)...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	var (
		mu        sync.Mutex
		durations []float64 // every reconcile
		steadyDur []float64 // those after every Cluster was set up
		inSteady  bool
		failures  int
	)
	logDone := make(chan struct{})
	var logs io.Reader = stderr
	if path := os.Getenv("PGWARD_BENCH_LOG"); path != "" {
		f, err := os.Create(path) // #nosec G304 G703 -- a path the developer chose
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = f.Close() }()
		logs = io.TeeReader(stderr, f)
	}
	go func() {
		defer close(logDone)
		readReconciles(logs, func(d float64, failed bool) {
			mu.Lock()
			durations = append(durations, d)
			if inSteady {
				steadyDur = append(steadyDur, d)
			}
			if failed {
				failures++
			}
			mu.Unlock()
		})
	}()
	b.ResetTimer()

	ns := fmt.Sprintf("bench-%d", time.Now().UnixNano()%100000)
	createNamespace(b, ns)
	created := make([]time.Time, clusters)
	for i := range clusters {
		c := sampleClusterB(b, ns)
		c.Name = fmt.Sprintf("c%04d", i)
		v1.SetDefaults(c)
		created[i] = time.Now()
		if err := admin.Create(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
	// Time to first status: poll until every Cluster has one.
	firstStatus := make([]time.Duration, clusters)
	seen := 0
	deadline := time.Now().Add(5*time.Minute + time.Duration(clusters)*300*time.Millisecond)
	for seen < clusters {
		var list v1.ClusterList
		if err := admin.List(ctx, &list, client.InNamespace(ns)); err != nil {
			b.Fatal(err)
		}
		now := time.Now()
		for _, c := range list.Items {
			i, _ := strconv.Atoi(strings.TrimPrefix(c.Name, "c"))
			if c.Status.Phase == kube.PhaseWaiting && firstStatus[i] == 0 {
				firstStatus[i] = now.Sub(created[i])
				seen++
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d clusters reconciled", seen, clusters)
		}
		time.Sleep(50 * time.Millisecond)
	}
	settled := time.Since(created[0])
	mu.Lock()
	inSteady = true
	mu.Unlock()
	cpuBefore := cpuSeconds(b, cmd.Process.Pid)
	if profile != "" {
		writeProfile(b, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", pprofAddr, int(steady.Seconds())), profile)
		writeProfile(b, fmt.Sprintf("http://%s/debug/pprof/heap", pprofAddr), profile+".heap")
	} else {
		time.Sleep(steady)
	}
	cpuSteady := cpuSeconds(b, cmd.Process.Pid) - cpuBefore
	hwm, rss := memory(b, cmd.Process.Pid)
	b.StopTimer()
	cancel()
	_ = cmd.Wait()
	<-logDone

	mu.Lock()
	defer mu.Unlock()
	slices.Sort(durations)
	slices.Sort(steadyDur)
	fs := make([]float64, clusters)
	for i, d := range firstStatus {
		fs[i] = d.Seconds()
	}
	slices.Sort(fs)
	b.ReportMetric(hwm/1024, "peak-RSS-MiB")
	b.ReportMetric(percentile(durations, 50)*1000, "reconcile-p50-ms")
	b.ReportMetric(percentile(durations, 99)*1000, "reconcile-p99-ms")
	b.ReportMetric(percentile(steadyDur, 50)*1000, "steady-reconcile-p50-ms")
	b.ReportMetric(percentile(steadyDur, 99)*1000, "steady-reconcile-p99-ms")
	b.ReportMetric(percentile(fs, 50)*1000, "create-to-status-p50-ms")
	b.ReportMetric(percentile(fs, 99)*1000, "create-to-status-p99-ms")
	b.Logf("%d clusters (3 instances each): all reconciled %.1fs after the first was created; "+
		"%d reconciles (%d failed, retried); steady state %.0fs: %d reconciles, %.2f CPU-s (%.1f%% of a core); RSS now %.0f MiB",
		clusters, settled.Seconds(), len(durations), failures, steady.Seconds(), len(steadyDur), cpuSteady,
		100*cpuSteady/steady.Seconds(), rss/1024)
}

// readReconciles parses the operator's JSON log for its "reconciled" lines.
func readReconciles(r io.Reader, record func(seconds float64, failed bool)) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg      string  `json:"msg"`
			Duration float64 `json:"duration"`
			Error    bool    `json:"error"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "reconciled" {
			record(line.Duration, line.Error)
		}
	}
}

func percentile(sorted []float64, p int) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[min(max(i-1, 0), len(sorted)-1)]
}

// memory returns the peak and current resident set size in KiB.
func memory(b *testing.B, pid int) (hwm, rss float64) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmHWM:":
			hwm = v
		case "VmRSS:":
			rss = v
		}
	}
	return hwm, rss
}

// cpuSeconds is the user+system CPU time the process has used.
func cpuSeconds(b *testing.B, pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ
}

func createNamespace(b *testing.B, name string) {
	b.Helper()
	if err := admin.Create(context.Background(), namespaceObj(name)); err != nil {
		b.Fatal(err)
	}
}

func sampleClusterB(b *testing.B, ns string) *v1.Cluster {
	b.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", "cluster-example.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	c, err := v1.LoadAndValidate(data)
	if err != nil {
		b.Fatal(err)
	}
	c.Namespace = ns
	return c
}

// BenchmarkHealthyClusterWrites runs the operator's manager in process on
// 100 healthy three-instance Clusters, whose instances a plantest.Sim each
// plays (with WAL moving at every status request, as on a busy primary),
// and reports how many writes the API server sees per minute once they are
// all healthy: every change of a Cluster (its status) or of an object
// labelled as one of theirs, counted from a watch.
//
//	KUBEBUILDER_ASSETS="$(hack/kube-binaries.sh)" go test -run '^$' -bench BenchmarkHealthyClusterWrites -benchtime 1x ./internal/kube/
func BenchmarkHealthyClusterWrites(b *testing.B) {
	clusters := benchClusters(b)
	window := time.Minute
	if s := os.Getenv("PGWARD_BENCH_STEADY"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			b.Fatal(err)
		}
		window = d
	}
	ns := fmt.Sprintf("healthy-%d", time.Now().UnixNano()%100000)
	createNamespace(b, ns)
	cfg := kube.DefaultConfig()
	cfg.Namespace = operatorNamespace
	cfg.Build.OperatorNamespace = operatorNamespace
	cfg.MetricsAddr, cfg.ProbeAddr = "0", "0"
	cfg.LeaderElect, cfg.Webhooks = false, false
	cfg.Instances = &simClusters{sims: map[string]*simInstances{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- kube.Run(ctx, opCfg, cfg) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("operator: %v", err)
		}
	}()
	for i := range clusters {
		c := sampleClusterB(b, ns)
		c.Name = fmt.Sprintf("h%04d", i)
		v1.SetDefaults(c)
		if err := admin.Create(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
	start := time.Now()
	for deadline := start.Add(10*time.Minute + time.Duration(clusters)*300*time.Millisecond); ; time.Sleep(time.Second) {
		var list v1.ClusterList
		if err := admin.List(ctx, &list, client.InNamespace(ns)); err != nil {
			b.Fatal(err)
		}
		healthy := 0
		for _, c := range list.Items {
			if c.Status.Phase == kube.PhaseHealthy {
				healthy++
			}
		}
		if healthy == clusters {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d clusters healthy after %s", healthy, clusters, time.Since(start))
		}
	}
	b.Logf("%d clusters healthy after %s", clusters, time.Since(start).Round(time.Second))
	time.Sleep(2 * kube.DefaultTiming().CheckInterval) // the last ones' sync standbys settle
	wc, err := client.NewWithWatch(adminCfg, client.Options{Scheme: scheme})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	before := reconcileHistogram(b)
	var writes, clusterWrites atomic.Int64
	for _, l := range []client.ObjectList{&v1.ClusterList{}, &corev1.PodList{}, &corev1.SecretList{}, &corev1.ServiceList{}} {
		opts := []client.ListOption{client.InNamespace(ns)}
		_, isCluster := l.(*v1.ClusterList)
		if !isCluster {
			opts = append(opts, client.HasLabels{build.ClusterLabel})
		}
		w, err := wc.Watch(ctx, l, opts...)
		if err != nil {
			b.Fatal(err)
		}
		defer w.Stop()
		go func() {
			for ev := range w.ResultChan() {
				// A watch opens with the objects there are (Added).
				if ev.Type == watch.Added || ev.Type == watch.Bookmark {
					continue
				}
				writes.Add(1)
				if isCluster {
					clusterWrites.Add(1)
				}
			}
		}()
	}
	time.Sleep(window)
	b.StopTimer()
	steady := reconcileHistogram(b).minus(before)
	hwm, _ := memory(b, os.Getpid())
	b.ReportMetric(hwm/1024, "peak-RSS-MiB")
	b.ReportMetric(steady.quantile(0.50)*1000, "steady-reconcile-p50-le-ms")
	b.ReportMetric(steady.quantile(0.99)*1000, "steady-reconcile-p99-le-ms")
	b.Logf("steady state: %d reconciles in %s; p50 <= %.0f ms, p99 <= %.0f ms (bucket bounds of controller-runtime's histogram); peak RSS of the process (operator manager, simulated instances, the benchmark's clients) %.0f MiB",
		steady.count, window, steady.quantile(0.5)*1000, steady.quantile(0.99)*1000, hwm/1024)
	perMin := float64(writes.Load()) / window.Minutes()
	b.ReportMetric(perMin, "writes/min")
	b.ReportMetric(float64(clusterWrites.Load())/window.Minutes(), "cluster-status-writes/min")
	b.Logf("%d healthy clusters for %s: %d writes (%d of Clusters), %.0f per minute",
		clusters, window, writes.Load(), clusterWrites.Load(), perMin)
}

// benchClusters is how many Clusters the operator benchmarks create: 100,
// or PGWARD_BENCH_CLUSTERS (the 1,000-Cluster figures).
func benchClusters(b *testing.B) int {
	s := os.Getenv("PGWARD_BENCH_CLUSTERS")
	if s == "" {
		return 100
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 9999 {
		b.Fatalf("PGWARD_BENCH_CLUSTERS=%q: want 1 to 9999", s)
	}
	return n
}

// histogram is a snapshot of controller-runtime's reconcile-time histogram
// for the cluster controller: cumulative counts by upper bound (seconds).
type histogram struct {
	bounds []float64
	counts []uint64
	count  uint64
}

func reconcileHistogram(b *testing.B) histogram {
	mfs, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "controller_runtime_reconcile_time_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && l.GetValue() == "cluster" {
					var h histogram
					for _, bk := range m.GetHistogram().GetBucket() {
						h.bounds = append(h.bounds, bk.GetUpperBound())
						h.counts = append(h.counts, bk.GetCumulativeCount())
					}
					h.count = m.GetHistogram().GetSampleCount()
					return h
				}
			}
		}
	}
	return histogram{}
}

// minus is the histogram of the reconciles between an earlier snapshot and h.
func (h histogram) minus(earlier histogram) histogram {
	d := histogram{bounds: h.bounds, counts: slices.Clone(h.counts), count: h.count - earlier.count}
	if len(earlier.counts) == len(h.counts) {
		for i := range d.counts {
			d.counts[i] -= earlier.counts[i]
		}
	}
	return d
}

// quantile is the upper bound of the bucket holding quantile q: the true
// value is at most that (a histogram cannot say more).
func (h histogram) quantile(q float64) float64 {
	want := uint64(q*float64(h.count) + 0.999999)
	for i, c := range h.counts {
		if c >= want {
			return h.bounds[i]
		}
	}
	return math.Inf(1)
}

// simClusters plays the instances of many Clusters, a plantest.Sim each,
// and writes to a cluster at every status request so that its WAL moves.
type simClusters struct {
	mu   sync.Mutex
	sims map[string]*simInstances // by namespace/name of the Cluster
}

func (s *simClusters) of(in kube.Instance) *simInstances {
	s.mu.Lock()
	defer s.mu.Unlock()
	si := s.sims[in.Cluster]
	if si == nil {
		_, name, _ := strings.Cut(in.Cluster, "/")
		si = &simInstances{sim: plantest.NewSim(time.Now(), kube.DefaultTiming().SelfFence, name+"-1", name+"-2", name+"-3")}
		s.sims[in.Cluster] = si
	}
	return si
}

func (s *simClusters) Status(ctx context.Context, in kube.Instance, ack uint64) (*instanceapi.Status, error) {
	si := s.of(in)
	si.mu.Lock()
	si.sim.Write()
	si.mu.Unlock()
	return si.Status(ctx, in, ack)
}

func (s *simClusters) Command(ctx context.Context, in kube.Instance, cmd instanceapi.Command) error {
	return s.of(in).Command(ctx, in, cmd)
}

// writeProfile saves one of the operator's profiles (u) into path.
func writeProfile(b *testing.B, u, path string) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, u, nil) // #nosec G704 -- the operator's loopback pprof address
	if err != nil {
		b.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req) // #nosec G107 G704 -- the operator's loopback pprof address
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	f, err := os.Create(path) // #nosec G304 G703 -- a path the developer chose
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	if _, err := io.Copy(f, resp.Body); err != nil {
		b.Fatal(err)
	}
}

// deploymentEnv returns the literal environment variables of the operator
// container in config/manager/operator.yaml.
func deploymentEnv(b *testing.B) []string {
	data, err := os.ReadFile("../../config/manager/operator.yaml")
	if err != nil {
		b.Fatal(err)
	}
	var env []string
	for doc := range strings.SplitSeq(string(data), "\n---") {
		var d appsv1.Deployment
		if err := yaml.Unmarshal([]byte(doc), &d); err != nil || d.Kind != "Deployment" {
			continue
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			for _, e := range c.Env {
				if e.ValueFrom == nil {
					env = append(env, e.Name+"="+e.Value)
				}
			}
		}
	}
	if len(env) == 0 {
		b.Fatal("no environment found for the operator in config/manager/operator.yaml")
	}
	return env
}
