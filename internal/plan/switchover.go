package plan

import (
	"fmt"
	"time"
)

// A switchover moves the primary role without losing a commit: the old
// primary shuts down cleanly (sending its WAL to the connected replicas),
// the target waits until it has received the old primary's final WAL, then
// it is promoted and the others follow. The old primary rejoins later as a
// replica. If the target does not catch up within SwitchoverTimeout, the old
// primary is started again and the switchover is dropped.

// startSwitchover begins the switchover the user asked for, with pr the
// healthy primary. It reports whether it issued the shutdown; when not, it
// has refused the request or explained the wait.
func (p *planner) startSwitchover(pr InstanceStatus) bool {
	sw := &p.mem.Switchover
	to := sw.To
	switch {
	case to == pr.Name:
		p.event(ReasonSwitchover, "%s is already the primary", to)
		p.endSwitchover(SwitchoverDone, to+" is already the primary")
		return false
	case !p.spec.has(to):
		why := to + " is not an instance of this cluster"
		p.warn(ReasonSwitchover, "switchover refused: %s", why)
		p.endSwitchover(SwitchoverRefused, why)
		return false
	case p.spec.ReplicaCluster:
		// A designated primary has no WAL of its own to hand over: it is
		// replaced only when it fails, or promoted with the cluster.
		why := "a replica cluster's designated primary changes only by failover; promote the replica cluster (spec.replica) first"
		p.warn(ReasonSwitchover, "switchover refused: %s", why)
		p.endSwitchover(SwitchoverRefused, why)
		return false
	}
	r := p.status(to)
	if !r.readyReplica() || r.StreamingFrom != pr.Name {
		sw.Since = time.Time{} // the wait for a route starts once it streams
		p.hold("switchover to %s waits until it is a replica streaming from %s", to, pr.Name)
		return false
	}
	if r.Unroutable && !p.routeWaitOver(to) {
		return false
	}
	if sw.ID == rollingUpdateID {
		// Its shutdown now, its start as it rejoins: a restart, whichever
		// step issues it (the first, or one after a wait for the target).
		p.restarted(pr.Name)
	}
	sw.From, sw.Since = pr.Name, p.now
	p.event(ReasonSwitchover, "switchover from %s to %s: shutting %s down cleanly", pr.Name, to, pr.Name)
	p.act(Action{Kind: ActionDemote, Instance: pr.Name})
	return true
}

// routeWaitOver holds a switchover to the Unroutable target to for up to
// Spec.RouteWait, and reports whether that wait is over. Shutting the
// primary down before clients can be routed to its successor leaves them
// nothing to connect to from the moment the old one stops until the router
// counts the new one (on real pods: a client's connect hung to its 2 s
// timeout, docs/benchmarks.md); the primary keeps serving meanwhile. The
// bound keeps a router that never counts the target (a broken readiness
// probe) from blocking the switchover, and the warning says it went ahead.
// Switchover.Since records, until the shutdown is issued, when the wait
// began.
func (p *planner) routeWaitOver(to string) bool {
	sw := &p.mem.Switchover
	if sw.Since.After(p.now) {
		// Stored by a process whose clock ran ahead (another operator
		// leader): the wait stays bounded by RouteWait from now.
		sw.Since = p.now
	}
	if sw.Since.IsZero() {
		sw.Since = p.now
		p.event(ReasonSwitchover, "switchover to %s waits up to %s until clients can be routed to it (on Kubernetes: until its pod is Ready); the primary serves meanwhile",
			to, p.spec.RouteWait)
	}
	if left := sw.Since.Add(p.spec.RouteWait).Sub(p.now); left > 0 {
		p.hold("switchover to %s waits until clients can be routed to it (on Kubernetes: its pod is not Ready yet), at most %s more",
			to, left.Round(time.Millisecond))
		p.recheckIn(left)
		return false
	}
	p.warn(ReasonSwitchover, "switchover to %s goes ahead although clients cannot be routed to it yet (on Kubernetes: its pod is still not Ready after %s): they reach the new primary only once it is",
		to, p.spec.RouteWait)
	return true
}

// continueSwitchover drives a switchover whose shutdown was issued.
func (p *planner) continueSwitchover() {
	sw := p.mem.Switchover
	from, to := p.status(sw.From), p.status(sw.To)
	late := p.now.Sub(sw.Since) >= p.spec.SwitchoverTimeout
	switch {
	case sw.From != p.mem.TargetPrimary:
		p.endSwitchover(SwitchoverSuperseded, fmt.Sprintf("%s is no longer the target primary (%s is)", sw.From, p.mem.TargetPrimary))
		p.hold("dropped a switchover from %s, which is no longer the target primary", sw.From)
	case !from.Reachable:
		why := fmt.Sprintf("%s stopped answering during its shutdown", sw.From)
		p.endSwitchover(SwitchoverAborted, why+"; failing over instead")
		p.warn(ReasonSwitchover, "switchover to %s aborted: %s", sw.To, why)
		p.failover(from)
	case sw.To == "":
		p.abortSwitchover(from, "the request was withdrawn")
	case late && (from.PostmasterRunning || !to.readyReplica() || to.ReceivedLSN < from.CurrentLSN):
		p.abortSwitchover(from, fmt.Sprintf("%s did not catch up within %s", sw.To, p.spec.SwitchoverTimeout))
	case from.PostmasterRunning:
		p.act(Action{Kind: ActionDemote, Instance: from.Name})
		p.hold("switchover: waiting for %s to shut down", from.Name)
		p.recheckIn(sw.Since.Add(p.spec.SwitchoverTimeout).Sub(p.now))
	case from.CurrentLSN == 0:
		// Stopped, but its manager has not read where its WAL ends yet
		// (pg_controldata runs after the shutdown): 0 is "unknown", not
		// "nothing to wait for". Promoting now could leave the shutdown's
		// last records, and the commits before them, behind.
		if late {
			p.abortSwitchover(from, fmt.Sprintf("%s's final WAL position was not known within %s", from.Name, p.spec.SwitchoverTimeout))
			return
		}
		p.hold("switchover: waiting for %s to report where its WAL ends", from.Name)
		p.recheckIn(sw.Since.Add(p.spec.SwitchoverTimeout).Sub(p.now))
	case !to.readyReplica() || to.ReceivedLSN < from.CurrentLSN:
		p.hold("switchover: %s has received %s of %s's final %s", to.Name, to.ReceivedLSN, from.Name, from.CurrentLSN)
		p.recheckIn(sw.Since.Add(p.spec.SwitchoverTimeout).Sub(p.now))
	default:
		p.endSwitchover(SwitchoverPromoting, "")
		p.event(ReasonSwitchover, "%s has received all of %s's WAL (%s): promoting it at epoch %d",
			to.Name, from.Name, from.CurrentLSN, p.mem.Epoch+1)
		p.promote(to, from.Name)
	}
}

// abortSwitchover gives up and starts the old primary again. Nothing was
// promoted, so it is still the only primary.
func (p *planner) abortSwitchover(from InstanceStatus, why string) {
	p.endSwitchover(SwitchoverAborted, why+"; "+from.Name+" stays the primary")
	p.warn(ReasonSwitchover, "switchover aborted: %s; restarting %s", why, from.Name)
	if w, ok := p.writableOther(from.Name); ok {
		p.hold("not restarting %s while %s may accept writes", from.Name, w)
		return
	}
	p.act(Action{Kind: ActionStart, Instance: from.Name})
}
