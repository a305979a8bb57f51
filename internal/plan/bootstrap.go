package plan

// bootstrap handles an empty Memory: it adopts the running primary of a
// cluster whose memory was lost, or bootstraps a brand new cluster once every
// instance has answered with no data. It reports whether planning continues
// (after an adoption).
func (p *planner) bootstrap() bool {
	var data []InstanceStatus
	for _, n := range p.names {
		if s := p.obs[n]; s.Reachable && !s.Empty {
			data = append(data, s)
		}
	}
	if len(data) > 0 {
		return p.adopt(data)
	}
	for _, n := range p.spec.Instances {
		if !p.status(n).Reachable {
			p.hold("bootstrap waits until every instance answers (%s does not)", n)
			return false
		}
	}
	first := p.spec.Instances[0]
	m := &p.mem
	m.Epoch, m.TargetPrimary = 1, first
	m.PrimaryLastSeen = p.status(first).ObservedAt
	p.appendSync(p.desiredSync(first, nil))
	p.event(ReasonBootstrap, "bootstrapping %s as the first primary (epoch 1)", first)
	p.bootstrapPending(p.status(first))
	return false
}

// adopt takes over a cluster whose memory was lost: only when every instance
// answers and exactly one accepts writes, at the highest epoch any reports.
func (p *planner) adopt(data []InstanceStatus) bool {
	for _, n := range p.spec.Instances {
		if !p.status(n).Reachable {
			p.hold("memory is empty but instances hold data: adoption waits until every instance answers (%s does not)", n)
			return false
		}
	}
	var writers []InstanceStatus
	var top uint64
	for _, s := range data {
		top = max(top, s.Epoch)
		// A replica cluster's head is its designated primary, which is
		// the one to adopt there (and a writable instance is not).
		if (!p.spec.ReplicaCluster && s.writable()) || (p.spec.ReplicaCluster && s.designatedHead()) {
			writers = append(writers, s)
		}
	}
	if len(writers) != 1 || writers[0].Epoch == 0 || writers[0].Epoch < top {
		p.hold("memory is empty and no single primary at the highest epoch can be adopted (%d accept writes): refusing to guess",
			len(writers))
		return false
	}
	w := writers[0]
	m := &p.mem
	m.Epoch, m.TargetPrimary, m.CurrentPrimary = w.Epoch, w.Name, w.Name
	m.PrimaryLastSeen, m.PrimaryLastLSN = w.ObservedAt, w.CurrentLSN
	p.warn(ReasonAdopted, "memory was empty: adopting %s, the only primary, at epoch %d", w.Name, w.Epoch)
	return true
}

// bootstrapPending reissues the bootstrap until the first primary reports.
func (p *planner) bootstrapPending(t InstanceStatus) {
	if t.Reachable && t.Empty {
		p.act(Action{Kind: ActionBootstrap, Instance: t.Name, Epoch: p.mem.Epoch, SyncStandbys: p.lastSync(), Designated: p.spec.ReplicaCluster})
		return
	}
	p.hold("waiting for %s to finish bootstrapping (it %s)", t.Name, p.describe(t))
}
