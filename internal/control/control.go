// Package control is the runtime-independent HA loop: Driver observes the
// instances, calls plan.Next, saves the memory and runs the actions, through
// three narrow interfaces (Observer, Store, Actuator) that each runtime
// implements; Observation and Command translate an instance manager's
// status into the planner's view and an action into a command. The local
// controller and the Kubernetes operator both drive plan.Next through it,
// so the two runtimes cannot drift in how they read, persist or act.
package control

import (
	"fmt"
	"time"

	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/plan"
)

// Observation translates a status answer into the planner's view. sent is
// when the request was sent (see plan.FenceTiming for why not the answer's
// arrival).
func Observation(st *instanceapi.Status, sent time.Time) plan.InstanceStatus {
	s := plan.InstanceStatus{
		Name:              st.Name,
		Reachable:         true,
		ObservedAt:        sent,
		Empty:             st.Empty,
		PostmasterRunning: st.PostmasterRunning,
		Fenced:            st.Fenced,
		Role:              plan.Role(st.Role),
		Epoch:             st.Epoch,
		Timeline:          st.Timeline,
		StreamingFrom:     st.StreamingFrom,
		SyncStandbyNames:  st.SyncStandbyNames,
		ReceivedLSN:       lsn(st.ReceivedLSN),
		ReplayedLSN:       lsn(st.ReplayedLSN),
		CurrentLSN:        lsn(st.CurrentLSN),
		PendingRestart:    st.PendingRestart,
		Manifest:          st.ManifestSHA256,
		Restarting:        st.Busy == instanceapi.CommandRestart,
		Designated:        st.Designated,
	}
	// WAL a standby has replayed it has received, whatever a restarted WAL
	// receiver says (it counts again from a segment start): never rank a
	// standby by less than it holds.
	if s.ReplayedLSN > s.ReceivedLSN {
		s.ReceivedLSN = s.ReplayedLSN
	}
	// A running postgres that cannot answer status queries is not a
	// working primary or replica, whatever it last said.
	if st.PostmasterRunning && !st.Ready {
		s.Role = plan.RoleUnknown
	}
	return s
}

// Unreachable is the observation of an instance that did not answer.
func Unreachable(name string, sent time.Time) plan.InstanceStatus {
	return plan.InstanceStatus{Name: name, ObservedAt: sent}
}

// lsn parses an LSN; an empty or malformed one reads as 0, which the
// planner treats as "has nothing".
func lsn(s string) plan.LSN {
	if s == "" {
		return 0
	}
	l, err := plan.ParseLSN(s)
	if err != nil {
		return 0
	}
	return l
}

var kinds = map[plan.ActionKind]string{
	plan.ActionBootstrap:       instanceapi.CommandBootstrap,
	plan.ActionPromote:         instanceapi.CommandPromote,
	plan.ActionFollow:          instanceapi.CommandFollow,
	plan.ActionFence:           instanceapi.CommandFence,
	plan.ActionStart:           instanceapi.CommandStart,
	plan.ActionDemote:          instanceapi.CommandDemote,
	plan.ActionRejoin:          instanceapi.CommandRejoin,
	plan.ActionRecreate:        instanceapi.CommandRecreate,
	plan.ActionSetSyncStandbys: instanceapi.CommandSetSyncStandbys,
	plan.ActionRestart:         instanceapi.CommandRestart,
}

// Command translates an action into the command for its instance. epoch is
// the memory's epoch after Next (bootstrap and promote carry their own);
// primary locates the action's Primary, when it names one.
func Command(a plan.Action, epoch, ack uint64, primary *instanceapi.Endpoint) (instanceapi.Command, error) {
	kind, ok := kinds[a.Kind]
	if !ok {
		return instanceapi.Command{}, fmt.Errorf("action %q is not a command", a.Kind)
	}
	cmd := instanceapi.Command{Kind: kind, Epoch: epoch, Ack: ack, SyncStandbys: a.SyncStandbys, Designated: a.Designated}
	if a.Kind == plan.ActionBootstrap || a.Kind == plan.ActionPromote {
		cmd.Epoch = a.Epoch
	}
	if a.Primary != "" {
		if primary == nil || primary.Name != a.Primary {
			return instanceapi.Command{}, fmt.Errorf("%s %s: no endpoint for primary %q", a.Kind, a.Instance, a.Primary)
		}
		cmd.Primary = primary
	}
	return cmd, nil
}
