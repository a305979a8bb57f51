package instanceapi

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// ReloadOutcome is what the one who asked for a reload learned from one
// instance.
type ReloadOutcome struct {
	Instance string
	// Skipped says why the instance was not asked (PostgreSQL down: it
	// reads the configuration when it starts).
	Skipped string
	// Result is the instance's answer to the request; nil if it gave none.
	Result *ReloadResult
	// Err is why the instance could not be asked or did not answer.
	Err string
}

// ReloadDone reports whether st shows request id carried out.
func ReloadDone(st *Status, id string) bool {
	return st != nil && st.Reload != nil && st.Reload.ID == id && st.Reload.Done
}

// SummarizeReload gives one line per instance and an error that names
// every instance where the configuration is not in effect. Parameters
// waiting for a restart are not an error: the controller restarts for
// them (rolling, as spec.primaryUpdateStrategy says); their lines say so
// and point at restartCmd, which does it now.
func SummarizeReload(outcomes []ReloadOutcome, restartCmd string) ([]string, error) {
	var lines, failed []string
	for _, o := range outcomes {
		switch {
		case o.Skipped != "":
			lines = append(lines, fmt.Sprintf("%s: not reloaded: %s", o.Instance, o.Skipped))
		case o.Err != "":
			lines = append(lines, fmt.Sprintf("%s: FAILED: %s", o.Instance, o.Err))
			failed = append(failed, o.Instance)
		case o.Result == nil || !o.Result.Done:
			lines = append(lines, o.Instance+": FAILED: no answer to the reload request")
			failed = append(failed, o.Instance)
		case o.Result.Error != "":
			lines = append(lines, fmt.Sprintf("%s: FAILED: %s", o.Instance, o.Result.Error))
			failed = append(failed, o.Instance)
		case len(o.Result.PendingRestart) > 0:
			lines = append(lines, fmt.Sprintf("%s: reloaded; waiting for a restart: %s (the controller restarts for it, rolling, as spec.primaryUpdateStrategy says; `%s` does it now)",
				o.Instance, strings.Join(o.Result.PendingRestart, ", "), restartCmd))
		default:
			lines = append(lines, o.Instance+": reloaded, configuration in effect")
		}
	}
	if len(failed) > 0 {
		return lines, fmt.Errorf("the new configuration is not in effect on %s", strings.Join(failed, ", "))
	}
	return lines, nil
}

// WaitReloads polls the asked instances' statuses (poll returns them by
// index into outcomes) every interval until each shows request id done or
// ctx ends, and records their answers in outcomes.
func WaitReloads(ctx context.Context, id string, interval time.Duration, poll func() map[int]*Status, outcomes []ReloadOutcome) {
	for {
		sts := poll()
		done := 0
		for i, s := range sts {
			if s != nil && s.Reload != nil && s.Reload.ID == id {
				r := *s.Reload
				outcomes[i].Result = &r
			}
			if ReloadDone(s, id) {
				done++
			}
		}
		if done == len(sts) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}
