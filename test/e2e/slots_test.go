package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// slotsManifest turns replicationSlots.highAvailability on, checked every
// second, for a test cluster to add to its spec.
const slotsManifest = `  replicationSlots:
    highAvailability:
      slotPrefix: ha_
    updateInterval: 1
`

// checkHASlots: on the primary a slot for every replica, each in use by
// that replica's WAL receiver (primary_slot_name) and none for itself; on
// each replica a copy of the primary's slots for the other replicas (not
// its own), holding WAL (a restart LSN), so a promoted replica keeps them.
func checkHASlots(t *testing.T, dir, cluster string, instances int) {
	t.Helper()
	slot := func(n int) string { return fmt.Sprintf("ha_%s_%d", cluster, n) }
	eventually(t, 30*time.Second, "the replication slots of "+cluster, func() error {
		primary := currentPrimary(t, dir)
		if primary == "" {
			return fmt.Errorf("no primary")
		}
		for i := 1; i <= instances; i++ {
			name := fmt.Sprintf("%s-%d", cluster, i)
			out, err := socketSQL(t, dir, name, `SELECT string_agg(slot_name || ':' || active || ':' || (restart_lsn IS NOT NULL), ',' ORDER BY slot_name)
				FROM pg_replication_slots WHERE slot_type = 'physical'`)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			var want []string
			for j := 1; j <= instances; j++ {
				other := fmt.Sprintf("%s-%d", cluster, j)
				switch {
				case other == name || other == primary:
				case name == primary:
					want = append(want, slot(j)+":true:true") // streamed through
				default:
					want = append(want, slot(j)+":false:true") // a copy
				}
			}
			if out != strings.Join(want, ",") {
				return fmt.Errorf("%s (primary %s) has slots %q, want %v", name, primary, out, want)
			}
			if name != primary {
				ps, err := socketSQL(t, dir, name, "SHOW primary_slot_name")
				if err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				if ps != slot(slices.Index(names(cluster, instances), name)+1) {
					return fmt.Errorf("%s: primary_slot_name %q", name, ps)
				}
			}
		}
		return nil
	})
}

func names(cluster string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", cluster, i+1)
	}
	return out
}

// checkNoSlots: no instance has a physical slot or streams through one.
func checkNoSlots(t *testing.T, dir, cluster string, instances int) {
	t.Helper()
	eventually(t, 30*time.Second, "no replication slot left in "+cluster, func() error {
		for _, name := range names(cluster, instances) {
			out, err := socketSQL(t, dir, name, `SELECT count(*) || ':' || current_setting('primary_slot_name') FROM pg_replication_slots WHERE slot_type = 'physical'`)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if out != "0:" {
				return fmt.Errorf("%s: slots:primary_slot_name %q", name, out)
			}
		}
		return nil
	})
}
