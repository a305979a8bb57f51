package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instance"
	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/pki"
)

// UpOptions configure `pgward local up`.
type UpOptions struct {
	Dir      string
	Manifest []byte
	// RunAs is the OS user instances run as when pgward runs as root.
	RunAs string
	// Secrets are the Secrets the manifest file carried beside the
	// Cluster (see SplitManifest); they are written into the state
	// directory, replacing same-named ones.
	Secrets SecretDocs
	// ConfigMaps are the file's ConfigMaps, by name: bootstrap.initdb's
	// SQL references and spec.monitoring's custom queries read them (the
	// queries' are kept in the state directory's configmaps/).
	ConfigMaps SecretDocs
	// Databases are the file's Database documents (DatabaseDocs).
	Databases []*v1.Database
	// PGBinDir overrides PostgreSQL's bin directory discovery.
	PGBinDir string
	// Timeout bounds the wait for every instance to be ready.
	Timeout time.Duration
	HA      HAOptions
	Out     io.Writer
}

// HAOptions override the failure-detection settings; zero keeps the
// stored (or default) value.
type HAOptions struct {
	UnreachableTimeout time.Duration
	SelfFence          time.Duration
}

// Up prepares the state directory, starts the controller if it is not
// running yet, and returns once every instance is ready and every replica
// streams from the primary.
func Up(ctx context.Context, o UpOptions) error {
	l := Layout{Dir: o.Dir}
	say := func(s string) { _, _ = fmt.Fprintln(o.Out, s) }
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Minute
	}
	// A manifest that is refused creates nothing, not even the directory.
	c, err := v1.LoadAndValidate(o.Manifest)
	if err != nil {
		return err
	}
	owner, err := currentOwner(o.RunAs)
	if err != nil {
		return err
	}
	// What only PostgreSQL can check (a time zone, a locale) fails here,
	// naming the field, before the directory exists or a live cluster's
	// manifest is replaced.
	if err := Preflight(ctx, c, o.Secrets, o.ConfigMaps, o.Dir, o.PGBinDir, owner); err != nil {
		return err
	}
	if err := ClaimDir(l.Dir, owner); err != nil {
		return err
	}
	p, exited, err := prepareAndStart(ctx, l, o, c, say)
	if err != nil {
		return err
	}
	if err := waitReady(ctx, l, p, o.Timeout, exited, say); err != nil {
		return err
	}
	if exited == nil {
		// The controller was already running: the instances would read
		// the new manifest at their next check (up to 10 s later), and
		// `up` would return before it took effect. Apply it now and say
		// what did, as `pgward local reload` does.
		if err := Reload(ctx, ReloadOptions{Dir: l.Dir, Timeout: o.Timeout, Out: o.Out}); err != nil {
			return fmt.Errorf("applying the manifest to the running cluster: %w", err)
		}
	}
	say("")
	head := "primary"
	if p.cluster.IsReplica() {
		head = "designated primary"
	}
	say(fmt.Sprintf("cluster %q is up: %d instance(s), %s %s", p.cluster.Name, p.cluster.Spec.Instances, head, targetPrimary(l, p.state)))
	if note := replicaNote(p.cluster); note != "" {
		say(note)
	}
	if _, ok := p.cluster.Annotations[v1.RestartAnnotation]; ok {
		say("note: the " + v1.RestartAnnotation + " annotation is a request to the Kubernetes operator; locally, pgward local restart does it")
	}
	if _, ok := p.cluster.Annotations[v1.ReloadAnnotation]; ok {
		say("note: the " + v1.ReloadAnnotation + " annotation is a request to the Kubernetes operator; locally, pgward local reload does it")
	}
	if sc := p.cluster.Spec.StorageConfiguration.StorageClass; sc != nil {
		say(fmt.Sprintf("note: spec.storage.storageClass %q applies on Kubernetes; locally the data is in %s", *sc, filepath.Join(l.Dir, "instances")))
	}
	for _, t := range p.cluster.Spec.Tablespaces {
		if t.Storage.StorageClass != nil || t.Storage.Size != "" {
			say(fmt.Sprintf("note: spec.tablespaces %s: storage applies on Kubernetes; locally the tablespace is in instances/<instance>/tablespaces/%s/data, without a size limit", t.Name, t.Name))
		}
	}
	if d := p.cluster.Spec.Description; d != "" {
		say("description: " + d) // validated: no control characters
	}
	for _, n := range append(podShapeNotes(p.cluster), kubernetesOnlyNotes(p.cluster, p.state.PGBinDir)...) {
		say(n)
	}
	if bound, err := fenceTiming(p.state.HA).Bound(); err == nil && p.cluster.Spec.Instances > 1 {
		say(fmt.Sprintf("failover: at once when a primary's postmaster dies; an unreachable primary is replaced after %s (it fences itself after %s without the controller)",
			bound.Round(100*time.Millisecond), p.state.HA.SelfFence.Duration))
	}
	say("connect as the application owner (verify-full TLS, password from the generated pgpass):")
	say(fmt.Sprintf("  psql \"$(pgward local uri %s --dir %s)\"", p.cluster.Spec.Bootstrap.Application().Owner, l.Dir))
	say(fmt.Sprintf("status: pgward local status --dir %s    stop: pgward local down --dir %s", l.Dir, l.Dir))
	say(fmt.Sprintf("metrics (TLS 1.3; client certificate %s, CN %s):", filepath.Join(l.SecretsDir(), p.tls.Metrics), pki.MetricsCommonName))
	for _, is := range p.state.Instances[:p.cluster.Spec.Instances] {
		say(fmt.Sprintf("  %s  %s", is.Name, MetricsURL(is)))
	}
	say(fmt.Sprintf("scrape once: pgward local metrics --dir %s [INSTANCE]", l.Dir))
	return nil
}

