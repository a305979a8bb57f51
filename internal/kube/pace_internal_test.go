package kube

import (
	"testing"
	"time"
)

func TestPaceInterval(t *testing.T) {
	for _, tc := range []struct {
		clusters, workers int
		avg, want         time.Duration
	}{
		{100, 4, 3 * time.Millisecond, 2 * time.Second},            // 0.15 s of work per 2 s: the base
		{1000, 4, 3 * time.Millisecond, 2 * time.Second},           // 1.5 s: still within half of 4 workers' 8 s
		{1000, 4, 25 * time.Millisecond, 12500 * time.Millisecond}, // a loaded machine: stretched
		{1000, 0, 25 * time.Millisecond, 50 * time.Second},         // no workers counts as one
		{100000, 4, 25 * time.Millisecond, time.Minute},            // bounded
		{0, 4, time.Second, 2 * time.Second},
	} {
		if got := paceInterval(2*time.Second, tc.clusters, tc.avg, tc.workers); got != tc.want {
			t.Errorf("%d clusters, %d workers, %v each: %v, want %v", tc.clusters, tc.workers, tc.avg, got, tc.want)
		}
	}
}

func TestPacer(t *testing.T) {
	p := newPacer(1)
	if d, moved := p.interval(2 * time.Second); d != 2*time.Second || moved {
		t.Fatalf("empty: %v %v", d, moved)
	}
	for i := range 100 {
		p.observe(string(rune('a'+i%26))+string(rune('a'+i/26)), 50*time.Millisecond)
	}
	d, moved := p.interval(2 * time.Second)
	if d != 10*time.Second || !moved {
		t.Fatalf("100 clusters of 50 ms on one worker: %v (moved %v), want 10s and a log line", d, moved)
	}
	if _, moved := p.interval(2 * time.Second); moved {
		t.Fatal("the same interval is reported twice")
	}
	for i := range 90 {
		p.forget(string(rune('a'+i%26)) + string(rune('a'+i/26)))
	}
	if d, _ := p.interval(2 * time.Second); d != 2*time.Second {
		t.Fatalf("10 clusters left: %v, want the base", d)
	}
}
