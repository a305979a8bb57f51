package instance

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func newWatch(t *testing.T, command ...string) (*supervisorWatch, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := &Supervisor{
		Command: command, PidFile: filepath.Join(dir, "controller.pid"), StopFile: filepath.Join(dir, "stopping"),
		LogFile: filepath.Join(dir, "controller.log"), OrphanAfter: time.Minute,
	}
	return newSupervisorWatch(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))), dir
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 5s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// With no controller running, a manager starts one, then backs off instead
// of starting one per check; during a stop it starts nothing; alone for
// longer than OrphanAfter, it gives up.
func TestSupervisorStartsAMissingController(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "starts")
	w, dir := newWatch(t, "/bin/sh", "-c", "echo start >> "+marker)
	starts := func() int {
		b, _ := os.ReadFile(marker)
		return strings.Count(string(b), "start")
	}
	now := time.Now()
	if err := os.WriteFile(filepath.Join(dir, "stopping"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := w.check(now, time.Hour); err != nil || starts() != 0 {
		t.Fatalf("during a stop: %v, %d starts", err, starts())
	}
	if err := os.Remove(filepath.Join(dir, "stopping")); err != nil {
		t.Fatal(err)
	}
	if err := w.check(now, time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a controller started", func() bool { return starts() == 1 })
	if err := w.check(now.Add(500*time.Millisecond), time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if n := starts(); n != 1 {
		t.Fatalf("%d starts within the backoff", n)
	}
	if err := w.check(now.Add(2*time.Second), time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a second start after the backoff", func() bool { return starts() == 2 })
	if err := w.check(now.Add(time.Hour), 2*time.Minute); !errors.Is(err, errOrphaned) {
		t.Fatalf("alone for 2 minutes: %v, want errOrphaned", err)
	}
}

// A controller that is running is left alone; one that stays stopped
// (SIGSTOP) for a second is killed so that another can take over; a pid
// file naming another program is not trusted.
func TestSupervisorKillsAFrozenController(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	w, dir := newWatch(t, sleep, "30")
	cmd := exec.CommandContext(context.Background(), sleep, "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	defer func() { _ = cmd.Process.Kill() }()
	if err := os.WriteFile(filepath.Join(dir, "controller.pid"), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the fake controller running", func() bool { pid, _ := w.controller(); return pid == cmd.Process.Pid })
	now := time.Now()
	if err := w.check(now, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(cmd.Process.Pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the fake controller stopped", func() bool { return ProcState(cmd.Process.Pid) == 'T' })
	if err := w.check(now.Add(100*time.Millisecond), time.Second); err != nil {
		t.Fatal(err)
	}
	if err := w.check(now.Add(600*time.Millisecond), time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
		t.Fatal("killed a controller stopped for less than a second")
	case <-time.After(100 * time.Millisecond):
	}
	if err := w.check(now.Add(1200*time.Millisecond), time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a controller stopped for over a second was not killed")
	}

	// A pid file naming a process that is not the controller command.
	other := exec.CommandContext(context.Background(), sleep, "31")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = other.Process.Kill(); _ = other.Wait() }()
	if err := os.WriteFile(filepath.Join(dir, "controller.pid"), []byte(strconv.Itoa(other.Process.Pid)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if pid, _ := w.controller(); pid != 0 {
		t.Fatalf("pid %d of another program taken for the controller", pid)
	}
}
