package plan

import (
	"fmt"
	"sort"
	"time"
)

// healthy reports whether t is the target primary, working at the memory's
// epoch.
func (p *planner) healthy(t InstanceStatus) bool {
	if p.spec.ReplicaCluster {
		return t.Name == p.mem.TargetPrimary && t.designatedHead() && t.Epoch == p.mem.Epoch
	}
	return t.Name == p.mem.TargetPrimary && t.writable() && !t.Empty && t.Epoch == p.mem.Epoch
}

// primaryUp records a healthy answer from the target primary. A primary that
// answers again before the failover started cancels it (flapping).
func (p *planner) primaryUp(t InstanceStatus) {
	m := &p.mem
	if !m.PrimaryUnhealthySince.IsZero() {
		p.event(ReasonPrimaryRecovered, "%s is healthy again after %s; no failover",
			t.Name, p.since(m.PrimaryUnhealthySince))
		m.PrimaryUnhealthySince = time.Time{}
	}
	if m.CurrentPrimary != t.Name {
		p.event(ReasonPrimaryReady, "%s is primary at epoch %d", t.Name, m.Epoch)
		m.CurrentPrimary = t.Name
	}
	m.PrimaryLastLSN = t.CurrentLSN
}

// failover handles an unhealthy target primary t. It fences t only when a
// candidate exists, and restarts what it safely can when none does.
func (p *planner) failover(t InstanceStatus) {
	if !p.markUnhealthy(t) || !p.failoverDue(t) {
		return
	}
	c, ok := p.pickCandidate(t)
	if !ok {
		p.restartStopped(t)
		return
	}
	if !p.oldPrimarySafe(t) {
		return
	}
	if !p.spec.durable() && c.ReceivedLSN < p.mem.PrimaryLastLSN {
		p.warn(ReasonDataLossRisk, "%s is the most advanced replica but received only %s of the %s that %s last reported %s ago: up to %d bytes of WAL may be lost",
			c.Name, c.ReceivedLSN, p.mem.PrimaryLastLSN, t.Name, p.since(p.mem.PrimaryLastSeen),
			c.ReceivedLSN.bytesBehind(p.mem.PrimaryLastLSN))
	}
	p.event(ReasonFailover, "primary %s %s: promoting %s (timeline %d, received %s) at epoch %d",
		t.Name, p.describe(t), c.Name, c.Timeline, c.ReceivedLSN, p.mem.Epoch+1)
	p.promote(c, t.Name, p.mem.CurrentPrimary)
}

// markUnhealthy records since when the target has looked unhealthy. An
// unreachable target only counts once UnreachableTimeout has passed.
func (p *planner) markUnhealthy(t InstanceStatus) bool {
	m := &p.mem
	if !t.Reachable {
		if m.PrimaryLastSeen.IsZero() {
			m.PrimaryLastSeen = p.now
		}
		if away := p.now.Sub(m.PrimaryLastSeen); away < p.spec.UnreachableTimeout {
			p.hold("primary %s has not answered for %s", t.Name, p.since(m.PrimaryLastSeen))
			p.recheckIn(p.spec.UnreachableTimeout - away)
			return false
		}
	}
	if m.PrimaryUnhealthySince.IsZero() {
		m.PrimaryUnhealthySince = p.now
		p.warn(ReasonPrimaryUnhealthy, "primary %s %s", t.Name, p.describe(t))
	}
	return true
}

// failoverDue holds a single instance (restarting it when that is safe) and
// waits out FailoverDelay.
func (p *planner) failoverDue(t InstanceStatus) bool {
	if len(p.spec.Instances) == 1 {
		p.restartStopped(t)
		p.hold("single-instance cluster: no failover; waiting for %s to recover", t.Name)
		return false
	}
	if wait := p.mem.PrimaryUnhealthySince.Add(p.spec.FailoverDelay).Sub(p.now); wait > 0 {
		p.hold("primary %s %s; failoverDelay leaves %s before failing over", t.Name, p.describe(t), wait)
		p.recheckIn(wait)
		return false
	}
	return true
}

// restartStopped starts, while no failover is possible, what can safely run:
// stopped unfenced replicas, which accept no writes and may become
// candidates, and the target primary t itself, even if it fenced itself: no
// other instance is allowed to be primary at this epoch.
func (p *planner) restartStopped(t InstanceStatus) {
	for _, n := range p.spec.Instances {
		s := p.status(n)
		if n != t.Name && s.Role == RoleReplica && s.Reachable && !s.PostmasterRunning && !s.Fenced && !s.Empty {
			p.act(Action{Kind: ActionStart, Instance: n})
		}
	}
	if _, ok := p.writableOther(t.Name); t.Reachable && !t.PostmasterRunning && !t.Empty && !ok {
		p.act(Action{Kind: ActionStart, Instance: t.Name})
	}
}

// pickCandidate returns the replica to promote in place of old, or holds.
func (p *planner) pickCandidate(old InstanceStatus) (InstanceStatus, bool) {
	cands := p.candidates(old.Name, p.mem.CurrentPrimary)
	if len(cands) == 0 {
		p.hold("no replica is ready to replace %s", old.Name)
		return InstanceStatus{}, false
	}
	allowed, why := p.syncAllowed(cands)
	if len(allowed) == 0 {
		p.hold("not promoting: %s", why)
		return InstanceStatus{}, false
	}
	return p.preferRoutable(allowed), true
}

