package kube

import (
	"sync"
	"time"
)

// pacerOccupancy is the share of the workers' time the periodic checks may
// take, leaving the rest for what events bring (a new Cluster, a failover,
// a spec change).
const pacerOccupancy = 0.5

// pacerMax bounds the stretch: past it the operator is overloaded whatever
// it does, and a check a minute still notices a cluster that needs it.
const pacerMax = time.Minute

// pacer stretches the periodic check when there are more Clusters than the
// workers can look at every CheckInterval. Without it, a thousand Clusters
// asking to be looked at every 2 s on a two-core machine filled the queue
// for good: newly created Clusters waited behind the checks and some were
// never reconciled at all (BenchmarkOperator with PGWARD_BENCH_CLUSTERS=1000:
// 926 of 1,000 in ten minutes). Checks slow down before new work starves;
// what events bring (an instance's wake-up, a pod deleted, a spec change)
// is not delayed by it, and failover by events stays as fast.
type pacer struct {
	workers int

	mu       sync.Mutex
	avg      time.Duration // moving average of a reconcile's wall time
	clusters map[string]struct{}
	said     time.Duration // the stretched interval last logged
}

func newPacer(workers int) *pacer {
	return &pacer{workers: max(workers, 1), clusters: map[string]struct{}{}}
}

// observe records one reconcile of cluster key and how long it took.
func (p *pacer) observe(key string, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clusters[key] = struct{}{}
	if p.avg == 0 {
		p.avg = d
	} else {
		p.avg += (d - p.avg) / 16
	}
}

// forget drops a deleted cluster.
func (p *pacer) forget(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.clusters, key)
}

// interval returns the check interval to use instead of base, and whether
// it moved by more than a quarter since last reported (worth a log line).
func (p *pacer) interval(base time.Duration) (time.Duration, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := paceInterval(base, len(p.clusters), p.avg, p.workers)
	moved := d > base && (p.said == 0 || d > p.said*5/4 || d < p.said*3/4)
	if moved || d == base {
		p.said = d
		if d == base {
			p.said = 0
		}
	}
	return d, moved
}

// paceInterval is the check interval that keeps the periodic checks of
// clusters, each taking avg, within pacerOccupancy of the workers: at
// least base, at most pacerMax.
func paceInterval(base time.Duration, clusters int, avg time.Duration, workers int) time.Duration {
	need := time.Duration(float64(clusters) * float64(avg) / (float64(max(workers, 1)) * pacerOccupancy))
	return min(max(base, need), max(base, pacerMax))
}
