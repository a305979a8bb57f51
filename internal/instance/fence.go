package instance

import (
	"sync"
	"time"
)

// contactTracker measures how long the controller has been out of touch.
// Only a completed exchange counts: when a status request acknowledges the
// answer to an earlier one, the controller provably received that answer,
// so the instance was in contact at the earlier request's receipt. An
// instance that only hears requests (and whose answers never arrive) is
// out of touch all the same. See plan.FenceTiming for the whole argument.
type contactTracker struct {
	mu     sync.Mutex
	nextID uint64
	// sent maps recent answer IDs to when their request was received.
	sent map[uint64]time.Time
	last time.Time
}

func newContactTracker(now time.Time) *contactTracker {
	return &contactTracker{nextID: uint64(now.UnixNano()), sent: map[uint64]time.Time{}, last: now} // #nosec G115 -- any start value works
}

// receive records a request received at now that acknowledges ack, and
// returns the ID of the answer to it.
func (c *contactTracker) receive(now time.Time, ack uint64) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.sent[ack]; ok && t.After(c.last) {
		c.last = t
	}
	c.nextID++
	c.sent[c.nextID] = now
	// Keep the map small: an acknowledgement older than a few hundred
	// answers is of no use.
	if len(c.sent) > 256 {
		for id := range c.sent {
			if id+256 < c.nextID {
				delete(c.sent, id)
			}
		}
	}
	return c.nextID
}

// acknowledge records that the controller received answer ack (a command
// names the answer its decision was made on), without starting a new
// exchange.
func (c *contactTracker) acknowledge(ack uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.sent[ack]; ok && t.After(c.last) {
		c.last = t
	}
}

// renewed records a renewal of the primary Lease that the API server
// stored, sent at sent. It restarts the timer like a completed exchange:
// the operator promotes another instance only after it has seen the Lease
// unchanged for the whole bound, and it reads the Lease no earlier than
// sent (see plan.FenceTiming).
func (c *contactTracker) renewed(sent time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if sent.After(c.last) {
		c.last = sent
	}
}

// since is how long ago the last completed exchange began.
func (c *contactTracker) since(now time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return now.Sub(c.last)
}

// FenceCheckInterval is how often a primary checks that it is still in
// contact with the controller.
const FenceCheckInterval = 100 * time.Millisecond

// checkSelfFence stops a primary that has been out of contact for longer
// than selfFence: neither an exchange with the controller completed nor
// (on Kubernetes) a renewal of the primary Lease was stored. The
// controller may promote another instance only after both have been silent
// for a longer, derived bound (plan.FenceTiming), so the two never accept
// writes at the same time.
func (m *Manager) checkSelfFence() {
	if m.selfFence <= 0 {
		return
	}
	m.mu.Lock()
	primary, fenced := m.pm != nil && m.primary, m.st.Fenced
	m.mu.Unlock()
	if !primary || fenced {
		return
	}
	if away := m.contact.since(time.Now()); away > m.selfFence {
		m.log.Warn("no contact with the controller and no lease renewal; fencing (immediate shutdown)", "away", away.Round(time.Millisecond))
		m.fence()
	}
}
