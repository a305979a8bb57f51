package kube_test

import (
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/kube/build"
)

// TestSwitchoverMovesRWInOneChange: a switchover moves the read-write
// Service from the old primary to the new one in one update of the Service
// (its selector names the target instance), before any pod's role label
// changes. With the role label as the selector, the move took two pod
// patches, so two EndpointSlice updates, and kube-proxy applies the second
// only after its minimum sync period (1 s by default): on real pods -rw
// pointed at no primary, or also at the stopped old one, for up to a
// second of every switchover (docs/benchmarks.md).
func TestSwitchoverMovesRWInOneChange(t *testing.T) {
	ns := newNamespace(t, false)
	ctx := ctxFor(t)
	c := sampleCluster(t, ns)
	c.Name = "rt"
	h := newSimHarness(t, c, nil)
	h.until("healthy", func(c v1.Cluster) bool { return c.Status.CurrentPrimary == "rt-1" && c.Status.ReadyInstances == 3 })
	assertRW(t, ns, "rt", "rt-1")

	wc, err := client.NewWithWatch(adminCfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	type change struct {
		rv   int64
		what string
	}
	var (
		mu      sync.Mutex
		changes []change
		wg      sync.WaitGroup
	)
	collect := func(w watch.Interface) {
		defer wg.Done()
		for ev := range w.ResultChan() {
			obj, ok := ev.Object.(client.Object)
			if !ok || ev.Type != watch.Modified {
				continue
			}
			rv, _ := strconv.ParseInt(obj.GetResourceVersion(), 10, 64)
			var what string
			switch o := obj.(type) {
			case *corev1.Service:
				if o.Name != "rt-rw" {
					continue
				}
				what = "rw selects " + o.Spec.Selector[build.InstanceLabel] + " role=" + o.Spec.Selector[build.RoleLabel]
			case *corev1.Pod:
				what = o.Name + " labelled " + o.Labels[build.RoleLabel]
			}
			mu.Lock()
			changes = append(changes, change{rv, what})
			mu.Unlock()
		}
	}
	for _, l := range []client.ObjectList{&corev1.ServiceList{}, &corev1.PodList{}} {
		w, err := wc.Watch(ctx, l, client.InNamespace(ns))
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go collect(w)
		defer func() { w.Stop(); wg.Wait() }()
	}

	done := make(chan error, 1)
	go func() {
		done <- kube.RequestSwitchover(ctx, admin, client.ObjectKeyFromObject(c), "rt-3", time.Minute)
	}()
	h.until("switched over", func(c v1.Cluster) bool { return c.Status.CurrentPrimary == "rt-3" && c.Status.ReadyInstances == 3 })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the watches' last events
	mu.Lock()
	defer mu.Unlock()
	assertRW(t, ns, "rt", "rt-3")

	// In the API server's order (resource versions are etcd revisions).
	var rw []change
	firstLabel := int64(-1)
	for _, ch := range changes {
		switch {
		case len(ch.what) > 2 && ch.what[:2] == "rw":
			rw = append(rw, ch)
		case ch.what == "rt-1 labelled replica" || ch.what == "rt-3 labelled primary":
			if firstLabel < 0 || ch.rv < firstLabel {
				firstLabel = ch.rv
			}
		}
	}
	if len(rw) != 1 || rw[0].what != "rw selects rt-3 role=" {
		t.Fatalf("the read-write Service changed %d times, want once, from rt-1 to rt-3 directly: %+v", len(rw), rw)
	}
	if firstLabel < 0 {
		t.Fatalf("the pods' role labels did not move: %+v", changes)
	}
	if rw[0].rv > firstLabel {
		t.Errorf("the pods' role labels moved (revision %d) before the read-write Service (%d): the read-only Service's EndpointSlice change may reach kube-proxy first and hold the read-write one back a sync period", firstLabel, rw[0].rv)
	}
}
