package plan

import (
	"fmt"
	"strings"
	"time"
)

// Role is what an instance says it is.
type Role string

// Roles an instance can report. Any other value, including "", counts as
// RoleUnknown.
const (
	RoleUnknown Role = "unknown"
	RolePrimary Role = "primary"
	RoleReplica Role = "replica"
)

// InstanceStatus is one instance's answer to a status request, or the record
// that it did not answer.
type InstanceStatus struct {
	// Name identifies the instance; it matches an entry of Spec.Instances.
	Name string
	// Reachable reports whether the instance manager answered. When false,
	// only Name, ObservedAt and LeaseSeen mean anything.
	Reachable bool
	// ObservedAt is when the caller sent the request (not when the answer
	// arrived): the self-fencing argument (see FenceTiming) needs a time no
	// later than the instance manager's receipt of the request.
	ObservedAt time.Time
	// LeaseSeen is, in a runtime where the primary renews a lease of its
	// own (Kubernetes), when the controller last saw this instance's
	// renewal: the send time of the read that first returned the lease's
	// current version, or the controller's first read since it started.
	// Zero where there is no lease. A renewal restarts the instance's
	// self-fencing timer like a completed exchange, so Next treats an
	// unreachable primary as fenced only once both have been silent for
	// Spec.SelfFenceBound (see FenceTiming).
	LeaseSeen time.Time
	// Unroutable reports, in a runtime whose clients reach the primary only
	// through instances a router counts ready (Kubernetes: <c>-rw sends to
	// pods whose Ready condition is true, and the kubelet reports it up to
	// a probe period after the instance manager answers), that the router
	// does not count this instance yet: made primary now, it would leave
	// clients nowhere to go until it does. The zero value is routable, as
	// every instance is where clients connect directly (locally). A planned
	// switchover waits a bounded time for its target to be routable
	// (Spec.RouteWait); a failover only prefers a routable candidate over
	// one holding exactly the same WAL, never over a more advanced one.
	Unroutable bool
	// Empty reports whether the instance has no data directory yet (a new
	// instance) or has lost it.
	Empty bool
	// PostmasterRunning reports whether postgres is running. False from a
	// reachable instance manager means postgres is down and stays down until
	// a command starts it: the instance manager never restarts it on its own.
	PostmasterRunning bool
	// Fenced reports whether the instance manager keeps postgres from
	// accepting writes (stopped, and not started as a primary until told).
	Fenced bool
	// Role is primary or replica as postgres reports it (pg_is_in_recovery);
	// a stopped instance reports the role its data directory would start in.
	Role Role
	// Epoch is the fencing epoch of the last Bootstrap or Promote the
	// instance executed; the instance manager stores it with the data.
	Epoch uint64
	// Timeline is the instance's current timeline ID.
	Timeline uint32
	// ReceivedLSN is, on a replica, the last WAL position received and
	// flushed from the stream (pg_last_wal_receive_lsn); before streaming
	// resumes after a restart, the end of the WAL it holds.
	ReceivedLSN LSN
	// ReplayedLSN is, on a replica, the last WAL position replayed.
	ReplayedLSN LSN
	// CurrentLSN is, on a primary, its WAL write position; after a clean
	// shutdown, the end of its WAL.
	CurrentLSN LSN
	// PendingRestart reports that postgres runs with settings older than
	// its configuration file: a changed parameter needs a restart.
	PendingRestart bool
	// Restarting reports that the instance manager is restarting postgres
	// on the planner's request (ActionRestart): down on purpose, briefly.
	Restarting bool
	// Manifest identifies (hex SHA-256) the manifest whose configuration
	// postgres has loaded: PendingRestart was read after that load, so
	// together they say whether the instance runs what it was given. Empty
	// while postgres does not run, and from an instance manager older than
	// the field (see Spec.Manifests).
	Manifest string
	// StreamingFrom names the primary the replica's WAL receiver is
	// streaming from, or "" when it is not streaming.
	StreamingFrom string
	// SyncStandbyNames is, on a primary, the synchronous_standby_names value
	// it runs with.
	SyncStandbyNames string
	// Designated reports that the instance runs as the designated primary
	// of a replica cluster: a standby of the source cluster, at Epoch.
	Designated bool
}

// writable reports whether, as far as this observation tells, s may accept
// writes.
func (s InstanceStatus) writable() bool {
	return s.Reachable && s.PostmasterRunning && !s.Fenced && s.Role == RolePrimary
}

// designatedHead reports whether s runs as a replica cluster's designated
// primary: a working standby of the source cluster.
func (s InstanceStatus) designatedHead() bool {
	return s.readyReplica() && s.Designated
}

