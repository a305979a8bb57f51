package plantest

import (
	"fmt"
	"slices"
	"time"

	"github.com/pgward/pgward/internal/plan"
)

// Sim is a cluster in memory that runs plan Actions the way the instance
// managers would, with WAL modelled as the list of write IDs each instance
// holds. It is deterministic and knows nothing of the planner's decisions.
type Sim struct {
	Now time.Time
	// SelfFence is how long an isolated primary keeps accepting writes (F).
	SelfFence time.Duration
	// Acked lists the writes acknowledged to clients, by ID.
	Acked []int
	nodes []*Node
	next  int
}

// Node is one simulated instance.
type Node struct {
	Name     string
	Data     bool
	Running  bool
	Fenced   bool
	Primary  bool
	Isolated bool // cut off from the controller and every peer
	Epoch    uint64
	Timeline uint32
	WAL      []int
	Upstream string
	Sync     string
	// Restarts counts the ActionRestart it ran.
	Restarts int
	contact  time.Time
}

// NewSim returns a simulated cluster of empty instances.
func NewSim(now time.Time, selfFence time.Duration, names ...string) *Sim {
	s := &Sim{Now: now, SelfFence: selfFence}
	for _, n := range names {
		s.nodes = append(s.nodes, &Node{Name: n, contact: now})
	}
	return s
}

