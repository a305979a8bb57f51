package instance

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instanceapi"
)

// TestLeaveWindow: only the primary of a cluster that fails over on
// Kubernetes stays after its final stop; the local runtime, replicas and
// single instances exit at once.
func TestLeaveWindow(t *testing.T) {
	for _, tc := range []struct {
		name                string
		primary, kubernetes bool
		selfFence           time.Duration
		want                time.Duration
	}{
		{"primary with replicas on Kubernetes", true, true, 3 * time.Second, LeaveWindow},
		{"replica", false, true, 3 * time.Second, 0},
		{"single instance (no self-fencing)", true, true, 0, 0},
		{"local runtime (no Lease)", true, false, 3 * time.Second, 0},
	} {
		if got := leaveWindow(tc.primary, tc.kubernetes, tc.selfFence); got != tc.want {
			t.Errorf("%s: leaveWindow = %v, want %v", tc.name, got, tc.want)
		}
	}
	// Long enough to cover kube-proxy's default minimum sync period (1 s)
	// after the operator's reaction; short next to a pod's grace period.
	if LeaveWindow < time.Second || LeaveWindow > 5*time.Second {
		t.Errorf("LeaveWindow %v", LeaveWindow)
	}
}

// TestDeletedPrimaryStaysToReportTheStop: told to stop for good (its pod
// deleted), the manager of a primary with replicas on Kubernetes reports
// postgres running until the postmaster has exited (its fast shutdown
// hands the standbys the last WAL first), then stopped, and returns only
// LeaveWindow later (its status server and address stay up meanwhile).
// The stand-in for postgres takes 400 ms to shut down.
func TestDeletedPrimaryStaysToReportTheStop(t *testing.T) {
	bin := t.TempDir()
	script := "#!/bin/sh\ntrap 'sleep 0.4; exit 0' INT\nwhile :; do sleep 0.05; done\n"
	if err := os.WriteFile(filepath.Join(bin, "postgres"), []byte(script), 0o700); err != nil { // #nosec G306 -- a test script
		t.Fatal(err)
	}
	pm, err := startPostgres(bin, t.TempDir(), "/dev/null", filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pm.Kill)
	time.Sleep(200 * time.Millisecond) // the trap is set
	m := &Manager{
		cfg:     &Config{Name: "c-1", ConfDir: t.TempDir(), Lease: &instanceapi.LeaseConfig{}},
		log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		contact: newContactTracker(time.Now()), selfFence: 3 * time.Second,
		pm: pm, primary: true, phase: PhaseRunning, cluster: &v1.Cluster{},
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- m.loop(ctx) }()
	var stoppedAt time.Duration
	for stoppedAt == 0 {
		select {
		case err := <-done:
			t.Fatalf("loop returned (%v) %v after the stop request, before postgres was reported stopped", err, time.Since(start))
		case <-time.After(20 * time.Millisecond):
		}
		running := m.Status(0).PostmasterRunning
		exited := !pm.Running()
		switch {
		case !running && !exited:
			t.Fatalf("postgres reported stopped %v after the stop request while it still shuts down", time.Since(start))
		case !running:
			stoppedAt = time.Since(start)
		}
	}
	if stoppedAt < 300*time.Millisecond {
		t.Errorf("postgres reported stopped after %v: the stand-in's shutdown takes 400 ms", stoppedAt)
	}
	select {
	case err := <-done:
		t.Fatalf("loop returned (%v) %v after the stop request, less than LeaveWindow after postgres stopped", err, time.Since(start))
	case <-time.After(LeaveWindow - 300*time.Millisecond):
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("loop: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("loop did not return after LeaveWindow")
	}
}