// preferRoutable returns the first of cands (allowed, most advanced first),
// or, when that one is Unroutable, a routable one holding exactly the same
// WAL (timeline and received LSN; replay only lags, promotion finishes it):
// promoted, it serves clients at once. Never a less advanced one: a
// candidate that may hold an acknowledged commit the other lacks always
// wins, however long the router takes to count it.
func (p *planner) preferRoutable(cands []InstanceStatus) InstanceStatus {
	best := cands[0]
	if !best.Unroutable {
		return best
	}
	for _, c := range cands[1:] {
		if !c.Unroutable && c.Timeline == best.Timeline && c.ReceivedLSN == best.ReceivedLSN {
			p.event(ReasonRoutableCandidate, "%s holds the same WAL as %s (%s) and clients can be routed to it already: promoting it instead",
				c.Name, best.Name, c.ReceivedLSN)
			return c
		}
	}
	return best
}

// candidates returns the ready replicas of the spec other than exclude, most
// advanced first.
func (p *planner) candidates(exclude ...string) []InstanceStatus {
	var out []InstanceStatus
	for _, n := range p.spec.Instances {
		if s := p.status(n); s.readyReplica() && !contains(exclude, n) {
			out = append(out, s)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return moreAdvanced(out[i], out[j]) })
	return out
}

// moreAdvanced orders promotion candidates: newer timeline, then more WAL
// received, then more replayed, then name for determinism.
func moreAdvanced(a, b InstanceStatus) bool {
	switch {
	case a.Timeline != b.Timeline:
		return a.Timeline > b.Timeline
	case a.ReceivedLSN != b.ReceivedLSN:
		return a.ReceivedLSN > b.ReceivedLSN
	case a.ReplayedLSN != b.ReplayedLSN:
		return a.ReplayedLSN > b.ReplayedLSN
	}
	return a.Name < b.Name
}

// promote makes c the target primary at a new epoch and issues the
// promotion; olds are the primaries it replaces.
func (p *planner) promote(c InstanceStatus, olds ...string) {
	if w, ok := p.writableOther(c.Name); ok {
		p.hold("not promoting %s while %s may accept writes", c.Name, w)
		return
	}
	m := &p.mem
	// A switchover requested but not started is moot once another
	// promotion happens (its own promotion cleared it first).
	if m.Switchover.To != "" {
		p.endSwitchover(SwitchoverSuperseded, fmt.Sprintf("a failover promoted %s first", c.Name))
	}
	m.Epoch++
	m.TargetPrimary = c.Name
	m.PrimaryUnhealthySince = time.Time{}
	m.PrimaryLastSeen = c.ObservedAt
	p.appendSync(p.desiredSync(c.Name, p.followers(olds...)))
	p.promotionActions(olds...)
}

// resumePromotion reissues a promotion that was decided but not yet seen
// done: the target is still a replica.
func (p *planner) resumePromotion() {
	if w, ok := p.writableOther(p.mem.TargetPrimary); ok {
		p.hold("not promoting %s while %s may accept writes", p.mem.TargetPrimary, w)
		return
	}
	p.promotionActions(p.mem.CurrentPrimary)
}

// promotionActions fences the reachable old primaries, promotes the target
// and repoints the other ready replicas to it.
func (p *planner) promotionActions(olds ...string) {
	m := &p.mem
	done := map[string]bool{m.TargetPrimary: true}
	for _, o := range olds {
		if s := p.status(o); !done[o] && s.Reachable {
			p.act(Action{Kind: ActionFence, Instance: o})
		}
		done[o] = true
	}
	p.act(Action{Kind: ActionPromote, Instance: m.TargetPrimary, Epoch: m.Epoch, SyncStandbys: p.lastSync(), Designated: p.spec.ReplicaCluster})
	for _, f := range p.followers(olds...) {
		p.act(Action{Kind: ActionFollow, Instance: f, Primary: m.TargetPrimary})
	}
}

// followers returns, in spec order, the ready replicas other than the
// target primary and olds: the ones that will follow the target.
func (p *planner) followers(olds ...string) []string {
	var out []string
	for _, n := range p.spec.Instances {
		if n != p.mem.TargetPrimary && !contains(olds, n) && p.status(n).readyReplica() {
			out = append(out, n)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// replicaPromotion reports whether the target t is the designated primary
// of a cluster that is no longer a replica, or the same instance with the
// promotion in flight (it took the new epoch and is leaving recovery):
// then it is promoted in place, never replaced by a failover.
func (p *planner) replicaPromotion(t InstanceStatus) bool {
	if p.spec.ReplicaCluster || !t.readyReplica() {
		return false
	}
	return t.Designated || (t.Epoch == p.mem.Epoch && p.mem.CurrentPrimary == t.Name)
}

// promoteReplicaCluster turns a replica cluster into an independent one:
// its designated primary t is promoted in place, onto a new timeline at a
// new epoch, and its replicas, which already cascade from it, follow the
// timeline switch. An epoch already raised (t reports the old one) means
// the promotion was decided and is reissued, never decided twice.
func (p *planner) promoteReplicaCluster(t InstanceStatus) {
	if w, ok := p.writableOther(t.Name); ok {
		p.hold("not promoting the replica cluster's designated primary %s while %s may accept writes", t.Name, w)
		return
	}
	m := &p.mem
	if t.Designated && t.Epoch >= m.Epoch {
		m.Epoch = max(m.Epoch, t.Epoch) + 1
		m.PrimaryUnhealthySince = time.Time{}
		m.PrimaryLastSeen = t.ObservedAt
		p.event(ReasonReplicaPromoted, "the cluster is no longer a replica: promoting its designated primary %s at epoch %d", t.Name, m.Epoch)
	}
	p.act(Action{Kind: ActionPromote, Instance: t.Name, Epoch: m.Epoch, SyncStandbys: p.lastSync()})
}
