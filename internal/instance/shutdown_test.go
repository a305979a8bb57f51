package instance

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
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
			pm.stopPlanned(start, steps, func(msg string, _ ...any) { modes = append(modes, msg) }, nil)
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

func TestCutArchiver(t *testing.T) {
	const grace = 10 * time.Second
	for _, tc := range []struct {
		name     string
		p        stopProgress
		cleanFor time.Duration
		grace    time.Duration
		want     bool
	}{
		{"checkpoint not written yet", stopProgress{Children: []string{"archiver"}}, time.Minute, 0, false},
		{"only the archiver left, the store took the last segment: its grace first", stopProgress{Clean: true, Children: []string{"archiver"}}, 3 * time.Second, grace, false},
		{"only the archiver left, past its grace", stopProgress{Clean: true, Children: []string{"archiver"}}, grace, grace, true},
		{"only the archiver left, the store did not answer: no grace", stopProgress{Clean: true, Children: []string{"archiver"}}, 0, 0, true},
		{"a walsender still hands a standby the shutdown checkpoint", stopProgress{Clean: true, Children: []string{"archiver", "walsender"}}, time.Minute, 0, false},
		{"a walsender without an archiver", stopProgress{Clean: true, Children: []string{"walsender"}}, time.Minute, 0, false},
		{"the checkpointer has not exited yet", stopProgress{Clean: true, Children: []string{"archiver", "checkpointer"}}, time.Minute, 0, false},
		{"children unknown", stopProgress{Clean: true, Children: []string{"unknown"}}, time.Minute, 0, false},
		{"nothing left: the postmaster exits by itself", stopProgress{Clean: true}, time.Minute, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := cutArchiver(tc.p, tc.cleanFor, tc.grace); got != tc.want {
				t.Errorf("cutArchiver(%+v, %s, %s) = %v, want %v", tc.p, tc.cleanFor, tc.grace, got, tc.want)
			}
		})
	}
}

func TestProcessKind(t *testing.T) {
	for cmdline, want := range map[string]string{
		"postgres: origin-1: archiver last was 000000010000000000000003\x00\x00\x00":               "archiver",
		"postgres: origin-1: archiver archiving 000000010000000000000004":                          "archiver",
		"postgres: origin-1: walsender streaming_replica 10.244.0.7(41234) streaming 0/5000060   ": "walsender",
		"postgres: checkpointer ":          "checkpointer",
		"postgres: walsender-1: archiver ": "archiver",
		"postgres: archiver-1: walsender streaming_replica [local] streaming 0/5000060": "walsender",
		"/usr/lib/postgresql/15/bin/postgres\x00-D\x00/var/lib/postgresql/data\x00":     "other",
		"sh\x00-c\x00pgbackrest archive-push pg_wal/000000010000000000000004\x00":       "other",
		"": "other",
	} {
		if got := processKind(cmdline); got != want {
			t.Errorf("processKind(%q) = %q, want %q", cmdline, got, want)
		}
	}
}

func TestStatParent(t *testing.T) {
	for stat, want := range map[string]int{
		"4242 (postgres) S 4200 4242 4242 0 -1 4194560 ...": 4200,
		"77 (a) b (c)) R 1 77 77 0":                         1,
	} {
		if got, ok := statParent(stat); !ok || got != want {
			t.Errorf("statParent(%q) = %d %v, want %d", stat, got, ok, want)
		}
	}
	if _, ok := statParent("garbage"); ok {
		t.Error("statParent accepted a line without a command name")
	}
}

