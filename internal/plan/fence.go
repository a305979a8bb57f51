package plan

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// FenceTiming holds what decides how long an unreachable primary must stay
// silent before Next may promote another instance; Bound turns it into
// Spec.SelfFenceBound.
//
// The argument that the two windows never overlap:
//
//  1. The caller sets ObservedAt to the moment it sends a status request and
//     counts an answer only if it arrives within RequestTimeout. So when Next
//     records PrimaryLastSeen = s, the primary's instance manager received
//     that request at some real time r <= s + RequestTimeout.
//  2. The instance manager counts as contact only exchanges the controller
//     completed: when request k+1 says the answer to request k arrived, it
//     restarts its timer from its receipt of request k. Its latest such
//     receipt is therefore no later than r. Peers do not restart the timer:
//     a primary that still reaches a replica but not the controller must
//     fence all the same.
//  3. It stops accepting writes once SelfFence has passed on its monotonic
//     clock, checking every CheckInterval and taking at most StopTime to stop.
//     With clock rates wrong by at most Drift, it accepts no writes after
//     real time r + SelfFence*(1+Drift) + CheckInterval + StopTime.
//  4. Next promotes another instance only when now - PrimaryLastSeen >=
//     SelfFenceBound on the controller's clock. That clock may run slow by
//     Drift and jump forward by ClockStep (PrimaryLastSeen is persisted as
//     wall-clock time), so the promotion happens at real time at least
//     s + (SelfFenceBound - ClockStep)*(1-Drift). A controller that keeps
//     every time it compares on one process's monotonic clock (the
//     Kubernetes operator) and trusts no stored time after a restart
//     (control.Resume) has ClockStep 0: a monotonic clock is slewed
//     (Drift) but never stepped.
//
// Where the primary renews a lease of its own (on Kubernetes, the cluster's
// coordination Lease, renewed through the API server), a renewal is a
// second kind of contact, so that an operator restart of any length does
// not stop writes while the API server is up, and an API server outage
// does not while the operator is up. The argument extends to it:
//
//  5. A renewal is a read of the Lease and an update conditioned on the
//     resourceVersion read. The instance manager restarts its timer from
//     the moment it sent the read, and only once the update succeeded: the
//     timer's start s precedes the API server's write w of that renewal
//     (s <= w), however long the requests took.
//  6. The controller reads the Lease at each check, within RequestTimeout,
//     and sets LeaseSeen to the send time g of the read that first
//     returned the Lease's current resourceVersion (or, if earlier, the
//     receipt of a watch event carrying that version: the API server sends
//     it after the write, so w <= g holds for it); a controller that just
//     started has no history and takes its first read (conservative: the
//     Lease may have changed just before). Every renewal stored up to that
//     version was written before the read was served: w <= g +
//     RequestTimeout.
//  7. Before it promotes another instance, the controller moves the Lease
//     to the new primary (holderIdentity) with an update conditioned on
//     that same resourceVersion, and only once now - LeaseSeen >= the
//     bound. If the update succeeds, no renewal was stored since the read,
//     and none can be after it: the old primary's update carries an older
//     resourceVersion, and its next read shows another holder. If it fails,
//     the Lease changed (the old primary renewed), and nothing is promoted.
//     So every renewal that counts has s <= LeaseSeen + RequestTimeout:
//     the relation step 1 gives for PrimaryLastSeen.
//  8. Next counts from the later of PrimaryLastSeen and LeaseSeen, so steps
//     3 and 4 hold with r <= max(PrimaryLastSeen, LeaseSeen) +
//     RequestTimeout, and Bound is the same. The Lease's times (renewTime)
//     are never compared with anything: only the change of its
//     resourceVersion is, timed on the controller's own clock, so the
//     instance's and the API server's wall clocks do not matter; the
//     instance's timer runs on its monotonic clock (Drift). The renew
//     period and the renewal's own request timeout decide only how many
//     renewals may fail before a primary the controller cannot reach
//     fences itself (availability), never the bound (safety).
//
// Bound returns the smallest bound with
// (bound - ClockStep)*(1-Drift) > RequestTimeout + SelfFence*(1+Drift) +
// CheckInterval + StopTime, so the promotion comes strictly after the old
// primary stopped accepting writes.
type FenceTiming struct {
	// SelfFence is how long the instance manager lets a primary accept
	// writes without contact (F).
	SelfFence time.Duration
	// RequestTimeout is the longest the controller waits for a status
	// answer, and for a read of the lease where there is one.
	RequestTimeout time.Duration
	// CheckInterval is how often the instance manager checks its timer.
	CheckInterval time.Duration
	// StopTime is the longest it takes to stop accepting writes.
	StopTime time.Duration
	// ClockStep is the largest forward jump of the controller's wall clock.
	ClockStep time.Duration
	// Drift is the largest relative clock rate error, as a fraction (1e-4).
	Drift float64
}