// prepareAndStart does, under the up/down lock, everything `up` writes:
// the state directory's contents and the controller's start.
func prepareAndStart(ctx context.Context, l Layout, o UpOptions, c *v1.Cluster, say func(string)) (*prepared, <-chan struct{}, error) {
	lctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	unlock, err := lockUp(lctx, l, say)
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	running := controllerRunning(l)
	if running {
		if err := checkLiveChange(l, c); err != nil {
			return nil, nil, err
		}
	}
	p, err := prepare(l, o.Manifest, c, o.Secrets, o.ConfigMaps, o.Databases, o.RunAs, o.PGBinDir, o.HA, say)
	if err != nil {
		return nil, nil, err
	}
	say(fmt.Sprintf("state directory %s (owner %s, mode 0700)", l.Dir, p.user.Name))
	if running {
		say("controller already running; the instances apply the new manifest now")
		return p, nil, nil
	}
	// A stop that finished (or was interrupted) left its mark: this run
	// wants the managers to keep a controller alive again.
	if err := os.Remove(l.StopFile()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, err
	}
	exited, err := startController(l)
	if err != nil {
		return nil, nil, err
	}
	say("controller started (log: " + l.ControllerLog() + ")")
	return p, exited, nil
}

// checkLiveChange refuses manifest changes a running cluster cannot take:
// the controller's plan (instances, synchronous replication, failover
// delay) is fixed while it runs. Everything else (parameters, pg_hba,
// pg_ident) the instance managers reload.
func checkLiveChange(l Layout, next *v1.Cluster) error {
	old, err := os.ReadFile(l.ClusterFile())
	if err != nil {
		return nil // nothing stored yet: prepare reports what is wrong
	}
	prev, err := v1.LoadAndValidate(old)
	if err != nil {
		return nil // prepare reports the stored manifest's errors
	}
	type planned struct {
		instances, minSync, maxSync int
		method                      string
		delay                       int32
		// switchoverDelay is the instances' and the planner's: both must
		// take a change at once.
		switchover int32
	}
	of := func(s *v1.ClusterSpec) planned {
		lo, hi, m := s.SyncBounds()
		return planned{s.Instances, lo, hi, m, s.FailoverDelay, s.MaxSwitchoverDelay}
	}
	if of(&prev.Spec) != of(&next.Spec) {
		return fmt.Errorf("instances, synchronous replication, failoverDelay and switchoverDelay cannot change while the cluster runs: run `pgward local down --dir %s`, then `up` again (data is kept)", l.Dir)
	}
	return nil
}

