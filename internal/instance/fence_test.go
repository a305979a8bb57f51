package instance

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fakePostmaster runs a stand-in for postgres (a shell sleeping), so that
// checkSelfFence's stop can be seen without a server.
func fakePostmaster(t *testing.T) *postmaster {
	t.Helper()
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "postgres"), []byte("#!/bin/sh\nexec sleep 60\n"), 0o700); err != nil { // #nosec G306 -- a test script
		t.Fatal(err)
	}
	pm, err := startPostgres(bin, t.TempDir(), "/dev/null", filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pm.Kill)
	return pm
}

// TestCheckSelfFence: a primary out of contact with the controller for
// longer than its bound stops at once and stays fenced across a restart
// of its manager; one in contact, a replica, or a single instance (no
// bound) runs on.
func TestCheckSelfFence(t *testing.T) {
	for _, c := range []struct {
		name      string
		primary   bool
		bound     time.Duration
		away      time.Duration
		wantFence bool
	}{
		{"primary out of contact past the bound", true, time.Second, 1500 * time.Millisecond, true},
		{"primary in contact", true, time.Second, 200 * time.Millisecond, false},
		{"replica out of contact", false, time.Second, time.Hour, false},
		{"single instance (no bound)", true, 0, time.Hour, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			conf := t.TempDir()
			pm := fakePostmaster(t)
			m := &Manager{
				cfg: &Config{Name: "c-1", ConfDir: conf}, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
				contact: newContactTracker(time.Now().Add(-c.away)), selfFence: c.bound,
				pm: pm, primary: c.primary, phase: PhaseRunning,
			}
			m.checkSelfFence()
			select {
			case <-pm.Done():
				if !c.wantFence {
					t.Fatal("postgres stopped")
				}
			case <-time.After(2 * time.Second):
				if c.wantFence {
					t.Fatal("postgres still runs")
				}
				return
			}
			st, err := loadPersisted(conf, Endpoint{})
			if err != nil || !st.Fenced {
				t.Errorf("fence not persisted (a restarted manager would start writing): %+v %v", st, err)
			}
			if m.phase != PhaseFenced {
				t.Errorf("phase %s", m.phase)
			}
		})
	}
}
