package v1

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ReplicationSlotsConfiguration is CloudNativePG's replicationSlots
// (highAvailability and updateInterval; synchronizeReplicas is not
// supported yet).
type ReplicationSlotsConfiguration struct {
	// HighAvailability keeps, on the primary, a physical replication slot
	// for each replica (which streams through it: the primary keeps the
	// WAL a disconnected replica still needs), and on each replica a copy
	// of the primary's slots for the other instances, advanced as they
	// are, so a promoted replica keeps them.
	// +optional
	HighAvailability *ReplicationSlotsHAConfiguration `json:"highAvailability,omitempty"`
	// UpdateInterval is how often, in seconds, the slots are checked and
	// the replicas' copies advanced (default 30).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=3600
	UpdateInterval int `json:"updateInterval,omitempty"`
}

// ReplicationSlotsHAConfiguration turns the replicas' slots on.
type ReplicationSlotsHAConfiguration struct {
	// Enabled defaults to true when highAvailability is given.
	// +optional
	Enabled *bool `json:"enabled,omitempty"`
	// SlotPrefix starts the slots' names (default "_cnpg_"), followed by
	// the instance's name with "-" as "_". pgward owns every physical slot
	// of that prefix: it creates and drops them.
	// +optional
	SlotPrefix string `json:"slotPrefix,omitempty"`
}

// DefaultSlotPrefix is CloudNativePG's prefix for the replicas' slots.
const DefaultSlotPrefix = "_cnpg_"

// DefaultSlotUpdateInterval is CloudNativePG's updateInterval, in seconds.
const DefaultSlotUpdateInterval = 30

var slotPrefixPattern = regexp.MustCompile(`^[a-z0-9_]+$`)

// HASlots reports whether the replicas' slots are on, and their prefix.
func (s *ClusterSpec) HASlots() (prefix string, on bool) {
	rs := s.ReplicationSlots
	if rs == nil || rs.HighAvailability == nil || (rs.HighAvailability.Enabled != nil && !*rs.HighAvailability.Enabled) {
		return "", false
	}
	if p := rs.HighAvailability.SlotPrefix; p != "" {
		return p, true
	}
	return DefaultSlotPrefix, true
}

// SlotUpdateSeconds is replicationSlots.updateInterval or its default.
func (s *ClusterSpec) SlotUpdateSeconds() int {
	if rs := s.ReplicationSlots; rs != nil && rs.UpdateInterval > 0 {
		return rs.UpdateInterval
	}
	return DefaultSlotUpdateInterval
}

// HASlotName is the slot of instance under prefix: PostgreSQL's slot
// names are lower-case letters, digits and underscores.
func HASlotName(prefix, instance string) string {
	return prefix + strings.ReplaceAll(instance, "-", "_")
}

func (s *ClusterSpec) validateReplicationSlots(path *field.Path, clusterName string) field.ErrorList {
	rs := s.ReplicationSlots
	if rs == nil {
		return nil
	}
	var errs field.ErrorList
	p := path.Child("replicationSlots")
	if rs.UpdateInterval < 0 || rs.UpdateInterval > 3600 {
		errs = append(errs, field.Invalid(p.Child("updateInterval"), rs.UpdateInterval, "must be 1 to 3600 seconds"))
	}
	if _, on := s.HASlots(); on && s.Replica != nil {
		// A designated primary is a standby of another cluster: whose
		// slots it keeps, and how they follow a promotion, is not settled.
		errs = append(errs, field.Forbidden(p.Child("highAvailability"), "not supported yet in a replica cluster (spec.replica)"))
	}
	if _, on := s.HASlots(); on {
		// The primary keeps instances-1 slots; pgward's default is 10.
		maxSlots := 10
		if v, ok := s.PostgresConfiguration.Parameters["max_replication_slots"]; ok {
			if n, err := strconv.Atoi(v); err == nil {
				maxSlots = n
			}
		}
		if s.Instances-1 > maxSlots {
			errs = append(errs, field.Invalid(p.Child("highAvailability"), s.Instances-1,
				fmt.Sprintf("needs a slot per replica, more than max_replication_slots (%d): raise it in spec.postgresql.parameters", maxSlots)))
		}
	}
	if ha := rs.HighAvailability; ha != nil && ha.SlotPrefix != "" {
		pp := p.Child("highAvailability", "slotPrefix")
		// The longest instance name is the cluster's and "-32"; slot
		// names are at most 63 bytes (NAMEDATALEN-1).
		longest := HASlotName(ha.SlotPrefix, fmt.Sprintf("%s-%d", clusterName, MaxInstances))
		switch {
		case !slotPrefixPattern.MatchString(ha.SlotPrefix):
			errs = append(errs, field.Invalid(pp, ha.SlotPrefix, "lower-case letters, digits and underscores only (a slot name's characters)"))
		case len(longest) > 63:
			errs = append(errs, field.Invalid(pp, ha.SlotPrefix, fmt.Sprintf("too long: slot %q would exceed PostgreSQL's 63 bytes", longest)))
		}
	}
	return errs
}
