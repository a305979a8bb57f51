// Package plan is pgward's decision core: given the desired cluster (Spec),
// the state it persisted last time (Memory) and what every instance reports
// now (InstanceStatus), Next returns what to do (Ready): bootstrap, promote,
// repoint, fence, demote, rejoin or recreate instances, set the synchronous
// standbys, or hold and say why.
//
// Both runtimes, local processes and Kubernetes, drive it the same way,
// through control.Driver:
//
//	for {
//		observed := pollEveryInstance()
//		ready := plan.Next(spec, mem, observed, time.Now())
//		persist(ready.Memory) // before any action, when it changed
//		mem = ready.Memory
//		run(ready.Actions)    // in order, stopping at the first failure
//		sleep(ready.RecheckAfter)
//	}
//
// The package performs no I/O and reads no clock: time comes in as an
// argument, so every decision can be replayed in a test (see plantest).
//
// The rules it keeps: never two writable primaries (a promotion waits until
// every other instance that may accept writes is fenced, confirmed stopped,
// or silent for longer than the self-fencing bound, see FenceTiming); the
// epoch grows by exactly one per promotion; with required synchronous
// replication no acknowledged commit is lost (see sync.go); the most
// advanced eligible replica is promoted.
package plan
