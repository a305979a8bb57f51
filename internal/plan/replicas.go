package plan

import (
	"fmt"
	"slices"
	"time"
)

// maintain keeps the other instances following the healthy primary pr and
// its synchronous standbys current.
func (p *planner) maintain(pr InstanceStatus) {
	for _, n := range p.spec.Instances {
		if n != pr.Name {
			p.maintainReplica(p.status(n), pr)
		}
	}
	for n := range p.mem.Diverged {
		if !p.spec.has(n) || n == pr.Name {
			delete(p.mem.Diverged, n)
		}
	}
	p.maintainSync(pr)
	p.rollingRestart(pr)
}

// rollingRestart applies settings that need a restart (PendingRestart)
// one instance at a time, never more than one down: each replica in turn,
// once every other one streams, then the primary, by a switchover to an
// updated replica (which rejoins the old primary, restarted, as a replica),
// or in place when asked, or when the user switches over (supervised).
// The primary's turn comes only once every replica runs its manifest
// (loaded) with nothing pending (updated): a replica that has not read
// the new manifest yet has nothing pending either, and switching over to
// it would hand the writes to the old settings.
func (p *planner) rollingRestart(pr InstanceStatus) {
	if len(p.actions) > 0 || p.mem.Switchover.To != "" {
		return // not settled: one change at a time
	}
	var pending []string
	behind := ""
	for _, n := range p.spec.Instances {
		s := p.status(n)
		if n == pr.Name {
			continue
		}
		if !s.readyReplica() || s.StreamingFrom != pr.Name || s.Restarting {
			return
		}
		switch {
		case p.needsRestart(s):
			pending = append(pending, n)
		case behind == "" && !p.loaded(s):
			behind = n
		}
	}
	if len(pending) > 0 {
		p.event(ReasonRollingUpdate, "restarting replica %s to apply settings that need a restart", pending[0])
		p.act(Action{Kind: ActionRestart, Instance: pending[0]})
		p.restarted(pending[0])
		return
	}
	if !p.needsRestart(pr) {
		return
	}
	if behind != "" {
		p.hold("primary %s needs a restart for new settings: waiting for replica %s to %s", pr.Name, behind, p.notLoaded(p.status(behind)))
		return
	}
	switch {
	case p.spec.SupervisedPrimaryUpdate:
		p.hold("primary %s needs a restart for new settings: waiting for a switchover (primaryUpdateStrategy: supervised)", pr.Name)
	case p.spec.RestartPrimaryInPlace || len(p.spec.Instances) == 1 || p.spec.ReplicaCluster:
		// A designated primary is a standby: restarting it stops no write.
		p.event(ReasonRollingUpdate, "restarting primary %s in place to apply settings that need a restart", pr.Name)
		p.act(Action{Kind: ActionRestart, Instance: pr.Name})
		p.restarted(pr.Name)
	default:
		to, ok := p.mostAdvancedStreaming(pr)
		if !ok {
			return
		}
		p.event(ReasonRollingUpdate, "every replica has the new settings: switching over from %s to %s", pr.Name, to)
		p.mem.Switchover = Switchover{ID: rollingUpdateID, To: to}
		p.startSwitchover(pr) // which counts the primary restarted once it shuts it down
	}
}

// rollingUpdateID identifies the switchover a rolling update requests.
const rollingUpdateID = "rolling-update"

// loaded reports whether s runs the manifest the runtime last gave it (see
// Spec.Manifests). An instance manager that reports none is older than
// the field: it is not taken to run anything in particular, or a
// rolling update would go on as if it did, the fault Manifests closes.
// Its replica blocks the primary's restart (the hold says why) until it
// runs a current manager: on Kubernetes an operator upgrade changes its
// pod's images, so it reports PendingRestart and its restart recreates it.
func (p *planner) loaded(s InstanceStatus) bool {
	want := p.spec.Manifests[s.Name]
	return want == "" || s.Manifest == want
}

// notLoaded says what replica s has still to do, for a hold.
func (p *planner) notLoaded(s InstanceStatus) string {
	if s.Manifest == "" {
		return "report the manifest it runs (its instance manager is older than this controller: restart it with the current version)"
	}
	return fmt.Sprintf("load its new manifest (it runs %s, the current one is %s)", short(s.Manifest), short(p.spec.Manifests[s.Name]))
}

// short abbreviates a hex digest for messages.
func short(d string) string {
	if len(d) > 12 {
		return d[:12]
	}
	return d
}

// needsRestart reports whether s runs with settings that need a restart,
// or a user asked for its restart (Memory.RestartPending).
func (p *planner) needsRestart(s InstanceStatus) bool {
	return s.PendingRestart || slices.Contains(p.mem.RestartPending, s.Name)
}

