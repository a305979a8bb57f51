package instance

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	v1 "github.com/pgward/pgward/api/v1"
)

// Replication slots for high availability (replicationSlots.
// highAvailability): the primary keeps a physical slot for each other
// instance of the cluster, which that replica streams through
// (primary_slot_name), so the primary keeps the WAL a disconnected replica
// still needs. Each replica keeps a copy of the primary's slots for the
// other instances, advanced to where the primary's are (never past its own
// replay): promoted, it already holds the WAL the others need. pgward owns
// every physical slot with the prefix; slots of instances the cluster no
// longer has are dropped, so none holds WAL forever.

// slotState is one slot: its name, whether a walsender uses it, and its
// restart LSN (nil before it reserves WAL).
type slotState struct {
	name    string
	active  bool
	restart *string
}

// slotPlan is what a pass over the slots does.
type slotPlan struct {
	create []string
	drop   []string
	// advance maps a slot to the LSN to advance it to (replicas only).
	advance map[string]string
}

// planPrimarySlots is the primary's pass: a slot for every other
// instance, none for itself or for instances that are gone. An active
// slot is not dropped (PostgreSQL refuses); the next pass does it.
func planPrimarySlots(prefix, self string, instances []string, have []slotState) slotPlan {
	var p slotPlan
	want := map[string]bool{}
	for _, n := range instances {
		if n != self {
			want[v1.HASlotName(prefix, n)] = true
		}
	}
	seen := map[string]bool{}
	for _, s := range have {
		seen[s.name] = true
		if !want[s.name] && !s.active {
			p.drop = append(p.drop, s.name)
		}
	}
	for _, n := range instances {
		if name := v1.HASlotName(prefix, n); want[name] && !seen[name] {
			p.create = append(p.create, name)
		}
	}
	return p
}

// planReplicaSlots is a replica's pass: copies of the primary's slots
// (upstream) but its own, advanced to the primary's restart LSN; local
// slots the primary does not have are dropped.
func planReplicaSlots(prefix, self string, upstream, have []slotState) slotPlan {
	p := slotPlan{advance: map[string]string{}}
	own := v1.HASlotName(prefix, self)
	up := map[string]slotState{}
	for _, s := range upstream {
		if s.name != own {
			up[s.name] = s
		}
	}
	seen := map[string]bool{}
	for _, s := range have {
		seen[s.name] = true
		if _, ok := up[s.name]; !ok && !s.active {
			p.drop = append(p.drop, s.name)
		}
	}
	names := make([]string, 0, len(up))
	for n := range up {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if !seen[n] {
			p.create = append(p.create, n)
		}
		if r := up[n].restart; r != nil {
			p.advance[n] = *r
		}
	}
	return p
}

// maintainSlots runs a pass when the interval has passed: on the primary,
// or on a replica following it.
func (m *Manager) maintainSlots(ctx context.Context, now time.Time) {
	m.mu.Lock()
	c, pool, primary, phase, st := m.cluster, m.pool, m.primary, m.phase, m.st
	last := m.slotsAt
	m.mu.Unlock()
	prefix, on := c.Spec.HASlots()
	m.mu.Lock()
	stale := staleSlotPrefix(c, m.slotsPrefix)
	m.mu.Unlock()
	if (!on && stale == "") || pool == nil || phase != PhaseRunning || st.Designated || now.Sub(last) < time.Duration(c.Spec.SlotUpdateSeconds())*time.Second {
		return
	}
	m.mu.Lock()
	if m.slotsBusy {
		m.mu.Unlock()
		return
	}
	m.slotsAt, m.slotsBusy = now, true
	m.mu.Unlock()
	// Off the manager's loop: a slow primary must not delay fencing or
	// commands.
	go func() {
		defer func() {
			m.mu.Lock()
			m.slotsBusy = false
			m.mu.Unlock()
		}()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		var err error
		if stale != "" {
			err = m.dropStaleSlots(cctx, pool, stale)
		}
		switch {
		case err != nil || !on:
		case primary:
			err = m.primarySlots(cctx, pool, prefix, c)
		case st.Primary.Host != "":
			err = m.replicaSlots(cctx, pool, prefix, st.Primary)
		}
		if err == nil && on && stale == "" {
			m.mu.Lock()
			m.slotsPrefix = prefix
			m.mu.Unlock()
		}
		if err != nil {
			m.log.Error("replication slots not maintained; retrying", "err", err)
		}
	}()
}

// staleSlotPrefix is the prefix of slots pgward made that the spec no
// longer wants: the one it last maintained (lastPrefix) when the slots
// were turned off or their prefix changed, or, with highAvailability
// given and enabled false, its prefix. Those slots are dropped once
// unused, so that turning the feature off frees the WAL they hold. (With
// the whole section removed after a restart of the instance manager,
// nothing says which slots were pgward's: set enabled: false instead.)
func staleSlotPrefix(c *v1.Cluster, lastPrefix string) string {
	prefix, on := c.Spec.HASlots()
	switch {
	case lastPrefix != "" && (!on || lastPrefix != prefix):
		return lastPrefix
	case on:
		return ""
	}
	if rs := c.Spec.ReplicationSlots; rs != nil && rs.HighAvailability != nil {
		if rs.HighAvailability.SlotPrefix != "" {
			return rs.HighAvailability.SlotPrefix
		}
		return v1.DefaultSlotPrefix
	}
	return ""
}

