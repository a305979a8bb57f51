package kube

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instanceapi"
)

// InstanceWatcher is an InstanceClient that can also wait for an instance
// to change (instanceapi.PathWatch). MTLSInstances is one; simulated
// instances in tests need not be, and are then only polled.
type InstanceWatcher interface {
	// Watch returns the instance's digest once it differs from since ("":
	// at once), or after instanceapi.WatchWait.
	Watch(ctx context.Context, in Instance, since string) (string, error)
}

var _ InstanceWatcher = (*MTLSInstances)(nil)

// Watch implements InstanceWatcher.
func (m *MTLSInstances) Watch(ctx context.Context, in Instance, since string) (string, error) {
	c, err := m.client(in)
	if err != nil {
		return "", err
	}
	d, err := c.Watch(ctx, in.Addr, since)
	if err != nil {
		return "", fmt.Errorf("watch of %s: %w", in.Name, err)
	}
	return d, nil
}

// wakeups holds a long poll open to every instance the operator reached,
// and enqueues the instance's Cluster the moment the instance changes (its
// postmaster died, it shut down, it was promoted, a standby came or went)
// or stops answering a watch it answered before. Polling every
// CheckInterval stays the floor (a frozen instance changes nothing and a
// watch cannot see it); the wake-ups take the 0-2 s of waiting for the
// next check out of a failover and out of each step of a switchover,
// without polling faster: an idle instance costs one request every
// WatchWait.
//
// It runs as a manager Runnable, so only the leader watches, and every
// watch ends with the manager.
type wakeups struct {
	watcher InstanceWatcher
	timeout time.Duration // beyond WatchWait, for the request itself
	retry   time.Duration // after a failed watch
	events  chan event.GenericEvent

	mu      sync.Mutex
	base    context.Context // nil until Start
	watches map[types.NamespacedName]map[string]watchHandle
}

type watchHandle struct {
	addr   string
	fp     [32]byte
	cancel context.CancelFunc
}

func newWakeups(w InstanceWatcher, timeout time.Duration) *wakeups {
	return &wakeups{
		watcher: w,
		timeout: timeout,
		retry:   time.Second,
		// A full buffer drops wake-ups, never blocks a watch: the Cluster
		// is already queued or polled within CheckInterval.
		events:  make(chan event.GenericEvent, 1024),
		watches: map[types.NamespacedName]map[string]watchHandle{},
	}
}

// Start implements manager.Runnable: watches run until ctx ends.
func (w *wakeups) Start(ctx context.Context) error {
	w.mu.Lock()
	w.base = ctx
	w.mu.Unlock()
	<-ctx.Done()
	w.mu.Lock()
	defer w.mu.Unlock()
	for key := range w.watches {
		w.stopLocked(key)
	}
	return nil
}

// track makes the watched instances of cluster exactly ins (those with an
// address and TLS material): new ones start, gone or changed ones stop.
func (w *wakeups) track(cluster types.NamespacedName, ins []Instance) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.base == nil || w.base.Err() != nil {
		return // not started (or stopping): the next reconcile tracks again
	}
	cur := w.watches[cluster]
	if cur == nil {
		cur = map[string]watchHandle{}
		w.watches[cluster] = cur
	}
	keep := map[string]bool{}
	for _, in := range ins {
		if in.Addr == "" || in.TLS == nil {
			continue
		}
		keep[in.Name] = true
		fp := in.TLS.fingerprint()
		if h, ok := cur[in.Name]; ok && h.addr == in.Addr && h.fp == fp {
			continue
		} else if ok {
			h.cancel()
		}
		ctx, cancel := context.WithCancel(w.base)
		cur[in.Name] = watchHandle{addr: in.Addr, fp: fp, cancel: cancel}
		go w.run(ctx, cluster, in)
	}
	for name, h := range cur {
		if !keep[name] {
			h.cancel()
			delete(cur, name)
		}
	}
}

// forget stops the watches of a Cluster that is gone.
func (w *wakeups) forget(cluster types.NamespacedName) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopLocked(cluster)
}

func (w *wakeups) stopLocked(cluster types.NamespacedName) {
	for _, h := range w.watches[cluster] {
		h.cancel()
	}
	delete(w.watches, cluster)
}

func (w *wakeups) run(ctx context.Context, cluster types.NamespacedName, in Instance) {
	// failed: the watch has failed since it last answered (or since it
	// started): its first answer after that wakes the Cluster, since the
	// planner may be waiting for this instance to answer at all (a new
	// pod's manager starting) and holds alone are looked at only every
	// CheckInterval.
	since, answering, failed := "", false, false
	for ctx.Err() == nil {
		wctx, cancel := context.WithTimeout(ctx, instanceapi.WatchWait+w.timeout)
		d, err := w.watcher.Watch(wctx, in, since)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if answering {
				w.wake(cluster) // it stopped answering: worth a look now
			}
			answering, failed = false, true
			select {
			case <-ctx.Done():
			case <-time.After(w.retry):
			}
			continue
		}
		if (since != "" && d != since) || failed {
			w.wake(cluster)
		}
		since, answering, failed = d, true, false
	}
}

func (w *wakeups) wake(cluster types.NamespacedName) {
	obj := &v1.Cluster{}
	obj.Namespace, obj.Name = cluster.Namespace, cluster.Name
	select {
	case w.events <- event.GenericEvent{Object: client.Object(obj)}:
	default:
	}
}
