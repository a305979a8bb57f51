package backup

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	v1 "github.com/pgward/pgward/api/v1"
)

// ChooseSet picks the base backup a recovery to target starts from: the
// one named, or the newest that was consistent before the target. A
// target before every backup is refused here, before anything is
// restored, instead of PostgreSQL failing after replaying the wrong one.
func ChooseSet(backups []Info, t *v1.RecoveryTarget) (Info, error) {
	if len(backups) == 0 {
		return Info{}, fmt.Errorf("the source has no base backup to recover from")
	}
	newest := backups[len(backups)-1]
	if t == nil {
		return newest, nil
	}
	if t.BackupID != "" {
		for _, b := range backups {
			if b.Label == t.BackupID {
				return b, nil
			}
		}
		return Info{}, fmt.Errorf("recoveryTarget.backupID: no backup %q in the source (it has %s)", t.BackupID, labels(backups))
	}
	switch {
	case t.TargetTime != "":
		at, err := v1.ParseTargetTime(t.TargetTime)
		if err != nil {
			return Info{}, fmt.Errorf("recoveryTarget.targetTime: %w", err)
		}
		// Stop is rounded down to the second: a backup counts as
		// consistent before the target only a full second earlier.
		for i := len(backups) - 1; i >= 0; i-- {
			if !backups[i].Stop.Add(time.Second).After(at) {
				return backups[i], nil
			}
		}
		return Info{}, fmt.Errorf("recoveryTarget.targetTime %s is before the first backup ended (%s at %s): no backup can reach it",
			at.UTC().Format(time.RFC3339Nano), backups[0].Label, backups[0].Stop.Format(time.RFC3339))
	case t.TargetLSN != "":
		at, err := ParseLSN(t.TargetLSN)
		if err != nil {
			return Info{}, fmt.Errorf("recoveryTarget.targetLSN: %w", err)
		}
		for i := len(backups) - 1; i >= 0; i-- {
			if stop, err := ParseLSN(backups[i].StopLSN); err == nil && stop <= at {
				return backups[i], nil
			}
		}
		return Info{}, fmt.Errorf("recoveryTarget.targetLSN %s is before the first backup ended (%s at %s): no backup can reach it",
			t.TargetLSN, backups[0].Label, backups[0].StopLSN)
	}
	return newest, nil
}

func labels(backups []Info) string {
	var l []string
	for _, b := range backups {
		l = append(l, b.Label)
	}
	return strings.Join(l, ", ")
}

// ParseLSN reads a WAL location such as 0/3000060.
func ParseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("%q is not a WAL location", s)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%q is not a WAL location", s)
	}
	return h<<32 | l, nil
}

// RecoverySettings are the recovery_target* settings for t, with
// promotion at the target: the recovered cluster starts a new timeline
// and becomes a primary of its own.
func RecoverySettings(t *v1.RecoveryTarget) [][2]string {
	s := [][2]string{{"recovery_target_action", "promote"}, {"recovery_target_timeline", "latest"}}
	if t == nil {
		return s
	}
	switch {
	case t.TargetTime != "":
		at, _ := v1.ParseTargetTime(t.TargetTime)
		s = append(s, [2]string{"recovery_target_time", at.UTC().Format("2006-01-02 15:04:05.999999+00")})
	case t.TargetLSN != "":
		s = append(s, [2]string{"recovery_target_lsn", t.TargetLSN})
	case t.TargetXID != "":
		s = append(s, [2]string{"recovery_target_xid", t.TargetXID})
	case t.TargetName != "":
		s = append(s, [2]string{"recovery_target_name", t.TargetName})
	case t.TargetImmediate != nil && *t.TargetImmediate:
		s = append(s, [2]string{"recovery_target", "immediate"})
	}
	if t.Exclusive != nil && *t.Exclusive {
		s = append(s, [2]string{"recovery_target_inclusive", "off"})
	}
	return s
}
