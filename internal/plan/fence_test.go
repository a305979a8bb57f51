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