// readyReplica reports whether s is a running, unfenced replica with data: a
// possible promotion or switchover target.
func (s InstanceStatus) readyReplica() bool {
	return s.Reachable && s.PostmasterRunning && !s.Fenced && !s.Empty && s.Role == RoleReplica
}

// Memory is the planner state the caller persists between calls to Next.
// The zero Memory describes a cluster that was never bootstrapped.
type Memory struct {
	// Epoch is the fencing epoch: it grows by one with every promotion, and
	// TargetPrimary is (or is being made) the primary at Epoch.
	Epoch uint64
	// TargetPrimary is the instance that should be primary.
	TargetPrimary string
	// CurrentPrimary is the instance last seen working as primary at Epoch;
	// it differs from TargetPrimary while a promotion is in flight.
	CurrentPrimary string
	// PrimaryLastSeen is the ObservedAt of TargetPrimary's last answer.
	PrimaryLastSeen time.Time
	// PrimaryLastLSN is the CurrentLSN that TargetPrimary last reported
	// while healthy.
	PrimaryLastLSN LSN
	// PrimaryUnhealthySince is when TargetPrimary first looked unhealthy;
	// zero while it is healthy.
	PrimaryUnhealthySince time.Time
	// SyncStandbys lists, oldest first, the synchronous_standby_names values
	// under which the primary may have acknowledged a commit that no later
	// value is known to cover (see sync.go). The last one is the newest
	// requested; the list is empty when none was ever recorded.
	SyncStandbys []SyncConfig
	// SyncCoverLSN is the primary's CurrentLSN when it was first seen running
	// with the newest SyncStandbys value; older values are dropped once
	// enough of the newest value's standbys have received it.
	SyncCoverLSN LSN
	// Diverged records when each replica was first seen on an older
	// timeline than the primary's.
	Diverged map[string]time.Time
	// Switchover is a requested change of primary.
	Switchover Switchover
	// UserFenced lists the instances shut down on the user's request
	// (Spec.Fenced or Spec.Hibernate), so that lifting the request starts
	// them again, rather than a stopped primary counting as failed.
	UserFenced []string `json:",omitempty"`
	// RestartPending lists the instances a user asked to restart (a
	// rolling restart) that have not been restarted yet; rollingRestart
	// treats them as it treats PendingRestart.
	RestartPending []string `json:",omitempty"`
}

// Switchover is a planned change of primary. A user requests one by setting
// To (for example through "pgward local promote"); Next fills the rest and
// clears the whole value when the switchover is done, refused or aborted,
// saying so in Ready.SwitchoverOutcome.
type Switchover struct {
	// ID identifies the request (chosen by whoever asked), so its outcome
	// can be reported to the one who asked.
	ID string `json:",omitempty"`
	// To is the replica that should become primary.
	To string
	// From is the primary being shut down; set when the shutdown is issued.
	From string
	// Since is when the shutdown was issued; before that, when the wait
	// for the target to be routable began (zero while none has).
	Since time.Time
}

func (m Memory) clone() Memory {
	m.SyncStandbys = cloneSyncConfigs(m.SyncStandbys)
	m.UserFenced = append([]string(nil), m.UserFenced...)
	if len(m.UserFenced) == 0 {
		m.UserFenced = nil
	}
	m.RestartPending = append([]string(nil), m.RestartPending...)
	if len(m.RestartPending) == 0 {
		m.RestartPending = nil
	}
	if m.Diverged != nil {
		d := make(map[string]time.Time, len(m.Diverged))
		for k, v := range m.Diverged {
			d[k] = v
		}
		m.Diverged = d
	}
	return m
}

// Ready is what Next decided. The caller must:
//
//  1. Persist Memory before running any Action. A crash in the middle of a
//     failover then resumes under the same Epoch instead of promoting twice.
//  2. Run Actions in order and stop at the first one that fails. Each Action
//     names an end state ("c-2 is primary at epoch 7"), so running it again
//     when that state already holds changes nothing.
//  3. Observe again, at the latest after RecheckAfter, and call Next with the
//     persisted Memory: the next observation is what tells Next how the
//     Actions went.
//
// Events explain the decisions in human terms; repeated calls may repeat
// them, and a runtime may deduplicate.
type Ready struct {
	Memory       Memory
	Actions      []Action
	RecheckAfter time.Duration
	Events       []Event
	// SwitchoverOutcome is set when this step ended a switchover request.
	SwitchoverOutcome *SwitchoverOutcome
}

// SwitchoverOutcome is how a switchover request ended.
type SwitchoverOutcome struct {
	ID     string
	To     string
	Result SwitchoverResult
	// Reason says why, in words, for every result but SwitchoverPromoting.
	Reason string
}

