package plan

import (
	"testing"
	"time"
)

func TestFenceTimingBound(t *testing.T) {
	ft := FenceTiming{
		SelfFence: 4 * time.Second, RequestTimeout: 500 * time.Millisecond,
		CheckInterval: 100 * time.Millisecond, StopTime: time.Second, ClockStep: 200 * time.Millisecond,
		Drift: 0.01,
	}
	u, err := ft.Bound()
	if err != nil {
		t.Fatal(err)
	}
	// The primary is surely fenced by D + F(1+ρ) + C + S after the last answered request.
	fenced := ft.RequestTimeout + ft.CheckInterval + ft.StopTime + time.Duration(float64(ft.SelfFence)*(1+ft.Drift))
	// The controller's wait, corrected for a slow clock and a forward step, must exceed it.
	waited := time.Duration(float64(u-ft.ClockStep) * (1 - ft.Drift))
	if waited <= fenced {
		t.Fatalf("bound %v gives a real wait of %v, not beyond the fencing time %v", u, waited, fenced)
	}
	if u > 7*time.Second {
		t.Errorf("bound %v is needlessly long", u)
	}
	for _, bad := range []FenceTiming{{}, {SelfFence: time.Second, Drift: 0.5}, {SelfFence: time.Second, StopTime: -1}} {
		if _, err := bad.Bound(); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

// kubeFence is the operator's default timing on Kubernetes
// (internal/kube.DefaultTiming, whose CheckPrimaryLeaseRange
// TestPrimaryLeaseRefusedByTheOperator runs): 1 s requests, the instance
// manager's 100 ms check, 1 s to stop, no clock step (the operator measures
// on its monotonic clock), 1e-4 drift. clockStepped is the same with the
// 2 s wall-clock step the operator allowed for before.
var (
	kubeFence = FenceTiming{
		RequestTimeout: time.Second, CheckInterval: 100 * time.Millisecond,
		StopTime: time.Second, Drift: 1e-4,
	}
	clockStepped = FenceTiming{
		RequestTimeout: time.Second, CheckInterval: 100 * time.Millisecond,
		StopTime: time.Second, ClockStep: 2 * time.Second, Drift: 1e-4,
	}
)

// worstCase plays one isolated primary against the controller on the real
// time axis, each unknown at its worst, and returns the real times (in
// seconds after the controller sent the read that saw the last contact) of
// the primary's last possible write and of the earliest promotion.
//
//   - The contact is a status request, or a Lease renewal seen by a read: the
//     controller counts it from when it sent the request or read (0), while
//     the instance received the request, or sent the renewal the read
//     returned, as late as RequestTimeout after that.
//   - The instance's monotonic clock runs slow by Drift: its SelfFence
//     lasts SelfFence·(1+Drift) real seconds; its check comes up to
//     CheckInterval late and stopping takes up to StopTime.
//   - The controller's wall clock jumps forward by ClockStep and runs fast
//     by Drift: bound on its clock is (bound−ClockStep)·(1−Drift) real.
func worstCase(t FenceTiming, bound time.Duration) (lastWrite, promotion float64) {
	contact := t.RequestTimeout.Seconds()
	lastWrite = contact + t.SelfFence.Seconds()*(1+t.Drift) + t.CheckInterval.Seconds() + t.StopTime.Seconds()
	promotion = (bound - t.ClockStep).Seconds() * (1 - t.Drift)
	return lastWrite, promotion
}

// TestPrimaryLeaseRangeIsSafe: for every renew deadline spec.primaryLease
// accepts (2-300 s), with the derived duration and with every accepted
// duration from deadline+3 s (api/v1.LeaseMarginSeconds) up, the isolated
// primary's last possible write comes before the earliest promotion; and
// LeaseBound refuses a duration shorter than that needs, while a bound a
// little shorter than the derived one would overlap (the check can fail).
func TestPrimaryLeaseRangeIsSafe(t *testing.T) {
	for deadline := 2; deadline <= 300; deadline++ {
		for _, base := range []FenceTiming{kubeFence, clockStepped} {
			ft := base
			ft.SelfFence = time.Duration(deadline) * time.Second
			margin := 3
			if ft.ClockStep > 0 {
				margin += 2
			}
			leases := []time.Duration{0}
			for d := deadline + margin; d <= 600; d++ {
				if d <= deadline+margin+3 || d%50 == 0 || d == 600 {
					leases = append(leases, time.Duration(d)*time.Second)
				}
			}
			for _, lease := range leases {
				bound, err := ft.LeaseBound(lease)
				if err != nil {
					t.Fatalf("deadline %ds, lease %s: refused: %v", deadline, lease, err)
				}
				if lease != 0 && bound != lease {
					t.Fatalf("deadline %ds, lease %s: bound %s, want the lease itself", deadline, lease, bound)
				}
				if last, promo := worstCase(ft, bound); promo <= last {
					t.Fatalf("deadline %ds, lease %s (bound %s): promotion at %.6fs, not after the last write at %.6fs",
						deadline, lease, bound, promo, last)
				}
			}
			derived, err := ft.Bound()
			if err != nil {
				t.Fatal(err)
			}
			if last, promo := worstCase(ft, derived-10*time.Millisecond); promo > last {
				t.Fatalf("deadline %ds: a bound 10 ms under the derived %s would still be safe: the derivation is not tight", deadline, derived)
			}
			if _, err := ft.LeaseBound(derived - time.Millisecond); err == nil {
				t.Fatalf("deadline %ds: a lease 1 ms under the derived bound %s was accepted", deadline, derived)
			}
		}
	}
}

func TestLeaseBound(t *testing.T) {
	ft := kubeFence
	ft.SelfFence = 10 * time.Second
	for _, tc := range []struct {
		lease, want time.Duration
		err         bool
	}{
		{0, 12102210223, false}, // derived: (1 + 10·1.0001 + 0.1 + 1)/0.9999 s, rounded up, + 1 ns
		{13 * time.Second, 13 * time.Second, false},
		{12 * time.Second, 0, true},
	} {
		got, err := ft.LeaseBound(tc.lease)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("LeaseBound(%s) = %s, %v; want %s, error %v", tc.lease, got, err, tc.want, tc.err)
		}
	}
}
