package instance

import (
	"slices"
	"testing"

	v1 "github.com/pgward/pgward/api/v1"
)

func TestPlanSlots(t *testing.T) {
	lsn := func(s string) *string { return &s }
	names := []string{"pg-1", "pg-2", "pg-3"}
	// The primary: slots for the others, its own and a gone instance's
	// dropped unless in use (then next time).
	p := planPrimarySlots("ha_", "pg-1", names, []slotState{{name: "ha_pg_1"}, {name: "ha_pg_2", active: true}, {name: "ha_pg_4"}, {name: "ha_pg_5", active: true}})
	if !slices.Equal(p.create, []string{"ha_pg_3"}) || !slices.Equal(p.drop, []string{"ha_pg_1", "ha_pg_4"}) || len(p.advance) != 0 {
		t.Errorf("primary: %+v", p)
	}
	// A replica: copies of the primary's slots but its own, advanced to
	// the primary's restart LSN (one not reserved yet is not advanced);
	// local slots the primary lacks dropped.
	up := []slotState{{name: "ha_pg_2", active: true, restart: lsn("0/3000000")}, {name: "ha_pg_3", active: true, restart: lsn("0/3000060")}, {name: "ha_pg_4"}}
	r := planReplicaSlots("ha_", "pg-2", up, []slotState{{name: "ha_pg_3", restart: lsn("0/2000000")}, {name: "ha_pg_1"}, {name: "ha_pg_2"}})
	if !slices.Equal(r.create, []string{"ha_pg_4"}) || !slices.Equal(r.drop, []string{"ha_pg_1", "ha_pg_2"}) ||
		len(r.advance) != 1 || r.advance["ha_pg_3"] != "0/3000060" {
		t.Errorf("replica: %+v", r)
	}
}

// TestStaleSlotPrefix: the slots pgward made are dropped when the spec
// turns them off or renames them; a cluster that never had them drops
// nothing.
func TestStaleSlotPrefix(t *testing.T) {
	off := false
	spec := func(rs *v1.ReplicationSlotsConfiguration) *v1.Cluster {
		return &v1.Cluster{Spec: v1.ClusterSpec{ReplicationSlots: rs}}
	}
	on := &v1.ReplicationSlotsConfiguration{HighAvailability: &v1.ReplicationSlotsHAConfiguration{SlotPrefix: "ha_"}}
	for _, tc := range []struct {
		name string
		c    *v1.Cluster
		last string
		want string
	}{
		{"never had slots", spec(nil), "", ""},
		{"on, as before", spec(on), "ha_", ""},
		{"on, first pass", spec(on), "", ""},
		{"section removed", spec(nil), "ha_", "ha_"},
		{"prefix changed", spec(on), "_cnpg_", "_cnpg_"},
		{"enabled false, after a restart", spec(&v1.ReplicationSlotsConfiguration{HighAvailability: &v1.ReplicationSlotsHAConfiguration{Enabled: &off}}), "", v1.DefaultSlotPrefix},
		{"enabled false with a prefix", spec(&v1.ReplicationSlotsConfiguration{HighAvailability: &v1.ReplicationSlotsHAConfiguration{Enabled: &off, SlotPrefix: "x_"}}), "", "x_"},
	} {
		if got := staleSlotPrefix(tc.c, tc.last); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
