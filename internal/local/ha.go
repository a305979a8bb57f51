package local

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/control"
	"github.com/pgward/pgward/internal/instance"
	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/plan"
	"github.com/pgward/pgward/internal/secrets"
)

// Timing of the local control loop. The status request timeout, the
// instance managers' self-fencing delay and their check interval feed
// plan.FenceTiming, which derives how long an unreachable primary must stay
// silent before another instance may be promoted.
const (
	pollInterval              = 200 * time.Millisecond
	requestTimeout            = time.Second
	defaultSelfFence          = 3 * time.Second
	defaultUnreachableTimeout = time.Second
	// fenceStopTime bounds an immediate shutdown (SIGQUIT, SIGKILL after 500ms).
	fenceStopTime = time.Second
	// clockStep is the largest wall-clock jump we tolerate between a
	// persisted observation and now (the memory survives restarts).
	clockStep  = time.Second
	clockDrift = 1e-4
)

// fenceTiming is the local runtime's self-fencing argument in numbers.
func fenceTiming(ha HASettings) plan.FenceTiming {
	return plan.FenceTiming{
		SelfFence: ha.SelfFence.Duration, RequestTimeout: requestTimeout, CheckInterval: instance.FenceCheckInterval,
		StopTime: fenceStopTime, ClockStep: clockStep, Drift: clockDrift,
	}
}

// specFor turns the Cluster into the planner's Spec.
func specFor(c *v1.Cluster, st *State) (plan.Spec, error) {
	bound, err := fenceTiming(st.HA).Bound()
	if err != nil {
		return plan.Spec{}, err
	}
	var names []string
	for _, is := range st.Instances[:c.Spec.Instances] {
		names = append(names, is.Name)
	}
	spec, err := plan.SpecFromCluster(c, names)
	if err != nil {
		return spec, err
	}
	spec.UnreachableTimeout = st.HA.UnreachableTimeout.Duration
	spec.SelfFenceBound = bound
	spec.CheckInterval = pollInterval
	return spec, spec.Validate()
}

// haLoop is the local runtime's adapter to control.Driver: it observes
// the instances over loopback, keeps the memory in plan.json, fences a
// silent instance by power and sends commands to the instance managers;
// between steps it renews certificates and takes switchover requests.
type haLoop struct {
	layout  Layout
	cluster *v1.Cluster
	state   *State
	spec    plan.Spec
	client  *instanceapi.Client
	log     *slog.Logger

	driver control.Driver
	mem    *control.Memory
	acks   map[string]uint64
	// pkiNext is when certificates are checked next (Unix ns), pkiRunning
	// whether a check runs; pkiWG waits for it.
	pkiNext    atomic.Int64
	pkiRunning atomic.Bool
	pkiWG      sync.WaitGroup
	// clientFiles identifies the files the status client was built from.
	clientFiles string
	// silentSince is when each unreachable instance was first seen silent.
	silentSince map[string]time.Time
	// said dedupes repeated holds and events in the log.
	said map[string]time.Time
	// manifestTime is the stored manifest's modification time last read
	// (refreshReplicaMode).
	manifestTime time.Time
}

func newHALoop(l Layout, c *v1.Cluster, st *State, log *slog.Logger) (*haLoop, error) {
	spec, err := specFor(c, st)
	if err != nil {
		return nil, err
	}
	cl, err := newStatusClient(l, c.Name, requestTimeout)
	if err != nil {
		return nil, err
	}
	mem, err := loadMemory(l)
	if err != nil {
		return nil, err
	}
	h := &haLoop{layout: l, cluster: c, state: st, spec: spec, client: cl, log: log,
		mem: control.Resume(mem, time.Now()), clientFiles: clientFilesStamp(l, c.Name),
		acks: map[string]uint64{}, said: map[string]time.Time{}, silentSince: map[string]time.Time{}}
	h.driver = control.Driver{Observer: h, Store: h, Actuator: h, Now: time.Now}
	return h, nil
}

// clientFilesStamp identifies the controller's certificate, key and the
// server CA it trusts by what stat says of them ("" if one is missing).
func clientFilesStamp(l Layout, cluster string) string {
	dir := l.SecretsDir()
	var stamp string
	for _, p := range []string{
		filepath.Join(dir, cluster+"-controller", keyTLSCert),
		filepath.Join(dir, cluster+"-controller", keyTLSKey),
		filepath.Join(dir, serverCASecretName(l, cluster), keyCACert),
	} {
		fi, err := os.Stat(p) // #nosec G703 -- secrets of this state directory, names from its own configs
		if err != nil {
			return ""
		}
		var ino uint64
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			ino = st.Ino
		}
		stamp += fmt.Sprintf("%d/%d/%d|", fi.ModTime().UnixNano(), fi.Size(), ino)
	}
	return stamp
}

