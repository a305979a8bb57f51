package local

import (
	"strings"
	"testing"
	"time"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instanceapi"
)

func TestRefusalGivesUpOnlyOnAPersistentServerRefusal(t *testing.T) {
	fatal := &instanceapi.Status{Error: "bootstrap: postgres exited while starting: exit status 1: FATAL: could not map anonymous shared memory: Cannot allocate memory (see /x/postgres.log)"}
	other := &instanceapi.Status{Error: "bootstrap: postgres exited while starting: exit status 1: FATAL: lock file exists"}
	t0 := time.Now()
	var r refusal
	steps := []struct {
		st      *instanceapi.Status
		at      time.Duration
		giveUp  bool
		comment string
	}{
		{fatal, 0, false, "first sight"},
		{fatal, 5 * time.Second, false, "not long enough"},
		{other, 6 * time.Second, false, "another message starts over"},
		{other, 13 * time.Second, false, "7 s of it"},
		{nil, 13500 * time.Millisecond, false, "no answer clears it"},
		{fatal, 14 * time.Second, false, "again"},
		{&instanceapi.Status{}, 15 * time.Second, false, "healthy clears it"},
		{fatal, 16 * time.Second, false, "again"},
		{fatal, 24 * time.Second, true, "8 s of the same refusal"},
	}
	for _, s := range steps {
		now := t0.Add(s.at)
		err := r.update(s.st, now)
		if (err != nil) != s.giveUp {
			t.Fatalf("%s: update = %v", s.comment, err)
		}
		if err != nil && err.Error() != "FATAL: could not map anonymous shared memory: Cannot allocate memory" {
			t.Fatalf("message %q", err)
		}
		r = r.next(s.st, now)
	}
}

func TestExplainStartFailure(t *testing.T) {
	c := &v1.Cluster{Spec: v1.ClusterSpec{PostgresConfiguration: v1.PostgresConfiguration{Parameters: map[string]string{
		"shared_buffers": "8GB", "work_mem": "4MB", "TimeZone": "UTC"}}}}
	for msg, want := range map[string]string{
		"FATAL: could not map anonymous shared memory: Cannot allocate memory": "spec.postgresql.parameters[shared_buffers]: PostgreSQL refuses to start",
		`FATAL: invalid value for parameter "TimeZone": "x"`:                   "spec.postgresql.parameters[TimeZone]:",
		"FATAL: lock file exists":                                              "PostgreSQL refuses to start: FATAL: lock file exists",
	} {
		got := explainStartFailure(c, errString(msg)).Error()
		if !strings.HasPrefix(got, want) && !strings.Contains(got, want) {
			t.Errorf("explain(%q) = %q, want %q", msg, got, want)
		}
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// TestBootstrapErrorsReportedAtOnce: a bootstrap that fails on the
// object store, the recovery, an import or the SQL references stops `up`
// at once with the field; any other failure is retried.
func TestBootstrapErrorsReportedAtOnce(t *testing.T) {
	for msg, fatal := range map[string]bool{
		"bootstrap: spec.bootstrap.initdb.import: database \"shop\": pg_dump failed":            true,
		"bootstrap: spec.bootstrap.initdb.postInitApplicationSQLRefs[0]: ERROR: syntax error":   true,
		"bootstrap: spec.externalClusters[src]: password: secret \"x\" has no key \"password\"": true,
		"bootstrap: initdb failed: exit status 1":                                               false,
		"start: spec.bootstrap.initdb.import: not a bootstrap":                                  false,
	} {
		err := backupBootstrapError(&instanceapi.Status{Error: msg})
		if (err != nil) != fatal {
			t.Errorf("%q: got %v, want fatal %v", msg, err, fatal)
		}
	}
}