// SwitchoverResult is how a switchover request ended.
type SwitchoverResult string

// Switchover results.
const (
	// SwitchoverPromoting: the target received all of the old primary's
	// WAL and is being promoted; it is done once it is the healthy primary.
	SwitchoverPromoting SwitchoverResult = "promoting"
	// SwitchoverDone: the target already was the primary.
	SwitchoverDone SwitchoverResult = "done"
	// SwitchoverRefused: the request cannot be carried out (no such instance).
	SwitchoverRefused SwitchoverResult = "refused"
	// SwitchoverAborted: started, then given up; the old primary runs on.
	SwitchoverAborted SwitchoverResult = "aborted"
	// SwitchoverSuperseded: a failover (or another change of primary)
	// happened first.
	SwitchoverSuperseded SwitchoverResult = "superseded"
)

// ActionKind says what an Action does.
type ActionKind string

// The actions Next may ask for. Each names an end state.
const (
	// ActionBootstrap: Instance is a new primary at Epoch, created by
	// initdb, running with SyncStandbys once its bootstrap SQL has run;
	// with Designated, the designated primary of a replica cluster,
	// copied from the source and following it.
	ActionBootstrap ActionKind = "bootstrap"
	// ActionPromote: Instance is the writable primary at Epoch, running with
	// SyncStandbys, which the executor sets before promoting; with
	// Designated, it stays a standby and follows the replica cluster's
	// source instead (the head of the replica cluster at Epoch).
	ActionPromote ActionKind = "promote"
	// ActionFollow: Instance runs as a replica streaming from Primary
	// (primary_conninfo repointed and reloaded; postgres started if down).
	ActionFollow ActionKind = "follow"
	// ActionFence: Instance accepts no writes, by the quickest means, and
	// is not started as a primary until told.
	ActionFence ActionKind = "fence"
	// ActionStart: Instance is unfenced and running again in the role its
	// data directory has (after an aborted switchover, or a single
	// instance's crash).
	ActionStart ActionKind = "start"
	// ActionDemote: Instance is shut down cleanly (its WAL sent to the
	// connected replicas) and stays fenced.
	ActionDemote ActionKind = "demote"
	// ActionRejoin: Instance is a replica of Primary on Primary's timeline,
	// by pg_rewind after a CHECKPOINT on Primary, else by a fresh clone.
	ActionRejoin ActionKind = "rejoin"
	// ActionRecreate: Instance is a replica of Primary, cloned afresh.
	ActionRecreate ActionKind = "recreate"
	// ActionSetSyncStandbys: Instance, a primary, runs with
	// synchronous_standby_names = SyncStandbys.
	ActionSetSyncStandbys ActionKind = "set-sync-standbys"
	// ActionRestart restarts postgres in its current role, so settings
	// that need a restart take effect (a rolling update).
	ActionRestart ActionKind = "restart"
	// ActionHold: nothing to run; Reason says what Next waits for.
	ActionHold ActionKind = "hold"
)

// Action is one step for the caller to run. Only the fields its Kind
// documents are set.
type Action struct {
	Kind         ActionKind
	Instance     string
	Primary      string
	Epoch        uint64
	SyncStandbys string
	Reason       string
	// Designated: see ActionBootstrap and ActionPromote.
	Designated bool
}

// String renders a for logs and test output.
func (a Action) String() string {
	parts := []string{string(a.Kind)}
	if a.Instance != "" {
		parts = append(parts, a.Instance)
	}
	if a.Primary != "" {
		parts = append(parts, "from="+a.Primary)
	}
	if a.Epoch != 0 {
		parts = append(parts, fmt.Sprintf("epoch=%d", a.Epoch))
	}
	if a.Kind == ActionPromote || a.Kind == ActionBootstrap || a.Kind == ActionSetSyncStandbys {
		parts = append(parts, fmt.Sprintf("sync=%q", a.SyncStandbys))
	}
	if a.Designated {
		parts = append(parts, "designated")
	}
	if a.Reason != "" {
		parts = append(parts, fmt.Sprintf("reason=%q", a.Reason))
	}
	return strings.Join(parts, " ")
}

// Event explains a decision. Reason is a short CamelCase word for machines
// (a Kubernetes event reason); Message is for people.
type Event struct {
	Warning bool
	Reason  string
	Message string
}

// String renders e for logs and test output.
func (e Event) String() string {
	kind := "Normal"
	if e.Warning {
		kind = "Warning"
	}
	return kind + " " + e.Reason + ": " + e.Message
}
