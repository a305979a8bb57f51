package v1

import (
	"strings"
	"testing"
	"time"
)

func TestValidatePrimaryLease(t *testing.T) {
	i32 := func(v int32) *int32 { return &v }
	for _, tc := range []struct {
		name      string
		lease     *PrimaryLeaseConfiguration
		wantError string // "" = valid
	}{
		{"not set: the operator's defaults", nil, ""},
		{"empty: the operator's defaults", &PrimaryLeaseConfiguration{}, ""},
		{"CloudNativePG's defaults, written out", &PrimaryLeaseConfiguration{LeaseDurationSeconds: i32(15), RenewDeadlineSeconds: i32(10)}, ""},
		{"the shortest accepted", &PrimaryLeaseConfiguration{LeaseDurationSeconds: i32(5), RenewDeadlineSeconds: i32(2)}, ""},
		{"the longest accepted", &PrimaryLeaseConfiguration{LeaseDurationSeconds: i32(600), RenewDeadlineSeconds: i32(300)}, ""},
		{"only a renew deadline: the duration is derived", &PrimaryLeaseConfiguration{RenewDeadlineSeconds: i32(30)}, ""},
		{"only a duration, long enough for the default renew deadline", &PrimaryLeaseConfiguration{LeaseDurationSeconds: i32(6)}, ""},
		{"only a duration, too short for the default renew deadline", &PrimaryLeaseConfiguration{LeaseDurationSeconds: i32(5)},
			"spec.primaryLease.leaseDurationSeconds: Invalid value: 5: must be at least 6: the default renewDeadlineSeconds (3)"},
		{"duration not past the deadline (CloudNativePG's own rule)", &PrimaryLeaseConfiguration{LeaseDurationSeconds: i32(10), RenewDeadlineSeconds: i32(10)},
			"spec.primaryLease.leaseDurationSeconds: Invalid value: 10: must be at least 13"},
		{"duration within the margin", &PrimaryLeaseConfiguration{LeaseDurationSeconds: i32(12), RenewDeadlineSeconds: i32(10)},
			"must be at least 13: renewDeadlineSeconds (10) + 3 s"},
		{"deadline too short for renewals every second", &PrimaryLeaseConfiguration{RenewDeadlineSeconds: i32(1)},
			"spec.primaryLease.renewDeadlineSeconds: Invalid value: 1: must be between 2 and 300"},
		{"deadline zero", &PrimaryLeaseConfiguration{RenewDeadlineSeconds: i32(0)}, "renewDeadlineSeconds: Invalid value: 0"},
		{"deadline negative", &PrimaryLeaseConfiguration{RenewDeadlineSeconds: i32(-5)}, "renewDeadlineSeconds: Invalid value: -5"},
		{"deadline too long", &PrimaryLeaseConfiguration{LeaseDurationSeconds: i32(600), RenewDeadlineSeconds: i32(301)}, "renewDeadlineSeconds: Invalid value: 301"},
		{"duration too long", &PrimaryLeaseConfiguration{LeaseDurationSeconds: i32(601)}, "leaseDurationSeconds: Invalid value: 601: must be at most 600"},
		{"duration negative", &PrimaryLeaseConfiguration{LeaseDurationSeconds: i32(-1)}, "leaseDurationSeconds: Invalid value: -1: must be at least 6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := LoadCluster([]byte(minimalManifest))
			if err != nil {
				t.Fatal(err)
			}
			c.Spec.StorageConfiguration.Size = "1Gi"
			c.Spec.PrimaryLease = tc.lease
			SetDefaults(c)
			got := c.Validate().ToAggregate()
			switch {
			case tc.wantError == "" && got != nil:
				t.Fatalf("refused: %v", got)
			case tc.wantError != "" && (got == nil || !strings.Contains(got.Error(), tc.wantError)):
				t.Fatalf("got %v, want an error containing %q", got, tc.wantError)
			}
		})
	}
}

func TestPrimaryLeaseTimes(t *testing.T) {
	var s ClusterSpec
	if d, r := s.PrimaryLeaseTimes(); d != 0 || r != 0 {
		t.Fatalf("unset: %v %v", d, r)
	}
	d, r := int32(15), int32(10)
	s.PrimaryLease = &PrimaryLeaseConfiguration{LeaseDurationSeconds: &d, RenewDeadlineSeconds: &r}
	if gd, gr := s.PrimaryLeaseTimes(); gd != 15*time.Second || gr != 10*time.Second {
		t.Fatalf("set: %v %v", gd, gr)
	}
}
