package instance

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/pgward/pgward/api/v1"
)

func TestShutdownPlan(t *testing.T) {
	i32 := func(v int32) *int32 { return &v }
	for _, tc := range []struct {
		name string
		spec v1.ClusterSpec
		want string
	}{
		{"defaults: fast at once within pgward's 180 s", v1.ClusterSpec{},
			"fast until 2m57s, immediate until 2m59s, forced"},
		{"CloudNativePG's defaults", v1.ClusterSpec{MaxStopDelay: 1800, SmartShutdownTimeout: i32(180)},
			"smart until 3m0s, fast until 29m57s, immediate until 29m59s, forced"},
		{"the shortest smart phase allowed before stopDelay", v1.ClusterSpec{MaxStopDelay: 20, SmartShutdownTimeout: i32(5)},
			"smart until 5s, fast until 17s, immediate until 19s, forced"},
		{"smartShutdownTimeout 0: no smart phase", v1.ClusterSpec{MaxStopDelay: 30, SmartShutdownTimeout: i32(0)},
			"fast until 27s, immediate until 29s, forced"},
		{"the shortest stopDelay", v1.ClusterSpec{MaxStopDelay: 5},
			"fast until 2s, immediate until 4s, forced"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := describePlan(shutdownPlan(&tc.spec)); got != tc.want {
				t.Errorf("plan %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDemotePlan(t *testing.T) {
	if p := demotePlan(&v1.ClusterSpec{}); p != nil {
		t.Errorf("left out: %v, want the usual fast shutdown", p)
	}
	if got := describePlan(demotePlan(&v1.ClusterSpec{MaxSwitchoverDelay: 90})); got != "fast until 1m30s, immediate until 1m32s, forced" {
		t.Errorf("switchoverDelay 90: %q", got)
	}
}

// signalledProcess runs a shell standing in for postgres: it ignores the
// signals in ignore and exits on any other of TERM, INT, QUIT.
func signalledProcess(t *testing.T, ignore ...string) *postmaster {
	t.Helper()
	script := ""
	for _, sig := range []string{"TERM", "INT", "QUIT"} {
		action := "exit 0"
		for _, i := range ignore {
			if i == sig {
				action = ""
			}
		}
		script += fmt.Sprintf("trap '%s' %s; ", action, sig)
	}
	script += "while :; do sleep 0.02; done"
	cmd := exec.Command("sh", "-c", script) //nolint:noctx // stopped by signals, as postgres is
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &postmaster{cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	time.Sleep(100 * time.Millisecond) // the traps are set
	return p
}

// TestStopPlanned runs a plan against processes that ignore the first
// signals, as a server with sessions open ignores nothing but takes its
// time: each step comes at its moment and the next only if the process
// still runs.
func TestStopPlanned(t *testing.T) {
	steps := []stopStep{
		{Mode: "smart", Signal: syscall.SIGTERM, Until: 400 * time.Millisecond},
		{Mode: "fast", Signal: syscall.SIGINT, Until: 900 * time.Millisecond},
		{Mode: "immediate", Signal: syscall.SIGQUIT, Until: 1200 * time.Millisecond},
		{Mode: "forced", Signal: syscall.SIGKILL},
	}
	for _, tc := range []struct {
		name     string
		ignore   []string
		wantLast string
		min, max time.Duration
	}{
		{"smart shutdown completes", nil, "smart", 0, 300 * time.Millisecond},
		{"smart does not finish: fast after smartShutdownTimeout", []string{"TERM"}, "fast", 400 * time.Millisecond, 700 * time.Millisecond},
		{"fast hangs: immediate", []string{"TERM", "INT"}, "immediate", 900 * time.Millisecond, 1150 * time.Millisecond},
		{"nothing works: killed", []string{"TERM", "INT", "QUIT"}, "forced", 1200 * time.Millisecond, 1600 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pm := signalledProcess(t, tc.ignore...)
			var modes []string
			start := time.Now()
			pm.stopPlanned(start, steps, func(msg string, _ ...any) { modes = append(modes, msg) })
			took := time.Since(start)
			if pm.Running() {
				t.Fatal("still running")
			}
			last := modes[len(modes)-1]
			if !strings.Contains(last, tc.wantLast) || took < tc.min || took > tc.max {
				t.Errorf("steps %q in %s, want the last %s within [%s, %s]", modes, took, tc.wantLast, tc.min, tc.max)
			}
		})
	}
}

// TestStartDelayBoundsTheStart: a server that never accepts connections
// is given up after spec.startDelay, naming it.
func TestStartDelayBoundsTheStart(t *testing.T) {
	dir := t.TempDir()
	m := &Manager{
		cfg:     &Config{SocketDir: dir, Port: 5999, DataDir: dir, LogFile: dir + "/log"},
		cluster: &v1.Cluster{Spec: v1.ClusterSpec{MaxStartDelay: 1}},
		log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	pm := signalledProcess(t)
	start := time.Now()
	_, err := m.waitConnect(context.Background(), pm, "postgres")
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "within spec.startDelay (1s)") || took < time.Second || took > 4*time.Second {
		t.Fatalf("after %s: %v", took, err)
	}
}

func TestSlogLevel(t *testing.T) {
	t.Setenv("PGWARD_LOG_LEVEL", "")
	for level, want := range map[string]slog.Level{
		"": slog.LevelInfo, "info": slog.LevelInfo, "error": slog.LevelError, "warning": slog.LevelWarn,
		"debug": slog.LevelDebug, "trace": LevelTrace,
	} {
		if got := SlogLevel(&v1.ClusterSpec{LogLevel: level}); got != want {
			t.Errorf("logLevel %q: %v, want %v", level, got, want)
		}
	}
	t.Setenv("PGWARD_LOG_LEVEL", "debug")
	if got := SlogLevel(&v1.ClusterSpec{LogLevel: "error"}); got != slog.LevelDebug {
		t.Errorf("PGWARD_LOG_LEVEL=debug with logLevel error: %v", got)
	}
	if got := SlogLevel(&v1.ClusterSpec{LogLevel: "trace"}); got != LevelTrace {
		t.Errorf("PGWARD_LOG_LEVEL=debug with logLevel trace: %v", got)
	}
}