// dropStaleSlots drops the unused slots of prefix; in-use ones (a
// replica not yet reloaded without primary_slot_name) go at a later pass.
// It forgets prefix once none is left.
func (m *Manager) dropStaleSlots(ctx context.Context, pool pgxQuerier, prefix string) error {
	have, err := listSlots(ctx, pool, prefix)
	if err != nil {
		return err
	}
	if err := applySlots(ctx, pool, planPrimarySlots(prefix, m.cfg.Name, nil, have)); err != nil {
		return err
	}
	if len(have) == 0 {
		m.mu.Lock()
		if m.slotsPrefix == prefix {
			m.slotsPrefix = ""
		}
		m.mu.Unlock()
	}
	return nil
}

func (m *Manager) primarySlots(ctx context.Context, pool pgxQuerier, prefix string, c *v1.Cluster) error {
	have, err := listSlots(ctx, pool, prefix)
	if err != nil {
		return err
	}
	instances := make([]string, c.Spec.Instances)
	for i := range instances {
		instances[i] = fmt.Sprintf("%s-%d", c.Name, i+1)
	}
	return applySlots(ctx, pool, planPrimarySlots(prefix, m.cfg.Name, instances, have))
}

func (m *Manager) replicaSlots(ctx context.Context, pool pgxQuerier, prefix string, primary Endpoint) error {
	up, err := m.upstreamSlots(ctx, prefix, primary)
	if err != nil {
		return err
	}
	have, err := listSlots(ctx, pool, prefix)
	if err != nil {
		return err
	}
	return applySlots(ctx, pool, planReplicaSlots(prefix, m.cfg.Name, up, have))
}

// upstreamSlots reads the primary's slots as streaming_replica, with its
// certificate, over the TLS its replication uses (pg_hba lets it into the
// postgres database; pg_replication_slots is readable by every role).
func (m *Manager) upstreamSlots(ctx context.Context, prefix string, primary Endpoint) ([]slotState, error) {
	// pgx sets TLS itself; libpq's ssl_min_protocol_version would reach
	// the server as a setting.
	ci := strings.Replace(m.replicationConnInfo(primary, ""), " ssl_min_protocol_version=TLSv1.3", "", 1)
	cfg, err := pgx.ParseConfig(ci)
	if err != nil {
		return nil, fmt.Errorf("primary connection: %w", err)
	}
	if cfg.TLSConfig == nil {
		return nil, fmt.Errorf("primary connection without TLS")
	}
	cfg.TLSConfig.MinVersion = tls.VersionTLS13
	cfg.Fallbacks = nil
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to the primary %s for its slots: %w", primary.Name, err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	return listSlots(ctx, conn, prefix)
}

func listSlots(ctx context.Context, q pgxQuerier, prefix string) ([]slotState, error) {
	rows, err := q.Query(ctx, `SELECT slot_name::text, active, restart_lsn::text FROM pg_replication_slots
		WHERE slot_type = 'physical' AND starts_with(slot_name::text, $1) ORDER BY slot_name`, prefix)
	if err != nil {
		return nil, fmt.Errorf("reading pg_replication_slots: %w", err)
	}
	defer rows.Close()
	var out []slotState
	for rows.Next() {
		var s slotState
		if err := rows.Scan(&s.name, &s.active, &s.restart); err != nil {
			return nil, fmt.Errorf("reading pg_replication_slots: %w", err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// applySlots carries p out. A copy is advanced no further than this
// instance has replayed: a slot cannot point past the WAL it has, and
// never backwards.
func applySlots(ctx context.Context, q pgxQuerier, p slotPlan) error {
	for _, n := range p.drop {
		var ok bool
		if err := q.QueryRow(ctx, `SELECT true FROM (SELECT pg_drop_replication_slot($1)) d`, n).Scan(&ok); err != nil {
			return fmt.Errorf("dropping slot %s: %w", n, err)
		}
	}
	for _, n := range p.create {
		var name string
		if err := q.QueryRow(ctx, `SELECT slot_name::text FROM pg_create_physical_replication_slot($1, true)`, n).Scan(&name); err != nil {
			return fmt.Errorf("creating slot %s: %w", n, err)
		}
	}
	for _, n := range slices.Sorted(maps.Keys(p.advance)) {
		var end *string
		err := q.QueryRow(ctx, `SELECT CASE WHEN restart_lsn IS NOT NULL AND restart_lsn < t
				THEN (pg_replication_slot_advance(slot_name, t)).end_lsn::text END
			FROM (SELECT slot_name, restart_lsn, least($2::pg_lsn, pg_last_wal_replay_lsn()) AS t
			      FROM pg_replication_slots WHERE slot_name = $1) x`, n, p.advance[n]).Scan(&end)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("advancing slot %s: %w", n, err)
		}
	}
	return nil
}
