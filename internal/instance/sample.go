package instance

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/pgward/pgward/internal/instanceapi"
)

// sample is PostgreSQL's part of the status, refreshed in the background so
// that a status request never waits on a busy server: answering quickly is
// what keeps the instance in contact with the controller.
type sample struct {
	gen uint64
	at  time.Time
	st  instanceapi.Status
	err error
}

// keepTimeline makes a replica's reported timeline monotonic: a WAL
// receiver's timeline is exact, and a later sample taken while the receiver
// is down (reconnecting to a dead primary, say) must not fall back to an
// older one. A new data directory (clone or rewind) starts afresh.
func (m *Manager) keepTimeline(st *instanceapi.Status) {
	if st.Role != instanceapi.RoleReplica {
		return
	}
	if st.Timeline > m.replicaTLI {
		m.replicaTLI = st.Timeline
	}
	st.Timeline = m.replicaTLI
}

// resetTimeline forgets the reported timeline when the data directory is
// replaced.
func (m *Manager) resetTimeline() {
	m.mu.Lock()
	m.replicaTLI = 0
	m.mu.Unlock()
}

// SampleInterval is how often PostgreSQL's state is read.
const SampleInterval = 100 * time.Millisecond

// staleSample is how old a sample may get before the instance counts as
// not ready: its PostgreSQL is not answering simple queries.
const staleSample = 5 * time.Second

func (m *Manager) sampler(ctx context.Context) {
	tick := time.NewTicker(SampleInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		m.mu.Lock()
		pool, gen := m.pool, m.gen
		// Before the query: PostgreSQL has loaded at least this manifest
		// by now, so the pending restart the query reads is not older.
		st := instanceapi.Status{ManifestSHA256: m.loadedSum}
		m.mu.Unlock()
		if pool == nil {
			continue
		}
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := queryStatus(qctx, pool, &st)
		cancel()
		m.mu.Lock()
		if m.gen == gen {
			if err == nil {
				m.keepTimeline(&st)
				m.sample = sample{gen: gen, at: time.Now(), st: st}
			} else {
				m.sample.err = err
			}
		}
		m.mu.Unlock()
	}
}

// Ready reports whether PostgreSQL accepts connections.
func (m *Manager) Ready() bool {
	m.mu.Lock()
	pool, pm := m.pool, m.pm
	m.mu.Unlock()
	if pool == nil || pm == nil || !pm.Running() {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return pool.Ping(ctx) == nil
}

// Status reports the instance's state without waiting on PostgreSQL: its
// part comes from the latest background sample (at most SampleInterval
// plus one query old). requestID identifies the answer for the contact
// protocol.
func (m *Manager) Status(requestID uint64) instanceapi.Status {
	m.mu.Lock()
	st := instanceapi.Status{
		Name:        m.cfg.Name,
		Role:        instanceapi.RoleUnknown,
		Phase:       m.phase,
		Error:       m.lastErr,
		ConfigError: m.configErr,
		Busy:        m.busy,
		Host:        m.cfg.Host,
		Port:        m.cfg.Port,
		SocketDir:   m.cfg.SocketDir,
		Epoch:       m.st.Epoch,
		Fenced:      m.st.Fenced,
		RequestID:   requestID,
		SelfFence:   new(m.selfFence),
	}
	pool, pm, primary, endLSN, follow := m.pool, m.pm, m.primary, m.endLSN, m.st.Primary
	if m.st.Designated && !primary {
		st.Designated = true
		if src := m.cluster.ReplicaSource(); src != nil {
			st.Source = src.Name
		}
	}
	if primary {
		st.SyncStandbyNames = m.st.SyncStandbys
	}
	smp, gen, pgTLS := m.sample, m.gen, m.pgTLS
	st.RolesError = m.rolesErr
	st.TablespacesError = m.tablespacesErr
	if m.primary {
		st.Databases = slices.Clone(m.dbResults)
	}
	if m.backupRun != nil {
		run := *m.backupRun
		st.Backup = &run
	}
	if m.reloadRes != nil {
		res := *m.reloadRes
		st.Reload = &res
	}
	m.mu.Unlock()
	st.ObservedAt = time.Now().UTC()
	st.PostmasterRunning = pm != nil && pm.Running()
	st.Empty = !hasDataDir(m.cfg.DataDir)
	if !st.PostmasterRunning || pool == nil {
		if !st.Empty {
			st.Role = instanceapi.RolePrimary
			if isStandby(m.cfg.DataDir) {
				st.Role = instanceapi.RoleReplica
			}
			st.CurrentLSN = endLSN
		}
		return st
	}
	st.ServerCertSHA256, st.ClientCAsSHA256 = pgTLS.server, pgTLS.cas
	if smp.gen != gen {
		return st
	}
	st.Role, st.Ready, st.PGVersion, st.SystemID = smp.st.Role, smp.st.Ready, smp.st.PGVersion, smp.st.SystemID
	st.Timeline, st.PendingRestart, st.ManifestSHA256 = smp.st.Timeline, smp.st.PendingRestart, smp.st.ManifestSHA256
	st.CurrentLSN, st.ReceivedLSN, st.ReplayedLSN = smp.st.CurrentLSN, smp.st.ReceivedLSN, smp.st.ReplayedLSN
	st.WALReceiver, st.Replication = smp.st.WALReceiver, smp.st.Replication
	st.Archive = smp.st.Archive
	if age := time.Since(smp.at); age > staleSample {
		st.Ready = false
		st.Error = fmt.Sprintf("PostgreSQL has not answered a status query for %s: %v", age.Round(time.Second), smp.err)
	}
	st.StreamingFrom = streamingFrom(&st, follow)
	return st
}

// streamingFrom names the primary st's WAL receiver streams from: the one
// it was told to follow, when it streams to that one's port, unless it is
// among its own WAL senders' clients. On Kubernetes a replica reaches the
// primary through the read-write Service, which for a moment after a
// promotion may still lead to this very pod (an old primary restarting as
// a replica): it then streams from itself, forever on its old timeline,
// while looking like a replica of the new primary (seen on real pods in
// TestFailover's switchover). Reported as not streaming, it is rewound and
// restarted by the planner after RejoinGrace, by when the Service has
// moved.
func streamingFrom(st *instanceapi.Status, follow instanceapi.Endpoint) string {
	if st.WALReceiver == nil || st.WALReceiver.Status != "streaming" || st.WALReceiver.SenderPort != follow.Port || st.Designated {
		return ""
	}
	for _, p := range st.Replication {
		if p.ApplicationName == st.Name {
			return ""
		}
	}
	return follow.Name
}
