package instance

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgward/pgward/internal/instanceapi"
)

func TestWaitForChange(t *testing.T) {
	var running atomic.Bool
	running.Store(true)
	peek := func() instanceapi.Status {
		return instanceapi.Status{Name: "c-1", Role: instanceapi.RolePrimary, PostmasterRunning: running.Load()}
	}
	first := peek()
	healthy := first.Digest()
	ctx := context.Background()

	start := time.Now()
	if d := waitForChange(ctx, peek, "", time.Minute, time.Millisecond); d != healthy {
		t.Fatalf("a first watch answers the current digest at once: got %s", d)
	}
	if time.Since(start) > time.Second {
		t.Fatal("a first watch waited")
	}

	start = time.Now()
	if d := waitForChange(ctx, peek, healthy, 100*time.Millisecond, 5*time.Millisecond); d != healthy {
		t.Fatalf("nothing changed: got %s", d)
	}
	if el := time.Since(start); el < 100*time.Millisecond {
		t.Fatalf("an unchanged instance answered after %s, before the wait", el)
	}

	go func() {
		time.Sleep(50 * time.Millisecond)
		running.Store(false)
	}()
	start = time.Now()
	d := waitForChange(ctx, peek, healthy, time.Minute, 5*time.Millisecond)
	if d == healthy {
		t.Fatal("the postmaster's death did not change the digest")
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("the change was answered after %s", el)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if d := waitForChange(cctx, peek, d, time.Minute, 5*time.Millisecond); d == "" {
		t.Fatal("a cancelled watch answered nothing")
	}
}
