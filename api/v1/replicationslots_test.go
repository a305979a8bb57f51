package v1

import (
	"strings"
	"testing"
)

func TestValidateReplicationSlots(t *testing.T) {
	on, off := true, false
	cases := []struct {
		name      string
		instances int
		rs        *ReplicationSlotsConfiguration
		params    map[string]string
		replica   bool
		want      string // "" valid
	}{
		{"CloudNativePG's defaults", 3, &ReplicationSlotsConfiguration{HighAvailability: &ReplicationSlotsHAConfiguration{}}, nil, false, ""},
		{"explicit", 3, &ReplicationSlotsConfiguration{HighAvailability: &ReplicationSlotsHAConfiguration{Enabled: &on, SlotPrefix: "ha_"}, UpdateInterval: 5}, nil, false, ""},
		{"prefix with a dash", 3, &ReplicationSlotsConfiguration{HighAvailability: &ReplicationSlotsHAConfiguration{SlotPrefix: "ha-"}}, nil, false, "slotPrefix"},
		{"prefix too long", 3, &ReplicationSlotsConfiguration{HighAvailability: &ReplicationSlotsHAConfiguration{SlotPrefix: strings.Repeat("x", 60)}}, nil, false, "63 bytes"},
		{"interval out of range", 3, &ReplicationSlotsConfiguration{UpdateInterval: 4000}, nil, false, "updateInterval"},
		{"more replicas than slots", 12, &ReplicationSlotsConfiguration{HighAvailability: &ReplicationSlotsHAConfiguration{}}, nil, false, "max_replication_slots (10)"},
		{"more slots allowed", 12, &ReplicationSlotsConfiguration{HighAvailability: &ReplicationSlotsHAConfiguration{}}, map[string]string{"max_replication_slots": "20"}, false, ""},
		{"turned off", 12, &ReplicationSlotsConfiguration{HighAvailability: &ReplicationSlotsHAConfiguration{Enabled: &off}}, nil, false, ""},
		{"in a replica cluster", 2, &ReplicationSlotsConfiguration{HighAvailability: &ReplicationSlotsHAConfiguration{}}, nil, true, "replica cluster"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &ClusterSpec{Instances: tc.instances, ReplicationSlots: tc.rs}
			s.PostgresConfiguration.Parameters = tc.params
			if tc.replica {
				s.Replica = &ReplicaClusterConfiguration{}
			}
			errs := s.validateReplicationSlots(nil, "pg").ToAggregate()
			switch {
			case tc.want == "" && errs != nil:
				t.Errorf("unexpected: %v", errs)
			case tc.want != "" && (errs == nil || !strings.Contains(errs.Error(), tc.want)):
				t.Errorf("got %v, want %q", errs, tc.want)
			}
		})
	}
	if p, ok := (&ClusterSpec{ReplicationSlots: &ReplicationSlotsConfiguration{HighAvailability: &ReplicationSlotsHAConfiguration{}}}).HASlots(); !ok || p != DefaultSlotPrefix {
		t.Errorf("default prefix %q %v", p, ok)
	}
	if got := HASlotName("_cnpg_", "cluster-example-2"); got != "_cnpg_cluster_example_2" {
		t.Errorf("slot name %q", got)
	}
}
