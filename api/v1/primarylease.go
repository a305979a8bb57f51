package v1

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// PrimaryLeaseConfiguration is CloudNativePG's spec.primaryLease: the
// timings of the Lease the primary renews on Kubernetes. pgward keeps the
// names and their meaning, with its own, shorter defaults:
//
//   - renewDeadlineSeconds is how long the primary keeps accepting writes
//     when it can neither renew the Lease nor complete an exchange with the
//     operator: then it stops PostgreSQL (its self-fencing time).
//   - leaseDurationSeconds is how long the operator waits, after the last
//     renewal or answer it saw, before it promotes another instance.
//
// The operator derives the shortest safe wait from renewDeadlineSeconds
// (plan.FenceTiming: the request timeout, the time to stop and clock
// drift) and refuses a shorter leaseDurationSeconds, so every accepted pair
// keeps an isolated primary's last write before any promotion.
type PrimaryLeaseConfiguration struct {
	// LeaseDurationSeconds is how long after the primary's last renewal
	// or answer the operator may promote another instance. At least
	// renewDeadlineSeconds + 3. Default: the shortest safe wait for the
	// renew deadline (about 5.1 s for the default 3 s).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=600
	LeaseDurationSeconds *int32 `json:"leaseDurationSeconds,omitempty"`

	// RenewDeadlineSeconds is how long the primary accepts writes without
	// renewing the Lease or hearing from the operator before it stops
	// PostgreSQL. The primary renews every second. Default: 3.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=300
	RenewDeadlineSeconds *int32 `json:"renewDeadlineSeconds,omitempty"`
}

// The accepted range of spec.primaryLease. The primary renews every second
// and each renewal is given up to 2 s on a loaded API server, so a renew
// deadline under 2 s would fence a healthy primary at the first slow
// renewal while the operator is away. A deadline above 5 minutes, or a
// lease of more than 10, keeps a cluster without a primary for longer
// than any use of them we know; neither is a safety limit.
const (
	MinRenewDeadlineSeconds     = 2
	MaxRenewDeadlineSeconds     = 300
	MaxLeaseDurationSeconds     = 600
	DefaultRenewDeadlineSeconds = 3
	// LeaseMarginSeconds is what leaseDurationSeconds must add to
	// renewDeadlineSeconds: the operator's request timeout (1 s), the
	// instance manager's check interval (0.1 s) and stop time (1 s), and
	// drift (1e-4) over the longest deadline come to less than 2.2 s with
	// the operator's default timings (plan.FenceTiming); the operator
	// refuses to start with timings this margin does not cover
	// (internal/kube.Timing.CheckPrimaryLeaseRange).
	LeaseMarginSeconds = 3
)

// PrimaryLeaseTimes returns spec.primaryLease's duration and renew
// deadline, each zero when not set (the operator's default applies).
func (s *ClusterSpec) PrimaryLeaseTimes() (duration, renewDeadline time.Duration) {
	l := s.PrimaryLease
	if l == nil {
		return 0, 0
	}
	if l.LeaseDurationSeconds != nil {
		duration = time.Duration(*l.LeaseDurationSeconds) * time.Second
	}
	if l.RenewDeadlineSeconds != nil {
		renewDeadline = time.Duration(*l.RenewDeadlineSeconds) * time.Second
	}
	return duration, renewDeadline
}

// validatePrimaryLease checks the ranges and that the lease outlasts the
// renew deadline by LeaseMarginSeconds (a lone leaseDurationSeconds
// against the default renew deadline).
func (s *ClusterSpec) validatePrimaryLease(p *field.Path) field.ErrorList {
	l := s.PrimaryLease
	if l == nil {
		return nil
	}
	var errs field.ErrorList
	deadline := int32(DefaultRenewDeadlineSeconds)
	if d := l.RenewDeadlineSeconds; d != nil {
		deadline = *d
		if *d < MinRenewDeadlineSeconds || *d > MaxRenewDeadlineSeconds {
			errs = append(errs, field.Invalid(p.Child("renewDeadlineSeconds"), *d,
				fmt.Sprintf("must be between %d and %d: the primary renews every second, and each renewal is given up to 2 s on a loaded API server",
					MinRenewDeadlineSeconds, MaxRenewDeadlineSeconds)))
		}
	}
	if d := l.LeaseDurationSeconds; d != nil {
		switch {
		case *d > MaxLeaseDurationSeconds:
			errs = append(errs, field.Invalid(p.Child("leaseDurationSeconds"), *d,
				fmt.Sprintf("must be at most %d", MaxLeaseDurationSeconds)))
		case *d < deadline+LeaseMarginSeconds:
			which := "renewDeadlineSeconds"
			if l.RenewDeadlineSeconds == nil {
				which = "the default renewDeadlineSeconds"
			}
			errs = append(errs, field.Invalid(p.Child("leaseDurationSeconds"), *d,
				fmt.Sprintf("must be at least %d: %s (%d) + %d s, so that a primary cut off from the operator and the API server has stopped writing before another instance is promoted (the request timeout, the time to stop PostgreSQL, clock drift)",
					deadline+LeaseMarginSeconds, which, deadline, LeaseMarginSeconds)))
		}
	}
	return errs
}
