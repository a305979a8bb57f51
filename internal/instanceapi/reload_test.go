package instanceapi

import (
	"strings"
	"testing"
)

func TestSummarizeReload(t *testing.T) {
	done := func(pending []string, errMsg string) *ReloadResult {
		return &ReloadResult{ID: "r1", Done: true, PendingRestart: pending, Error: errMsg}
	}
	for _, tc := range []struct {
		name     string
		in       []ReloadOutcome
		want     []string // substrings, line by line
		failedOn string   // "" when no error is expected
	}{
		{"all in effect", []ReloadOutcome{{Instance: "a", Result: done(nil, "")}, {Instance: "b", Result: done(nil, "")}},
			[]string{"a: reloaded, configuration in effect", "b: reloaded, configuration in effect"}, ""},
		{"restart needed is no error", []ReloadOutcome{{Instance: "a", Result: done([]string{"max_connections", "shared_buffers"}, "")}},
			[]string{"a: reloaded; waiting for a restart: max_connections, shared_buffers (the controller restarts for it, rolling, as spec.primaryUpdateStrategy says; `R` does it now)"}, ""},
		{"down instance skipped", []ReloadOutcome{{Instance: "a", Skipped: "PostgreSQL is down"}, {Instance: "b", Result: done(nil, "")}},
			[]string{"a: not reloaded: PostgreSQL is down", "b: reloaded"}, ""},
		{"refused configuration", []ReloadOutcome{{Instance: "a", Result: done(nil, "spec.postgresql.pg_hba: line 3")}},
			[]string{"a: FAILED: spec.postgresql.pg_hba: line 3"}, "a"},
		{"unreachable", []ReloadOutcome{{Instance: "a", Result: done(nil, "")}, {Instance: "b", Err: "connection refused"}},
			[]string{"a: reloaded", "b: FAILED: connection refused"}, "b"},
		{"no answer", []ReloadOutcome{{Instance: "a", Result: &ReloadResult{ID: "r1"}}, {Instance: "b"}},
			[]string{"a: FAILED: no answer", "b: FAILED: no answer"}, "a, b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lines, err := SummarizeReload(tc.in, "R")
			if len(lines) != len(tc.want) {
				t.Fatalf("lines %q, want %d", lines, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("line %d %q, want %q in it", i, lines[i], w)
				}
			}
			switch {
			case tc.failedOn == "" && err != nil:
				t.Errorf("error %v, want none", err)
			case tc.failedOn != "" && (err == nil || !strings.HasSuffix(err.Error(), " on "+tc.failedOn)):
				t.Errorf("error %v, want one naming %s", err, tc.failedOn)
			}
		})
	}
}

func TestReloadDone(t *testing.T) {
	st := &Status{Reload: &ReloadResult{ID: "r1", Done: true}}
	if !ReloadDone(st, "r1") || ReloadDone(st, "r2") || ReloadDone(nil, "r1") || ReloadDone(&Status{}, "r1") {
		t.Fatal("ReloadDone matched the wrong request")
	}
	st.Reload.Done = false
	if ReloadDone(st, "r1") {
		t.Fatal("a request still running counted as done")
	}
}
