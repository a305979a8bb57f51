package plan

import "fmt"

// Synchronous replication keeps two promises: with MinSyncReplicas > 0 no
// failover loses an acknowledged commit, and writes block rather than go
// unreplicated.
//
// Memory.SyncStandbys is the history that makes the first promise
// checkable. A value joins it before any action asks a primary to use it
// (Bootstrap, Promote, SetSyncStandbys). Older values leave it only once the
// primary runs with the newest one and that value's Num standbys have
// received the primary's position from that moment (SyncCoverLSN): every
// commit acknowledged under an older value lies before that position, so
// those standbys hold it too. WAL is a prefix, so whoever holds the latest
// acknowledged commit holds all earlier ones.

// desiredSync returns the synchronous_standby_names value for primary given
// its streaming replicas (in spec order): all of them, counting as many as
// allowed between MinSyncReplicas and MaxSyncReplicas. With fewer streaming
// replicas than MinSyncReplicas it lists every other instance with
// Num = MinSyncReplicas, so writes wait for them instead of silently losing
// their protection (dataDurability "required").
//
// With Spec.SyncDomains only instances in another failure domain than the
// primary's count, streaming or listed.
func (p *planner) desiredSync(primary string, streaming []string) SyncConfig {
	lo, hi := p.spec.MinSyncReplicas, p.spec.MaxSyncReplicas
	if hi == 0 {
		return SyncConfig{}
	}
	streaming = p.otherDomain(primary, streaming)
	if len(streaming) >= lo {
		n := min(len(streaming), hi)
		if n == 0 {
			return SyncConfig{}
		}
		return SyncConfig{Method: p.spec.SyncMethod, Num: n, Names: streaming}
	}
	var all []string
	for _, n := range p.spec.Instances {
		if n != primary {
			all = append(all, n)
		}
	}
	all = p.otherDomain(primary, all)
	if len(all) == 0 {
		all = []string{NoEligibleStandby}
	}
	return SyncConfig{Method: p.spec.SyncMethod, Num: lo, Names: all}
}

// otherDomain keeps, in order, the names in another failure domain than
// primary's; all of them when SyncDomains is nil (no constraint).
func (p *planner) otherDomain(primary string, names []string) []string {
	if p.spec.SyncDomains == nil {
		return names
	}
	home, ok := p.spec.SyncDomains[primary]
	if !ok {
		return nil
	}
	var out []string
	for _, n := range names {
		if d, ok := p.spec.SyncDomains[n]; ok && d != home {
			out = append(out, n)
		}
	}
	return out
}

// appendSync records c as the newest value the primary may run with.
func (p *planner) appendSync(c SyncConfig) {
	h := p.mem.SyncStandbys
	if len(h) > 0 && h[len(h)-1].String() == c.String() {
		return
	}
	p.mem.SyncStandbys = append(h, c)
	p.mem.SyncCoverLSN = 0
}

// lastSync returns the newest recorded value.
func (p *planner) lastSync() string {
	if h := p.mem.SyncStandbys; len(h) > 0 {
		return h[len(h)-1].String()
	}
	return ""
}

// maintainSync keeps the healthy primary pr's synchronous_standby_names
// matching its streaming replicas, one change at a time.
func (p *planner) maintainSync(pr InstanceStatus) {
	p.observeSync(pr)
	if last := p.lastSync(); len(p.mem.SyncStandbys) > 0 && last != pr.SyncStandbyNames {
		p.act(Action{Kind: ActionSetSyncStandbys, Instance: pr.Name, SyncStandbys: last})
		return
	}
	streaming := p.streaming(pr)
	want := p.desiredSync(pr.Name, streaming)
	if want.String() == pr.SyncStandbyNames {
		return
	}
	p.appendSync(want)
	p.event(ReasonSyncStandbys, "%d of %d replicas stream from %s: synchronous_standby_names %q becomes %q",
		len(streaming), len(p.spec.Instances)-1, pr.Name, pr.SyncStandbyNames, want.String())
	p.act(Action{Kind: ActionSetSyncStandbys, Instance: pr.Name, SyncStandbys: want.String()})
}

// observeSync updates the history from the value pr reports running with.
func (p *planner) observeSync(pr InstanceStatus) {
	m := &p.mem
	i := lastIndex(m.SyncStandbys, pr.SyncStandbyNames)
	if i < 0 {
		c, err := ParseSyncConfig(pr.SyncStandbyNames)
		if err != nil {
			p.warn(ReasonSyncStandbys, "cannot read the synchronous_standby_names of %s: %v", pr.Name, err)
			return
		}
		p.appendSync(c)
		i = len(m.SyncStandbys) - 1
	}
	if i < len(m.SyncStandbys)-1 || i == 0 {
		return // a newer value is not in effect yet, or nothing older to drop
	}
	if m.SyncCoverLSN == 0 {
		m.SyncCoverLSN = pr.CurrentLSN
	}
	if !p.spec.durable() || p.covered(m.SyncStandbys[i], m.SyncCoverLSN, pr) {
		m.SyncStandbys = m.SyncStandbys[i:]
		m.SyncCoverLSN = 0
	}
}

// covered reports whether c.Num of c's standbys streaming from pr have
// received lsn.
func (p *planner) covered(c SyncConfig, lsn LSN, pr InstanceStatus) bool {
	n := 0
	for _, name := range c.Names {
		if s := p.status(name); s.StreamingFrom == pr.Name && s.readyReplica() && s.ReceivedLSN >= lsn {
			n++
		}
	}
	return n >= c.Num
}

// streaming returns, in spec order, the replicas streaming from pr on its
// timeline.
func (p *planner) streaming(pr InstanceStatus) []string {
	var out []string
	for _, n := range p.spec.Instances {
		s := p.status(n)
		if n != pr.Name && s.readyReplica() && s.StreamingFrom == pr.Name && s.Timeline == pr.Timeline {
			out = append(out, n)
		}
	}
	return out
}

// syncAllowed narrows the promotion candidates (most advanced first) to
// those that hold every acknowledged commit, or explains why none can be
// shown to. Without required durability every candidate is allowed.
func (p *planner) syncAllowed(cands []InstanceStatus) ([]InstanceStatus, string) {
	if !p.spec.durable() {
		return cands, ""
	}
	if len(p.mem.SyncStandbys) == 0 {
		return nil, "no synchronous_standby_names was ever recorded for the primary, so no replica is known to hold its acknowledged commits"
	}
	ready := make(map[string]bool, len(cands))
	for _, c := range cands {
		ready[c.Name] = true
	}
	allowed, constrained := map[string]bool{}, false
	for _, c := range p.mem.SyncStandbys {
		if c.Num == 0 {
			continue
		}
		constrained = true
		seen := 0
		for _, n := range c.Names {
			if ready[n] {
				seen++
				allowed[n] = true
			}
		}
		if need := max(len(c.Names)-c.Num+1, 1); seen < need {
			return nil, fmt.Sprintf("under %q a commit is acknowledged once %d standbys have it, so %d of them must be ready to find the latest one; %d are",
				c.String(), c.Num, need, seen)
		}
	}
	if !constrained {
		return cands, ""
	}
	var out []InstanceStatus
	for _, c := range cands {
		if allowed[c.Name] {
			out = append(out, c)
		}
	}
	return out, ""
}

func lastIndex(h []SyncConfig, s string) int {
	for i := len(h) - 1; i >= 0; i-- {
		if h[i].String() == s {
			return i
		}
	}
	return -1
}