// Node returns the named instance, or nil.
func (s *Sim) Node(name string) *Node {
	for _, n := range s.nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Writable returns the instances that accept writes right now.
func (s *Sim) Writable() []string {
	var out []string
	for _, n := range s.nodes {
		if n.writable() {
			out = append(out, n.Name)
		}
	}
	return out
}

func (n *Node) writable() bool { return n.Data && n.Running && !n.Fenced && n.Primary }

func lsn(wal []int) plan.LSN { return Base + plan.LSN(0x100*len(wal)) }

// streaming reports whether replica r receives WAL from its upstream: both
// run and can talk, and r's WAL is a prefix of the upstream's.
func (s *Sim) streaming(r *Node) bool {
	u := s.Node(r.Upstream)
	if r.Primary || !r.Running || r.Isolated || u == nil || !u.Running || !u.Primary || u.Isolated {
		return false
	}
	return len(r.WAL) <= len(u.WAL) && slices.Equal(r.WAL, u.WAL[:len(r.WAL)])
}

// Step replicates WAL to streaming replicas and fences isolated primaries
// whose self-fencing time has passed.
func (s *Sim) Step() {
	for _, n := range s.nodes {
		if n.writable() && n.Isolated && s.Now.Sub(n.contact) >= s.SelfFence {
			n.Fenced, n.Running = true, false
		}
	}
	for _, n := range s.nodes {
		if s.streaming(n) {
			u := s.Node(n.Upstream)
			n.WAL, n.Timeline = slices.Clone(u.WAL), u.Timeline
		}
	}
}

// Write has clients write once to every writable instance; a write is
// acknowledged when its primary's synchronous standbys have it.
func (s *Sim) Write() {
	for _, p := range s.nodes {
		if !p.writable() {
			continue
		}
		s.next++
		p.WAL = append(p.WAL, s.next)
		s.Step()
		if s.syncSatisfied(p) {
			s.Acked = append(s.Acked, s.next)
		}
	}
}

func (s *Sim) syncSatisfied(p *Node) bool {
	c, err := plan.ParseSyncConfig(p.Sync)
	if err != nil {
		return false
	}
	have := 0
	for _, name := range c.Names {
		if r := s.Node(name); r != nil && s.streaming(r) && r.Upstream == p.Name {
			have++
		}
	}
	return have >= c.Num
}

// Lost returns the acknowledged writes that primary does not hold.
func (s *Sim) Lost(primary string) []int {
	p := s.Node(primary)
	var out []int
	for _, id := range s.Acked {
		if p == nil || !slices.Contains(p.WAL, id) {
			out = append(out, id)
		}
	}
	return out
}

// Observe returns what a controller polling every instance sees now.
func (s *Sim) Observe() []plan.InstanceStatus {
	var out []plan.InstanceStatus
	for _, n := range s.nodes {
		if n.Isolated {
			out = append(out, plan.InstanceStatus{Name: n.Name, ObservedAt: s.Now})
			continue
		}
		n.contact = s.Now
		out = append(out, s.status(n))
	}
	return out
}

func (s *Sim) status(n *Node) plan.InstanceStatus {
	st := plan.InstanceStatus{
		Name: n.Name, Reachable: true, ObservedAt: s.Now, Empty: !n.Data,
		PostmasterRunning: n.Running, Fenced: n.Fenced, Role: plan.RoleUnknown,
		Epoch: n.Epoch, Timeline: n.Timeline,
	}
	switch {
	case !n.Data:
	case n.Primary:
		st.Role, st.CurrentLSN, st.SyncStandbyNames = plan.RolePrimary, lsn(n.WAL), n.Sync
	default:
		st.Role, st.ReceivedLSN, st.ReplayedLSN = plan.RoleReplica, lsn(n.WAL), lsn(n.WAL)
		if s.streaming(n) {
			st.StreamingFrom = n.Upstream
		}
	}
	return st
}

// Apply runs actions in order, stopping at the first that fails.
func (s *Sim) Apply(actions []plan.Action) error {
	for _, a := range actions {
		if err := s.apply(a); err != nil {
			return fmt.Errorf("%s: %w", a, err)
		}
	}
	return nil
}

func (s *Sim) apply(a plan.Action) error {
	if a.Kind == plan.ActionHold {
		return nil
	}
	n := s.Node(a.Instance)
	if n == nil || n.Isolated {
		return fmt.Errorf("%s does not answer", a.Instance)
	}
	switch a.Kind {
	case plan.ActionBootstrap:
		if !n.Data {
			*n = Node{Name: n.Name, Data: true, Running: true, Primary: true, Epoch: a.Epoch, Timeline: 1, Sync: a.SyncStandbys, contact: n.contact}
		}
	case plan.ActionPromote:
		s.promote(n, a)
	case plan.ActionFence:
		n.Fenced, n.Running = true, false
	case plan.ActionStart:
		n.Fenced, n.Running = false, n.Data
	case plan.ActionDemote:
		n.Fenced = true
		s.Step() // a clean shutdown sends the remaining WAL
		n.Running = false
	case plan.ActionFollow:
		n.Upstream, n.Running = a.Primary, n.Data && !n.Fenced
	case plan.ActionRejoin, plan.ActionRecreate:
		return s.clone(n, a.Primary)
	case plan.ActionSetSyncStandbys:
		n.Sync = a.SyncStandbys
	case plan.ActionRestart:
		if n.Running && !n.Fenced {
			n.Restarts++
		}
	default:
		return fmt.Errorf("unknown action")
	}
	s.Step()
	return nil
}

func (s *Sim) promote(n *Node, a plan.Action) {
	n.Sync = a.SyncStandbys
	if n.Primary && n.Epoch == a.Epoch {
		return
	}
	var top uint32
	for _, m := range s.nodes {
		top = max(top, m.Timeline)
	}
	n.Primary, n.Epoch, n.Timeline, n.Upstream, n.Fenced, n.Running = true, a.Epoch, top+1, "", false, true
}

// clone rewinds or re-clones n from primary.
func (s *Sim) clone(n *Node, primary string) error {
	p := s.Node(primary)
	if p == nil || p.Isolated || !p.Primary || !p.Running {
		return fmt.Errorf("source %s is not a running primary", primary)
	}
	n.Data, n.Primary, n.Fenced, n.Running = true, false, false, true
	n.WAL, n.Timeline, n.Upstream, n.Sync = slices.Clone(p.WAL), p.Timeline, primary, ""
	return nil
}

// Round observes the cluster, asks the planner, and runs its actions. It
// returns the Ready (whose Memory the caller keeps) and any action error.
func (s *Sim) Round(spec plan.Spec, mem plan.Memory) (plan.Ready, error) {
	s.Step()
	r := plan.Next(spec, mem, s.Observe(), s.Now)
	err := s.Apply(r.Actions)
	s.Step()
	return r, err
}