// refreshClient rebuilds the status client when its files changed: `rotate-ca`
// reissues the controller's certificate and changes the CAs it must trust
// while this controller runs, and a controller holding the old ones would
// lose contact with every instance (and the primary fence itself).
func (h *haLoop) refreshClient() {
	stamp := clientFilesStamp(h.layout, h.cluster.Name)
	if stamp == "" || stamp == h.clientFiles {
		return
	}
	cl, err := newStatusClient(h.layout, h.cluster.Name, requestTimeout)
	if err != nil {
		h.say("client-files", func() {
			h.log.Error("rebuilding the status client from changed certificates; keeping the old one", "err", err)
		})
		return
	}
	h.client, h.clientFiles = cl, stamp
	h.log.Info("status client rebuilt: the controller's certificate or the server CA changed")
}

// run ticks until ctx ends.
func (h *haLoop) run(ctx context.Context) {
	for ctx.Err() == nil {
		wait := h.tick(ctx)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	h.pkiWG.Wait()
}

func (h *haLoop) tick(ctx context.Context) time.Duration {
	h.renewCertificates(ctx)
	h.refreshClient()
	h.refreshReplicaMode()
	req := h.takeSwitchoverRequest()
	res, err := h.driver.Step(ctx, h.spec, h.mem)
	if err != nil {
		h.log.Error("planner step", "err", err)
		return h.spec.CheckInterval
	}
	if o := res.SwitchoverOutcome; o != nil {
		h.log.Info("switchover request ended", "id", o.ID, "to", o.To, "result", o.Result, "reason", o.Reason)
		if err := writeSwitchoverResult(h.layout, o); err != nil {
			h.log.Error("recording the switchover outcome", "err", err)
		}
	}
	// The request is in the saved memory (or has its outcome) now: a
	// controller that crashes from here on finds it there.
	if req != nil {
		_ = os.Remove(switchoverFile(h.layout))
	}
	for _, e := range res.Events {
		h.say(e.String(), func() { h.log.Info("event", "warning", e.Warning, "reason", e.Reason, "msg", e.Message) })
	}
	for _, a := range res.Actions {
		if a.Kind == plan.ActionHold {
			h.say(a.Reason, func() { h.log.Info("hold", "reason", a.Reason) })
		}
	}
	if res.Failed != nil {
		h.log.Warn("action failed", "err", res.Failed)
	}
	return res.Wait
}

// Save keeps the memory in plan.json (control.Store).
func (h *haLoop) Save(_ context.Context, m plan.Memory) error { return saveMemory(h.layout, m) }

// Observed fences silent instances by power (control.Actuator).
func (h *haLoop) Observed(_ context.Context, obs []plan.InstanceStatus) { h.powerOffSilent(obs) }

// Route has nothing to do locally: clients find the primary through the
// multi-host URI (control.Actuator).
func (h *haLoop) Route(context.Context, plan.Memory) error { return nil }

// powerOffAfter is how long an instance may stay silent before the local
// controller stops its processes for certain.
func (h *haLoop) powerOffAfter() time.Duration {
	return max(2*h.state.HA.UnreachableTimeout.Duration, 2*time.Second)
}

// powerOffSilent is the local runtime's fencing by power. Every instance is
// a process tree on this machine that the controller's user owns, so one
// that stops answering (frozen, wedged, or its manager alone stuck while
// PostgreSQL keeps serving) can be stopped for certain: SIGKILL ends even a
// SIGSTOPped process. The supervisor then restarts its manager, which never
// starts PostgreSQL by itself and reports it down, so the planner can fail
// over at once instead of waiting out the self-fencing bound, and no
// primary is left running unsupervised whatever the replication mode.
func (h *haLoop) powerOffSilent(obs []plan.InstanceStatus) {
	now := time.Now()
	for _, s := range obs {
		if s.Reachable {
			delete(h.silentSince, s.Name)
			continue
		}
		since, ok := h.silentSince[s.Name]
		if !ok {
			h.silentSince[s.Name] = now
			continue
		}
		if now.Sub(since) < h.powerOffAfter() {
			continue
		}
		h.silentSince[s.Name] = now // once per silence period
		pids, err := InstanceProcesses(h.layout, s.Name)
		if err != nil || len(pids) == 0 {
			continue
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		h.log.Warn("instance silent; stopped its processes (fencing by power)", "instance", s.Name,
			"silent", now.Sub(since).Round(time.Millisecond), "processes", len(pids))
	}
}

// renewCertificates starts a certificate check when one is due and none is
// running. The check runs beside the HA loop, which keeps observing and
// commanding the instances meanwhile; the status client follows the files
// it changes (refreshClient).
func (h *haLoop) renewCertificates(ctx context.Context) {
	if h.pkiRunning.Load() || time.Now().UnixNano() < h.pkiNext.Load() {
		return
	}
	h.pkiRunning.Store(true)
	h.pkiWG.Add(1)
	go func() {
		defer h.pkiWG.Done()
		defer h.pkiRunning.Store(false)
		next := h.checkCertificates(ctx)
		h.pkiNext.Store(time.Now().Add(next).UnixNano())
	}()
}

// checkCertificates renews what is due and returns when to check again.
// It runs only under up.lock, which `up`, `down` and `rotate-ca` hold while
// they write secrets: if one of them holds it, the check is tried again
// shortly, without waiting. The generated CA is renewed with an overlap
// (autoRenewCA), then leaves due are renewed (ensurePKI). The instance
// managers pick the new files up by themselves (status port per
// connection, PostgreSQL by reload).
func (h *haLoop) checkCertificates(ctx context.Context) time.Duration {
	unlock, ok, err := tryLockUp(h.layout)
	if err != nil {
		h.log.Error("checking certificates", "err", err)
		return pkiRetryInterval
	}
	if !ok {
		h.log.Info("certificate check postponed: `up`, `down` or `rotate-ca` holds the lock", "retry", pkiRetryInterval)
		return pkiRetryInterval
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(ctx, pkiCheckTimeout)
	defer cancel()
	store := secrets.DirStore{Root: h.layout.SecretsDir()}
	next := pkiCheckInterval
	if r := generatedCARotation(h.layout, h.cluster, h.state, store); r != nil {
		r.timeout, r.say = pkiCheckTimeout, func(s string) { h.log.Info("CA renewal: " + s) }
		d, err := r.autoRenewCA(ctx)
		if err != nil {
			h.log.Warn("CA renewal: step not completed; retrying", "err", err, "retry", d)
		}
		next = d
	}
	_, notes, err := ensurePKI(store, h.cluster, rand.Reader, time.Now())
	if err != nil {
		h.log.Error("checking certificates", "err", err)
		return pkiRetryInterval
	}
	if len(notes) > 0 {
		h.log.Info("certificates renewed", "what", strings.Join(notes, "; "))
	}
	return next
}

// say logs a message unless it was logged in the last ten seconds.
func (h *haLoop) say(key string, log func()) {
	if t, ok := h.said[key]; ok && time.Since(t) < 10*time.Second {
		return
	}
	h.said[key] = time.Now()
	log()
}

// Observe asks every instance for its status (control.Observer).
// ObservedAt is when the request was sent, as plan.FenceTiming requires.
func (h *haLoop) Observe(ctx context.Context, names []string) []plan.InstanceStatus {
	out := make([]plan.InstanceStatus, len(names))
	ids := make([]uint64, len(out))
	done := make(chan struct{}, len(out))
	for i, name := range names {
		is, _ := h.state.Instance(name)
		ack := h.acks[name]
		go func() {
			defer func() { done <- struct{}{} }()
			sent := time.Now()
			rctx, cancel := context.WithTimeout(ctx, requestTimeout)
			defer cancel()
			st, err := h.client.Status(rctx, statusAddr(is), ack)
			if err != nil {
				out[i] = control.Unreachable(name, sent)
				return
			}
			out[i], ids[i] = control.Observation(st, sent), st.RequestID
		}()
	}
	for range out {
		<-done
	}
	for i, s := range out {
		if s.Reachable {
			h.acks[s.Name] = ids[i]
		}
	}
	return out
}

func statusAddr(is InstanceState) string {
	return net.JoinHostPort(loopback, strconv.Itoa(is.StatusPort))
}

// Run sends one action to its instance as a command (control.Actuator).
func (h *haLoop) Run(ctx context.Context, a plan.Action, mem plan.Memory) error {
	is, ok := h.state.Instance(a.Instance)
	if !ok {
		return fmt.Errorf("unknown instance %q", a.Instance)
	}
	var primary *instanceapi.Endpoint
	if p, ok := h.state.Instance(a.Primary); ok {
		primary = &instanceapi.Endpoint{Name: p.Name, Host: localhost, Port: p.Port}
	}
	cmd, err := control.Command(a, mem.Epoch, h.acks[a.Instance], primary)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if err := h.client.Command(rctx, statusAddr(is), cmd); err != nil {
		return err
	}
	h.say(a.String(), func() { h.log.Info("action", "action", a.String()) })
	return nil
}

// targetPrimary is the instance the planner wants as primary, or, before
// the planner has decided anything, the one state.json names.
func targetPrimary(l Layout, st *State) string {
	if m, err := loadMemory(l); err == nil && m.TargetPrimary != "" {
		return m.TargetPrimary
	}
	return st.TargetPrimary
}

// memoryFile holds the planner's Memory.
func memoryFile(l Layout) string { return filepath.Join(l.Dir, "plan.json") }

func loadMemory(l Layout) (plan.Memory, error) {
	var m plan.Memory
	b, err := os.ReadFile(memoryFile(l))
	if errors.Is(err, fs.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return m, fmt.Errorf("reading planner memory: %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("parsing %s: %w", memoryFile(l), err)
	}
	return m, nil
}

func saveMemory(l Layout, m plan.Memory) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return instance.WriteFileAtomic(memoryFile(l), b, 0o600)
}
