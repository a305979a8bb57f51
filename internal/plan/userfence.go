package plan

import "slices"

// Event reasons of the user's fencing and hibernation.
const (
	ReasonFenced      = "Fenced"
	ReasonUnfenced    = "Unfenced"
	ReasonHibernation = "Hibernation"
)

// userFence carries out the user's fencing and hibernation requests
// (Spec.Fenced, Spec.Hibernate), CloudNativePG's semantics: a fenced
// instance is shut down cleanly and kept down, and the cluster does not
// fail a fenced primary over (the user stopped it on purpose); lifting the
// request starts it again in its role. Memory.UserFenced remembers whom
// the planner stopped on request, so that the stopped primary of a lifted
// request is started rather than replaced. It returns true when the round
// ends here: the primary is down on request, or being started again.
func (p *planner) userFence(target InstanceStatus) bool {
	if p.mem.CurrentPrimary == "" || p.mem.Switchover.From != "" {
		// Before the first primary, or while a switchover's shutdown is
		// under way: that ends first.
		return false
	}
	// The primary first: its clean shutdown sends the last WAL to the
	// replicas that still run.
	order := append([]string{target.Name}, slices.DeleteFunc(slices.Clone(p.spec.Instances), func(n string) bool { return n == target.Name })...)
	starting := false
	for _, n := range order {
		s := p.status(n)
		if p.spec.fenced(n) {
			p.fenceOnRequest(s)
			continue
		}
		if !slices.Contains(p.mem.UserFenced, n) {
			continue
		}
		switch {
		case !s.Reachable:
			// Started once its manager answers again (a recreated pod).
			starting = starting || n == target.Name
		case s.PostmasterRunning && !s.Fenced:
			p.mem.UserFenced = slices.DeleteFunc(p.mem.UserFenced, func(x string) bool { return x == n })
		case n == target.Name:
			if other, ok := p.writableOther(n); ok {
				p.hold("not starting %s: %s accepts writes", n, other)
			} else {
				p.event(ReasonUnfenced, "starting primary %s again: its fencing or hibernation was lifted", n)
				p.act(Action{Kind: ActionStart, Instance: n})
			}
			starting = true
		case s.Role == RoleReplica && !s.Empty:
			p.event(ReasonUnfenced, "starting replica %s again: its fencing or hibernation was lifted", n)
			p.act(Action{Kind: ActionStart, Instance: n})
		default:
			// Not a replica's data (a former primary): the usual repair
			// (rejoin or clone) applies.
			p.mem.UserFenced = slices.DeleteFunc(p.mem.UserFenced, func(x string) bool { return x == n })
		}
	}
	switch {
	case p.spec.Hibernate:
		p.hold("hibernated: every instance is kept down (%s=on)", "cnpg.io/hibernation")
		return true
	case p.spec.fenced(target.Name):
		p.hold("primary %s is fenced on request: no failover while it is", target.Name)
		return true
	case starting:
		p.hold("primary %s is being started again after its fencing or hibernation", target.Name)
		p.recheckIn(p.spec.CheckInterval)
		return true
	}
	return false
}

// fenceOnRequest shuts s down cleanly and keeps it down, once.
func (p *planner) fenceOnRequest(s InstanceStatus) {
	if !slices.Contains(p.mem.UserFenced, s.Name) {
		p.mem.UserFenced = append(p.mem.UserFenced, s.Name)
		slices.Sort(p.mem.UserFenced)
	}
	if !s.Reachable || (s.Fenced && !s.PostmasterRunning) || s.Empty {
		return
	}
	reason, why := ReasonFenced, "fenced on request"
	if p.spec.Hibernate {
		reason, why = ReasonHibernation, "the cluster hibernates"
	}
	p.event(reason, "shutting %s down cleanly: %s", s.Name, why)
	p.act(Action{Kind: ActionDemote, Instance: s.Name})
}

// Hibernated reports whether a hibernating cluster is all down on request:
// every instance stopped by the planner for the hibernation (in
// Memory.UserFenced) reports PostgreSQL stopped and fenced, or no longer
// answers. A runtime may then release what the instances hold beside
// their data: the Kubernetes operator deletes the pods and keeps the PVCs.
func Hibernated(spec Spec, mem Memory, observed []InstanceStatus) bool {
	if !spec.Hibernate || len(spec.Instances) == 0 {
		return false
	}
	for _, n := range spec.Instances {
		if !slices.Contains(mem.UserFenced, n) {
			return false
		}
		for _, s := range observed {
			if s.Name == n && s.Reachable && (s.PostmasterRunning || !s.Fenced) {
				return false
			}
		}
	}
	return true
}