// Bound returns the smallest safe Spec.SelfFenceBound for t.
func (t FenceTiming) Bound() (time.Duration, error) {
	if t.SelfFence <= 0 {
		return 0, errors.New("self-fencing needs a positive SelfFence")
	}
	if t.Drift < 0 || t.Drift >= 0.5 || math.IsNaN(t.Drift) {
		return 0, errors.New("drift must be in [0, 0.5)")
	}
	if t.RequestTimeout < 0 || t.CheckInterval < 0 || t.StopTime < 0 || t.ClockStep < 0 {
		return 0, errors.New("negative duration")
	}
	fenced := float64(t.RequestTimeout+t.CheckInterval+t.StopTime) + float64(t.SelfFence)*(1+t.Drift)
	bound := fenced/(1-t.Drift) + float64(t.ClockStep)
	return time.Duration(math.Ceil(bound)) + 1, nil
}

// LeaseBound is the promotion bound for a primary Lease whose configured
// duration is lease (zero: not configured) and whose holder self-fences
// after t.SelfFence (spec.primaryLease's leaseDurationSeconds and
// renewDeadlineSeconds on Kubernetes): the lease itself when it is at least
// t.Bound(), the derived bound when none is configured, and an error when
// the configured one is shorter, since promoting then could overlap the
// old primary's last writes.
func (t FenceTiming) LeaseBound(lease time.Duration) (time.Duration, error) {
	bound, err := t.Bound()
	if err != nil {
		return 0, err
	}
	switch {
	case lease == 0:
		return bound, nil
	case lease < bound:
		return 0, fmt.Errorf("a lease of %s is shorter than the %s a primary that self-fences after %s may keep writing for",
			lease, bound.Round(time.Millisecond), t.SelfFence)
	}
	return lease, nil
}

// staleMemory holds when an instance reports an epoch the memory never
// issued: the persisted Memory is older than the cluster, and acting on it
// could promote a second primary.
func (p *planner) staleMemory() bool {
	for _, n := range p.names {
		if s := p.obs[n]; s.Reachable && s.Epoch > p.mem.Epoch {
			p.hold("%s reports epoch %d but the persisted memory is at epoch %d: the memory is stale; refusing to act",
				n, s.Epoch, p.mem.Epoch)
			return true
		}
	}
	return false
}

// fenceRogues fences every instance other than the target primary that may
// accept writes.
func (p *planner) fenceRogues() {
	for _, n := range p.names {
		s := p.obs[n]
		if n == p.mem.TargetPrimary || !s.writable() {
			continue
		}
		p.warn(ReasonSplitBrain, "%s accepts writes as primary (epoch %d) but %s is the primary at epoch %d: fencing %s",
			n, s.Epoch, p.mem.TargetPrimary, p.mem.Epoch, n)
		p.act(Action{Kind: ActionFence, Instance: n})
	}
}

// writableOther returns an instance other than except that may accept
// writes, if any. No instance is promoted or started while one exists.
func (p *planner) writableOther(except string) (string, bool) {
	for _, n := range p.names {
		if n != except && p.obs[n].writable() {
			return n, true
		}
	}
	return "", false
}

// oldPrimarySafe reports whether the unhealthy target t can no longer accept
// writes: it is fenced, its reachable instance manager reports postgres
// down, or it has been silent for the self-fencing bound. Otherwise it fences
// t when it can, and holds.
func (p *planner) oldPrimarySafe(t InstanceStatus) bool {
	switch {
	case !t.Reachable:
		return p.selfFenced(t)
	case t.Fenced || !t.PostmasterRunning || t.Empty:
		return true
	default:
		p.act(Action{Kind: ActionFence, Instance: t.Name})
		p.hold("fencing %s (%s) before promoting another instance", t.Name, p.describe(t))
		return false
	}
}

// selfFenced reports whether the unreachable target t has surely stopped
// accepting writes by itself: both its last answer and its last lease
// renewal seen (if the runtime has a lease) are at least the bound old.
// Either one restarts its self-fencing timer, so the later one counts.
func (p *planner) selfFenced(t InstanceStatus) bool {
	bound, last := p.spec.SelfFenceBound, p.mem.PrimaryLastSeen
	contact := "has not answered for " + p.since(last).String()
	if t.LeaseSeen.After(last) {
		last = t.LeaseSeen
		contact = fmt.Sprintf("has not answered for %s but renewed its lease %s ago", p.since(p.mem.PrimaryLastSeen), p.since(last))
	}
	away := p.now.Sub(last)
	switch {
	case bound == 0:
		p.hold("%s %s and may still accept writes; with no self-fencing bound it must be fenced or confirmed dead",
			t.Name, contact)
		return false
	case away < bound:
		p.hold("%s %s and may still accept writes until the self-fencing bound %s has passed",
			t.Name, contact, bound)
		p.recheckIn(bound - away)
		return false
	}
	return true
}

// describe says in a few words what is wrong with the target primary t.
func (p *planner) describe(t InstanceStatus) string {
	switch {
	case !t.Reachable:
		return "has not answered for " + p.since(p.mem.PrimaryLastSeen).String()
	case t.Empty:
		return "has lost its data"
	case !t.PostmasterRunning:
		return "reports postgres stopped"
	case t.Fenced:
		return "is fenced"
	case t.Role != RolePrimary:
		return "reports role " + string(t.Role)
	case t.Epoch != p.mem.Epoch:
		return "reports a stale epoch"
	}
	return "is healthy"
}
