package plan

import "time"

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
}

func (p *planner) maintainReplica(s, pr InstanceStatus) {
	p.trackDiverged(s, pr)
	switch {
	case !s.Reachable:
	case s.Empty:
		p.event(ReasonRecreate, "%s has no data: cloning it from %s", s.Name, pr.Name)
		p.act(Action{Kind: ActionRecreate, Instance: s.Name, Primary: pr.Name})
	case s.Role == RolePrimary:
		p.event(ReasonRejoin, "%s was a primary (epoch %d): rejoining it as a replica of %s", s.Name, s.Epoch, pr.Name)
		p.act(Action{Kind: ActionRejoin, Instance: s.Name, Primary: pr.Name})
	case s.Fenced:
		// Fenced by an operator: left alone.
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
