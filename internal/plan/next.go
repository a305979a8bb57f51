package plan

import (
	"fmt"
	"sort"
	"time"
)

// Event reasons.
const (
	ReasonBootstrap        = "Bootstrap"
	ReasonAdopted          = "Adopted"
	ReasonPrimaryReady     = "PrimaryReady"
	ReasonPrimaryUnhealthy = "PrimaryUnhealthy"
	ReasonPrimaryRecovered = "PrimaryRecovered"
	ReasonFailover         = "Failover"
	ReasonDataLossRisk     = "DataLossRisk"
	ReasonSplitBrain       = "SplitBrain"
	ReasonRejoin           = "Rejoin"
	ReasonRecreate         = "Recreate"
	ReasonSyncStandbys     = "SyncStandbys"
	ReasonSwitchover       = "Switchover"
	ReasonRollingUpdate    = "RollingUpdate"
	ReasonReplicaPromoted  = "ReplicaClusterPromoted"
)

// ReasonRoutableCandidate explains a failover's choice of a routable
// candidate; a reason of its own, since runtimes count Failover events as
// failovers.
const ReasonRoutableCandidate = "RoutableCandidate"

// Next decides what to do about a cluster described by spec, given the
// persisted mem, the latest status of each instance (an instance missing
// from observed counts as unreachable) and the current time. It is pure: it
// does not modify mem or observed, and the same inputs give the same Ready.
// See Ready for the caller's duties.
func Next(spec Spec, mem Memory, observed []InstanceStatus, now time.Time) Ready {
	p := newPlanner(spec.withDefaults(), mem.clone(), observed, now)
	p.plan()
	return p.ready()
}

// planner holds one call's inputs and outputs.
type planner struct {
	spec    Spec
	mem     Memory
	now     time.Time
	obs     map[string]InstanceStatus
	names   []string // observed names, sorted
	actions []Action
	events  []Event
	recheck time.Duration
	outcome *SwitchoverOutcome
}

func newPlanner(spec Spec, mem Memory, observed []InstanceStatus, now time.Time) *planner {
	p := &planner{spec: spec, mem: mem, now: now, obs: make(map[string]InstanceStatus, len(observed))}
	for _, s := range observed {
		if s.ObservedAt.IsZero() {
			s.ObservedAt = now
		}
		if old, ok := p.obs[s.Name]; ok && old.ObservedAt.After(s.ObservedAt) {
			continue
		}
		p.obs[s.Name] = s
	}
	for n := range p.obs {
		p.names = append(p.names, n)
	}
	sort.Strings(p.names)
	return p
}

func (p *planner) plan() {
	if err := p.spec.Validate(); err != nil {
		p.hold("invalid spec: %v", err)
		return
	}
	if p.mem.Epoch == 0 && !p.bootstrap() {
		return
	}
	if p.staleMemory() {
		return
	}
	target := p.status(p.mem.TargetPrimary)
	p.seen(target)
	p.fenceRogues()
	if p.userFence(target) {
		return
	}
	switch {
	case p.mem.Switchover.From != "":
		p.continueSwitchover()
	case p.replicaPromotion(target):
		p.promoteReplicaCluster(target)
	case p.healthy(target):
		p.primaryUp(target)
		if p.mem.Switchover.To == "" || !p.startSwitchover(target) {
			p.maintain(target)
		}
	case target.Restarting && target.Reachable && p.mem.CurrentPrimary == target.Name:
		// Down on purpose (rollingRestart), and its manager answers.
		p.hold("primary %s is restarting to apply settings that need a restart", target.Name)
		p.recheckIn(p.spec.CheckInterval)
	case p.mem.CurrentPrimary == "":
		p.bootstrapPending(target)
	case p.mem.CurrentPrimary != target.Name && target.readyReplica():
		p.resumePromotion()
	default:
		p.failover(target)
	}
}

func (p *planner) ready() Ready {
	r := p.spec.CheckInterval
	if p.recheck > 0 && p.recheck < r {
		r = p.recheck
	}
	if t := p.spec.TransitionInterval; t > 0 && t < r && p.changing() {
		r = t
	}
	if len(p.mem.Diverged) == 0 {
		p.mem.Diverged = nil
	}
	if len(p.mem.UserFenced) == 0 {
		p.mem.UserFenced = nil
	}
	if len(p.mem.RestartPending) == 0 {
		p.mem.RestartPending = nil
	}
	return Ready{Memory: p.mem, Actions: p.actions, RecheckAfter: r, Events: p.events, SwitchoverOutcome: p.outcome}
}

// status returns name's observation; an instance not observed is unreachable.
func (p *planner) status(name string) InstanceStatus {
	if s, ok := p.obs[name]; ok {
		return s
	}
	return InstanceStatus{Name: name, ObservedAt: p.now}
}

// seen records that the target primary answered, whatever it said.
func (p *planner) seen(t InstanceStatus) {
	if t.Reachable && t.ObservedAt.After(p.mem.PrimaryLastSeen) {
		p.mem.PrimaryLastSeen = t.ObservedAt
	}
}

func (p *planner) act(a Action) {
	p.actions = append(p.actions, a)
}

func (p *planner) hold(format string, args ...any) {
	p.act(Action{Kind: ActionHold, Reason: fmt.Sprintf(format, args...)})
}

// endSwitchover clears the switchover request and reports how it ended.
func (p *planner) endSwitchover(result SwitchoverResult, reason string) {
	sw := p.mem.Switchover
	p.outcome = &SwitchoverOutcome{ID: sw.ID, To: sw.To, Result: result, Reason: reason}
	p.mem.Switchover = Switchover{}
}

func (p *planner) event(reason, format string, args ...any) {
	p.events = append(p.events, Event{Reason: reason, Message: fmt.Sprintf(format, args...)})
}

func (p *planner) warn(reason, format string, args ...any) {
	p.events = append(p.events, Event{Warning: true, Reason: reason, Message: fmt.Sprintf(format, args...)})
}

// changing reports whether the cluster is between two settled states: the
// outcome of what was just decided is what the next observation shows.
//
// A hold alone is not a change: a cluster waiting on something outside the
// planner (pods not scheduled yet, an instance that does not answer) would
// otherwise be looked at every TransitionInterval for as long as it waits,
// and a thousand of them would keep the operator busy doing nothing (1,000
// bootstrapping Clusters: 4,000 reconciles a second). What it waits for
// wakes it (the instance watches, pod events) or the next check does.
func (p *planner) changing() bool {
	for _, a := range p.actions {
		if a.Kind != ActionHold {
			return true
		}
	}
	return p.mem.Switchover.From != "" || p.mem.CurrentPrimary != p.mem.TargetPrimary
}

// recheckIn asks for the next observation no later than d from now.
func (p *planner) recheckIn(d time.Duration) {
	if d > 0 && (p.recheck == 0 || d < p.recheck) {
		p.recheck = d
	}
}

// since formats how long ago t was, rounded for people.
func (p *planner) since(t time.Time) time.Duration {
	return p.now.Sub(t).Round(time.Millisecond)
}
