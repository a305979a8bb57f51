package control

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/pgward/pgward/internal/plan"
)

// Observer asks every instance of a cluster for its status.
type Observer interface {
	// Observe returns one status per name. An instance that does not answer
	// is Unreachable; ObservedAt is when its request was sent (see
	// plan.FenceTiming).
	Observe(ctx context.Context, names []string) []plan.InstanceStatus
}

// Store keeps the planner's memory where a restarted controller finds it.
type Store interface {
	// Save returns nil only once m is durable.
	Save(ctx context.Context, m plan.Memory) error
}

// Actuator carries the planner's decisions out in one runtime.
type Actuator interface {
	// Observed sees each observation before the planner does, for what a
	// runtime does beside the planner: the local runtime stops the
	// processes of a silent instance, the operator advances a CA rotation.
	Observed(ctx context.Context, obs []plan.InstanceStatus)
	// Route points the runtime's routing at mem's target primary (the
	// operator moves the primary label the read-write Service selects).
	// It runs once mem is durable, before any action.
	Route(ctx context.Context, mem plan.Memory) error
	// Run sends one action to its instance; mem is the durable memory it
	// was decided under, whose epoch the command carries.
	Run(ctx context.Context, a plan.Action, mem plan.Memory) error
}

// Driver is the one implementation of plan.Ready's contract, shared by the
// local controller and the operator: each runtime supplies only its
// Observer, Store and Actuator.
type Driver struct {
	Observer Observer
	Store    Store
	Actuator Actuator
	// Now is the planner's clock.
	Now func() time.Time
}

// Result is what one Step did.
type Result struct {
	plan.Ready
	// Saved reports whether the memory was written to the Store.
	Saved bool
	// Failed is the error of the action that failed; the ones after it
	// were not run. The next observation tells the planner what happened.
	Failed error
	// Wait is when to step again.
	Wait time.Duration
}

// minRecheck keeps a planner that asks to look again "now" (a deadline
// just passed) from spinning.
const minRecheck = 100 * time.Millisecond

// Step observes every instance, asks the planner, saves the memory if it
// changed what the Store holds, then runs the actions in order. An error
// means the memory could not be made durable or routed to, and nothing was
// run: the decision is made again at the next step.
func (d *Driver) Step(ctx context.Context, spec plan.Spec, mem *Memory) (Result, error) {
	obs := d.Observer.Observe(ctx, spec.Instances)
	d.Actuator.Observed(ctx, obs)
	ready := plan.Next(spec, mem.latest, obs, d.Now())
	res := Result{Ready: ready, Wait: min(max(ready.RecheckAfter, min(minRecheck, spec.CheckInterval)), spec.CheckInterval)}
	if !mem.Holds(ready.Memory) {
		if err := d.Store.Save(ctx, ready.Memory); err != nil {
			return res, fmt.Errorf("persisting the planner's memory (not acting): %w", err)
		}
		mem.stored, res.Saved = durable(ready.Memory), true
	}
	mem.latest = ready.Memory
	if err := d.Actuator.Route(ctx, ready.Memory); err != nil {
		return res, fmt.Errorf("routing to primary %s (not acting): %w", ready.Memory.TargetPrimary, err)
	}
	for _, a := range ready.Actions {
		if a.Kind == plan.ActionHold {
			continue
		}
		if err := d.Actuator.Run(ctx, a, ready.Memory); err != nil {
			res.Failed = fmt.Errorf("%s: %w", a, err)
			break
		}
	}
	return res, nil
}

// Memory is one cluster's planner memory between steps: the latest the
// planner returned, and what of it the Store holds.
//
// Only transitions are saved. PrimaryLastSeen and PrimaryLastLSN move at
// every observation of a healthy primary, so saving them would cost one
// write per check and cluster; they are kept here and reach the Store only
// with the next transition. That is safe because a controller that starts
// from a Store (Resume) never trusts a stored PrimaryLastSeen: it takes
// its own start as the primary's last contact. Every exchange with the
// controller that ran before happened before that start (it is dead, or
// it lost the leader lease before this one got it), so the self-fencing
// bound counted from there still ends after the primary fenced itself; the
// price is that an unreachable primary found at start waits out the whole
// bound. PrimaryLastLSN only sizes a data-loss warning. What decides safety
// (epoch, target primary, synchronous standbys and their cover, the
// switchover) is a transition, saved before any action runs.
type Memory struct {
	latest plan.Memory
	stored []byte // durable(...) of what the Store holds
}

// Resume continues from what a Store holds, as a controller that just
// started: see Memory for why the primary counts as seen now.
func Resume(stored plan.Memory, now time.Time) *Memory {
	m := &Memory{latest: stored, stored: durable(stored)}
	if stored.Epoch > 0 && stored.PrimaryLastSeen.Before(now) {
		m.latest.PrimaryLastSeen = now
	}
	return m
}

// Latest returns the memory the next step plans from.
func (m *Memory) Latest() plan.Memory { return m.latest }

// Set replaces the memory the next step plans from, for a runtime's own
// input (a switchover request); that step saves it before acting.
func (m *Memory) Set(v plan.Memory) { m.latest = v }

// Holds reports whether the Store holding stored holds what m last saved
// or resumed from, so that m may go on from its latest memory.
func (m *Memory) Holds(stored plan.Memory) bool {
	d := durable(stored)
	return d != nil && bytes.Equal(m.stored, d)
}

// durable is v without what may go stale in the Store, as JSON: the form
// both Stores keep, so that a round trip through one is not a change.
func durable(v plan.Memory) []byte {
	v.PrimaryLastSeen, v.PrimaryLastLSN = time.Time{}, 0
	b, err := json.Marshal(v)
	if err != nil {
		return nil // equal to nothing (Holds): the memory is saved
	}
	return b
}