// startController launches `pgward local controller` detached in its own
// session, with its output in the controller log. The returned channel
// closes if it exits while we are still waiting on it.
func startController(l Layout) (<-chan struct{}, error) {
	logf, err := os.OpenFile(l.ControllerLog(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer func() { _ = logf.Close() }()
	// The controller outlives this command, so no context may end it.
	argv := l.ControllerCommand()
	cmd := exec.Command(argv[0], argv[1:]...) //nolint:noctx // see above
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = l.Dir
	cmd.Env = minimalEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the controller: %w", err)
	}
	// The controller outlives us (it is re-parented when we exit); until
	// then we reap it if it dies, and say so.
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	return exited, nil
}

// waitReady polls the instances until the cluster is fully up, printing
// each instance's progress as it changes.
func waitReady(ctx context.Context, l Layout, p *prepared, timeout time.Duration, exited <-chan struct{}, say func(string)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cl, err := newStatusClient(l, p.cluster.Name, 2*time.Second)
	if err != nil {
		return err
	}
	defer cl.CloseIdle()
	last := map[string]string{}
	refusing := map[string]refusal{}
	// Instances fenced on request (the manifest's annotations or an
	// earlier `pgward local fence`/`hibernate`) are up once down.
	fenced, hibernate, err := applyFencing(l, p.cluster.DeepCopy())
	if err != nil {
		return err
	}
	down := fencedSet(fencingRequest{FencedInstances: fenced, Hibernation: map[bool]string{true: "on"}[hibernate]})
	anyDown := hibernate || len(fenced) > 0
	startupCheck, readinessCheck := streamingChecks(p.cluster)
	for {
		sts, _ := observe(ctx, cl, p.state)
		target := targetPrimary(l, p.state)
		done := true
		for i, is := range p.state.Instances[:p.cluster.Spec.Instances] {
			line := progressLine(sts[i], target == is.Name)
			if sts[i] != nil && sts[i].Ready {
				// Not the reason itself: a lag in bytes changes every
				// poll, and each change would print a line.
				if passStreaming(sts[i], startupCheck, readinessCheck) != nil {
					line += " (waiting for the streaming check of spec.probes)"
				}
			}
			if line != last[is.Name] {
				say(fmt.Sprintf("  %-24s %s", is.Name, line))
				last[is.Name] = line
			}
			if err := backupBootstrapError(sts[i]); err != nil {
				return fmt.Errorf("instance %s cannot bootstrap: %w", is.Name, err)
			}
			if err := refusing[is.Name].update(sts[i], time.Now()); err != nil {
				return fmt.Errorf("instance %s cannot start: %w", is.Name, explainStartFailure(p.cluster, err))
			}
			refusing[is.Name] = refusing[is.Name].next(sts[i], time.Now())
			switch {
			case anyDown && down(is.Name):
				if sts[i] == nil || sts[i].PostmasterRunning {
					done = false
				}
			case anyDown:
				// With another instance down on request, a replica may
				// have no primary to stream from: running is enough.
				if sts[i] == nil || !sts[i].PostmasterRunning {
					done = false
				}
			case !instanceUp(sts[i], target == is.Name, sts, p.state, target) && !designatedUp(p.cluster, sts[i], target == is.Name):
				done = false
			case passStreaming(sts[i], startupCheck, readinessCheck) != nil:
				// probes.*.type streaming: up waits as the kubelet would.
				done = false
			}
			if sts[i] == nil {
				if why, ok := crashLooping(l, is.Name); ok {
					return fmt.Errorf("instance %s cannot start: %s", is.Name, why)
				}
			}
		}
		if done {
			return nil
		}
		select {
		case <-exited:
			if _, err := os.Stat(l.StopFile()); err == nil {
				return errors.New("the cluster was stopped (`pgward local down`) while `up` waited for it")
			}
			// Another controller (started by an instance manager) may have
			// taken over; only a cluster without one is a failure.
			if controllerRunning(l) {
				exited = nil
				continue
			}
			return fmt.Errorf("the controller exited; see %s:\n%s", l.ControllerLog(), tail(l.ControllerLog(), 20))
		case <-ctx.Done():
			return fmt.Errorf("cluster not ready after %s; instance logs are in %s/instances/*/: %w", timeout, l.Dir, ctx.Err())
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// backupBootstrapError returns a bootstrap's failure about the object
// store, the recovery, an import or the SQL references: a wrong field
// stays wrong however often the controller retries, so `up` reports it at
// once.
func backupBootstrapError(st *instanceapi.Status) error {
	if st == nil || !strings.HasPrefix(st.Error, instanceapi.CommandBootstrap+": ") {
		return nil
	}
	for _, f := range []string{"spec.backup", "spec.bootstrap.recovery", "spec.externalClusters", "pgbackrest", "recovery:",
		"spec.bootstrap.initdb.import", "SQLRefs"} {
		if strings.Contains(st.Error, f) {
			return errors.New(strings.TrimPrefix(st.Error, instanceapi.CommandBootstrap+": "))
		}
	}
	return nil
}

// startRefusedFor is how long the server may keep refusing to start with
// the same message before `up` gives up: long enough for the manager's
// backoff to have tried several times (200 ms, 400 ms, 800 ms, 1.6 s,
// 3.2 s), far shorter than a timeout.
const startRefusedFor = 8 * time.Second

// refusal tracks one instance's latest failure to start PostgreSQL.
type refusal struct {
	msg   string
	since time.Time
}

// serverRefusal returns the server's own message when st says postgres
// exited while starting, or "".
func serverRefusal(st *instanceapi.Status) string {
	if st == nil || !strings.Contains(st.Error, "postgres exited while starting") {
		return ""
	}
	if i := strings.Index(st.Error, "FATAL:"); i >= 0 {
		msg := st.Error[i:]
		if j := strings.Index(msg, " (see "); j >= 0 {
			msg = msg[:j]
		}
		return msg
	}
	return ""
}

// next records what st says now.
func (r refusal) next(st *instanceapi.Status, now time.Time) refusal {
	msg := serverRefusal(st)
	switch {
	case msg == "":
		return refusal{}
	case msg != r.msg:
		return refusal{msg: msg, since: now}
	}
	return r
}

// update returns the server's message once it has refused to start with
// it for startRefusedFor.
func (r refusal) update(st *instanceapi.Status, now time.Time) error {
	if r.msg != "" && serverRefusal(st) == r.msg && now.Sub(r.since) >= startRefusedFor {
		return errors.New(r.msg)
	}
	return nil
}

// explainStartFailure names the manifest's fields a start failure is
// about: a parameter the message names, or the memory settings the
// manifest sets when shared memory could not be had.
func explainStartFailure(c *v1.Cluster, err error) error {
	msg := err.Error()
	params := c.Spec.PostgresConfiguration.Parameters
	var fields []string
	for name := range params {
		if strings.Contains(strings.ToLower(msg), `"`+strings.ToLower(name)+`"`) {
			fields = append(fields, fmt.Sprintf("spec.postgresql.parameters[%s]", name))
		}
	}
	if len(fields) == 0 && strings.Contains(msg, "shared memory") {
		for _, name := range []string{"shared_buffers", "max_connections", "max_locks_per_transaction", "max_pred_locks_per_transaction",
			"max_prepared_transactions", "max_wal_senders", "max_worker_processes", "wal_buffers", "huge_pages", "min_dynamic_shared_memory"} {
			if _, ok := params[name]; ok {
				fields = append(fields, fmt.Sprintf("spec.postgresql.parameters[%s]", name))
			}
		}
	}
	sort.Strings(fields)
	if len(fields) == 0 {
		return fmt.Errorf("PostgreSQL refuses to start: %s", msg)
	}
	return fmt.Errorf("%s: PostgreSQL refuses to start: %s", strings.Join(fields, ", "), msg)
}

func progressLine(st *instanceapi.Status, primary bool) string {
	switch {
	case st == nil:
		return "starting the instance manager"
	case st.Phase == "waiting":
		return "instance manager up, waiting for the controller"
	case st.Phase == "initdb":
		return "initdb (new cluster, data checksums, scram-sha-256)"
	case st.Phase == "basebackup":
		return "cloning the primary (pg_basebackup over TLS as streaming_replica)"
	case st.Phase == "stanza-create":
		return "creating the cluster's place in the object store (pgBackRest stanza)"
	case st.Phase == "clone":
		return "cloning the source cluster (pg_basebackup over verified TLS)"
	case st.Phase == "restore":
		return "restoring a base backup from the recovery source"
	case st.Phase == "import":
		return "importing from the source cluster (pg_dump over verified TLS, pg_restore)"
	case st.Phase == "recovery":
		return "replaying WAL up to the recovery target"
	case !st.Ready:
		return "starting postgres (" + st.Phase + ")"
	case st.Role == instanceapi.RolePrimary:
		return fmt.Sprintf("primary ready, timeline %d", st.Timeline)
	case st.Designated && st.WALReceiver != nil && st.WALReceiver.Status == "streaming":
		return fmt.Sprintf("designated primary, streaming from the source cluster %s", st.Source)
	case st.Designated:
		return fmt.Sprintf("designated primary, following the source cluster %s", st.Source)
	case st.WALReceiver != nil && st.WALReceiver.Status == "streaming":
		return "replica streaming from the primary"
	default:
		if primary {
			return "ready, waiting to be primary"
		}
		return "replica started, connecting to the primary"
	}
}

// instanceUp reports whether an instance is where `up` wants it: the
// primary ready as primary, a replica streaming and seen by the primary.
func instanceUp(st *instanceapi.Status, primary bool, all []*instanceapi.Status, state *State, target string) bool {
	if st == nil || !st.Ready {
		return false
	}
	if primary {
		return st.Role == instanceapi.RolePrimary
	}
	if st.Role != instanceapi.RoleReplica || st.WALReceiver == nil || st.WALReceiver.Status != "streaming" {
		return false
	}
	for i, is := range state.Instances {
		if is.Name == target && all[i] != nil {
			for _, peer := range all[i].Replication {
				if peer.ApplicationName == st.Name && peer.State == "streaming" {
					return true
				}
			}
		}
	}
	return false
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path) // #nosec G304 -- our own log
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// DownOptions configure `pgward local down`.
type DownOptions struct {
	Dir     string
	Purge   bool
	Timeout time.Duration
	Out     io.Writer
}

// Down stops the controller, which stops every instance (fast shutdown),
// and waits until no process of the cluster is left. With Purge it then
// deletes the state directory. It works on a broken directory too (a
// corrupt state.json, a controller that died): it finds the cluster's
// processes and data directories by looking, not by trusting state files.
func Down(ctx context.Context, o DownOptions) error {
	if os.Geteuid() == 0 {
		return errRoot
	}
	l := Layout{Dir: o.Dir}
	if !isStateDir(l) {
		return fmt.Errorf("no cluster in %s", l.Dir)
	}
	if o.Timeout == 0 {
		// Every instance has the manifest's spec.stopDelay to stop.
		o.Timeout = max(2*time.Minute, stopDelayOf(l)+30*time.Second)
	}
	say := func(s string) { _, _ = fmt.Fprintln(o.Out, s) }
	lctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	unlock, err := lockUp(lctx, l, say)
	if err != nil {
		return err
	}
	defer unlock()
	// First, so that no instance manager starts a controller again.
	if err := instance.WriteFileAtomic(l.StopFile(), []byte("stopping\n"), 0o600); err != nil {
		return err
	}
	if err := stopController(l, o.Timeout, say); err != nil {
		return err
	}
	// Managers left without a controller (it died, or was stopped before
	// it stopped them) are stopped here.
	for name, p := range managers(l) {
		say(fmt.Sprintf("stopping instance manager %s (pid %d) left without a controller", name, p.pid))
		stopProc(p, o.Timeout)
	}
	if err := checkNoPostmaster(l); err != nil {
		return err
	}
	say("all instances stopped")
	if o.Purge {
		if err := purge(l.Dir); err != nil {
			return err
		}
		say("purged " + l.Dir)
	}
	return nil
}

// isStateDir reports whether dir looks like a pgward state directory, even
// a damaged one: purge must work when the state files do not parse, and
// must not empty a directory that is not one.
func isStateDir(l Layout) bool {
	for _, f := range []string{l.StateFile(), l.ClusterFile(), l.LockFile(), filepath.Join(l.Dir, "instances")} {
		if _, err := os.Lstat(f); err == nil {
			return true
		}
	}
	return false
}

// stopController signals this cluster's controller and waits for its lock.
func stopController(l Layout, timeout time.Duration, say func(string)) error {
	if !controllerRunning(l) {
		return nil
	}
	pid, err := readPid(l)
	if err != nil {
		return fmt.Errorf("controller running but its pid is unknown: %w", err)
	}
	if !isController(pid, l) {
		return fmt.Errorf("pid %d in %s is not this cluster's controller; not signalling it", pid, l.PidFile())
	}
	say(fmt.Sprintf("stopping controller (pid %d) and its instances", pid))
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signalling the controller: %w", err)
	}
	deadline := time.Now().Add(timeout)
	for controllerRunning(l) {
		if time.Now().After(deadline) {
			// Last resort: the whole session (controller, instance
			// managers, postgres) goes.
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			return fmt.Errorf("controller did not stop within %s; killed its process group", timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// stopProc asks a process to stop (SIGTERM), and kills it after timeout.
func stopProc(p proc, timeout time.Duration) {
	_ = syscall.Kill(p.pid, syscall.SIGTERM)
	deadline := time.Now().Add(timeout)
	for p.alive() {
		if time.Now().After(deadline) {
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// purge deletes everything in dir, then dir itself if we may: when root
// created it for us in a directory only root can write, root removes the
// empty directory after we return.
func purge(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("purging %s: %w", dir, err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("purging %s: %w", dir, err)
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("purging %s: %w", dir, err)
	}
	return nil
}

// checkNoPostmaster verifies that no postmaster of the cluster is alive,
// looking at every instance directory there is.
func checkNoPostmaster(l Layout) error {
	pidFiles, _ := filepath.Glob(filepath.Join(l.Dir, "instances", "*", "data", "postmaster.pid"))
	var alive []string
	for _, f := range pidFiles {
		b, err := os.ReadFile(f) // #nosec G304 -- inside the state dir
		if err != nil {
			continue
		}
		var pid int
		if _, err := fmt.Sscanf(string(b), "%d", &pid); err == nil && pid > 0 && processAlive(pid) {
			alive = append(alive, fmt.Sprintf("%s (pid %d)", filepath.Base(filepath.Dir(filepath.Dir(f))), pid))
		}
	}
	if len(alive) > 0 {
		return fmt.Errorf("postgres still running: %s", strings.Join(alive, ", "))
	}
	return nil
}

// isController reports whether pid runs `pgward local controller` for l.
func isController(pid int, l Layout) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	return slices.Contains(args, "controller") && slices.Contains(args, l.Dir)
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