// restarted records that the user's restart of name was issued.
func (p *planner) restarted(name string) {
	p.mem.RestartPending = slices.DeleteFunc(p.mem.RestartPending, func(n string) bool { return n == name })
}

// RequestRestart returns m with a user's restart request: every instance
// of spec (a rolling restart: replicas first, then the primary by a
// switchover, as for settings that need one), or only instance.
func RequestRestart(spec Spec, m Memory, instance string) (Memory, error) {
	switch {
	case instance == "" || instance == FenceAll:
		m.RestartPending = append([]string(nil), spec.Instances...)
	case spec.has(instance):
		if !slices.Contains(m.RestartPending, instance) {
			m.RestartPending = append(slices.Clone(m.RestartPending), instance)
		}
	default:
		return m, fmt.Errorf("%q is not an instance of this cluster", instance)
	}
	return m, nil
}

// mostAdvancedStreaming is the replica streaming from pr that has received
// the most WAL (the quickest to catch up after the primary's shutdown).
func (p *planner) mostAdvancedStreaming(pr InstanceStatus) (string, bool) {
	best, found := InstanceStatus{}, false
	for _, n := range p.spec.Instances {
		s := p.status(n)
		if n == pr.Name || !s.readyReplica() || s.StreamingFrom != pr.Name {
			continue
		}
		if !found || s.ReceivedLSN > best.ReceivedLSN {
			best, found = s, true
		}
	}
	return best.Name, found
}

func (p *planner) maintainReplica(s, pr InstanceStatus) {
	p.trackDiverged(s, pr)
	switch {
	case !s.Reachable:
	case p.spec.fenced(s.Name) || slices.Contains(p.mem.UserFenced, s.Name):
		// Down on the user's request, or being started again (userFence).
	case s.Empty:
		p.event(ReasonRecreate, "%s has no data: cloning it from %s", s.Name, pr.Name)
		p.act(Action{Kind: ActionRecreate, Instance: s.Name, Primary: pr.Name})
	case s.Role == RolePrimary:
		p.event(ReasonRejoin, "%s was a primary (epoch %d): rejoining it as a replica of %s", s.Name, s.Epoch, pr.Name)
		p.act(Action{Kind: ActionRejoin, Instance: s.Name, Primary: pr.Name})
	case s.Fenced && s.Designated:
		// A designated primary replaced by a failover (fenced by it): a
		// standby, which never wrote, so it simply follows the new one.
		p.event(ReasonRejoin, "%s was the designated primary (epoch %d): it follows %s now", s.Name, s.Epoch, pr.Name)
		p.act(Action{Kind: ActionFollow, Instance: s.Name, Primary: pr.Name})
	case s.Fenced:
		// Fenced by an operator: left alone.
	case s.Restarting:
		// Down on purpose for a moment (rollingRestart).
	case p.diverged(s, pr):
		p.rejoinDiverged(s, pr)
	case s.StreamingFrom != pr.Name || !s.PostmasterRunning:
		p.act(Action{Kind: ActionFollow, Instance: s.Name, Primary: pr.Name})
	}
}

// diverged reports whether replica s is on an older timeline than pr.
func (p *planner) diverged(s, pr InstanceStatus) bool {
	return s.Timeline != 0 && s.Timeline < pr.Timeline
}

// trackDiverged records since when s has been on an older timeline.
func (p *planner) trackDiverged(s, pr InstanceStatus) {
	if !s.Reachable {
		return
	}
	_, known := p.mem.Diverged[s.Name]
	switch {
	case p.diverged(s, pr) && !known:
		if p.mem.Diverged == nil {
			p.mem.Diverged = map[string]time.Time{}
		}
		p.mem.Diverged[s.Name] = p.now
	case !p.diverged(s, pr) && known:
		delete(p.mem.Diverged, s.Name)
	}
}

// rejoinDiverged gives a replica on an older timeline RejoinGrace to follow
// the timeline switch by streaming; one still not streaming after that has
// replayed past the switch point and is rewound.
func (p *planner) rejoinDiverged(s, pr InstanceStatus) {
	elapsed := p.now.Sub(p.mem.Diverged[s.Name])
	if s.StreamingFrom == "" && elapsed >= p.spec.RejoinGrace {
		p.event(ReasonRejoin, "%s is on timeline %d, %s on %d, and has not streamed for %s: rewinding it",
			s.Name, s.Timeline, pr.Name, pr.Timeline, elapsed.Round(time.Millisecond))
		p.act(Action{Kind: ActionRejoin, Instance: s.Name, Primary: pr.Name})
		return
	}
	p.recheckIn(p.spec.RejoinGrace - elapsed)
	if s.StreamingFrom != pr.Name {
		p.act(Action{Kind: ActionFollow, Instance: s.Name, Primary: pr.Name})
	}
}