// TestPostgresChildren reads a process table laid out as /proc is.
func TestPostgresChildren(t *testing.T) {
	proc := t.TempDir()
	for _, p := range []struct {
		pid, ppid int
		title     string
	}{
		{100, 1, "/usr/lib/postgresql/15/bin/postgres\x00-D\x00/data\x00"},
		{101, 100, "postgres: c-1: archiver failed on 000000010000000000000002"},
		{102, 100, "postgres: c-1: walsender streaming_replica 10.0.0.2(5000) streaming 0/3000000"},
		{103, 101, "sh\x00-c\x00pgbackrest archive-push\x00"},
		{104, 7, "postgres: other-1: walsender x"},
	} {
		dir := fmt.Sprintf("%s/%d", proc, p.pid)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		stat := fmt.Sprintf("%d (postgres) S %d %d %d 0", p.pid, p.ppid, p.pid, p.pid)
		if err := os.WriteFile(dir+"/stat", []byte(stat), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dir+"/cmdline", []byte(p.title), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(proc+"/self", 0o700); err != nil {
		t.Fatal(err)
	}
	got, err := postgresChildren(proc, 100)
	if err != nil || strings.Join(got, ",") != "archiver,walsender" {
		t.Errorf("children of 100: %q %v, want archiver and walsender", got, err)
	}
}

// TestStopPlannedCutsTheArchiver: a postmaster that ignores the fast
// shutdown's SIGINT, as one whose archiver retries an unreachable store
// does, is stopped by the immediate step once the probe says only the
// archiver is left, after its grace, instead of at the fast step's end.
// Without the watch the stop takes the fast step's whole 3 s here (on
// pods: stopDelay - 3 s, 177 s by default).
func TestStopPlannedCutsTheArchiver(t *testing.T) {
	steps := []stopStep{
		{Mode: "fast", Signal: syscall.SIGINT, Until: 3 * time.Second},
		{Mode: "immediate", Signal: syscall.SIGQUIT, Until: 4 * time.Second},
		{Mode: "forced", Signal: syscall.SIGKILL},
	}
	for _, tc := range []struct {
		name     string
		probe    func(since time.Duration) stopProgress
		grace    time.Duration
		min, max time.Duration
		wantLast string
	}{
		{"the store did not take the last segment: immediate once the checkpoint is written",
			func(since time.Duration) stopProgress {
				if since < 300*time.Millisecond {
					return stopProgress{}
				}
				return stopProgress{Clean: true, Children: []string{"archiver"}}
			}, 0, 250 * time.Millisecond, 900 * time.Millisecond, "immediate"},
		{"the store took it: the archiver's grace, then immediate",
			func(time.Duration) stopProgress { return stopProgress{Clean: true, Children: []string{"archiver"}} },
			time.Second, time.Second, 1700 * time.Millisecond, "immediate"},
		{"a walsender is still sending: the plan's own times",
			func(time.Duration) stopProgress {
				return stopProgress{Clean: true, Children: []string{"archiver", "walsender"}}
			}, 0, 3 * time.Second, 3500 * time.Millisecond, "immediate"},
		{"never clean: the plan's own times",
			func(time.Duration) stopProgress { return stopProgress{} }, 0, 3 * time.Second, 3500 * time.Millisecond, "immediate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pm := signalledProcess(t, "INT")
			var msgs []string
			start := time.Now()
			w := &stopWatch{probe: func() stopProgress { return tc.probe(time.Since(start)) }, grace: tc.grace, every: 50 * time.Millisecond}
			pm.stopPlanned(start, steps, func(msg string, _ ...any) { msgs = append(msgs, msg) }, w)
			took := time.Since(start)
			if pm.Running() {
				t.Fatal("still running")
			}
			if last := msgs[len(msgs)-1]; !strings.Contains(last, tc.wantLast) || took < tc.min || took > tc.max {
				t.Errorf("steps %q in %s, want the last %s within [%s, %s]", msgs, took, tc.wantLast, tc.min, tc.max)
			}
		})
	}
}

func TestParseControlState(t *testing.T) {
	const ok = "pg_control version number:            1300\nDatabase cluster state:               shut down\nLatest checkpoint location:           0/3000028\n"
	if got, err := parseControlState(ok); err != nil || got != "shut down" {
		t.Errorf("clean: %q %v", got, err)
	}
	if got, err := parseControlState("Database cluster state:               in production\n"); err != nil || got != "in production" {
		t.Errorf("running: %q %v", got, err)
	}
	torn := "WARNING: Calculated CRC checksum does not match value stored in file.\nEither the file is corrupt, or it has a different layout than this program\n" + ok
	if got, err := parseControlState(torn); err == nil {
		t.Errorf("a torn pg_control read counted: %q", got)
	}
	if _, err := parseControlState("nothing"); err == nil {
		t.Error("no state accepted")
	}
}
