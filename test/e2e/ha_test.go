package e2e

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// benchSummary mirrors `pgward bench ... --json`.
type benchSummary struct {
	Mode   string `json:"mode"`
	Rounds []struct {
		OldPrimary string `json:"oldPrimary"`
		NewPrimary string `json:"newPrimary"`
		Duration   int64  `json:"durationNs"`
		Err        string `json:"error"`
	} `json:"rounds"`
	Acknowledged    int  `json:"acknowledged"`
	MissingAcked    int  `json:"missingAcknowledged"`
	SplitBrain      int  `json:"splitBrainMoments"`
	FailedRounds    int  `json:"failedRounds"`
	SyncReplication bool `json:"syncReplication"`
}

// runBench runs a short benchmark against real PostgreSQL and checks the
// guarantees: every round recovers, no acknowledged write is lost under
// synchronous replication, and never do two instances accept writes.
func runBench(t *testing.T, rounds int, args ...string) benchSummary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	manifest := filepath.Join(repoRoot, "config", "samples", "cluster-sync.yaml")
	full := append(append([]string{"bench"}, args...), "-f", manifest, "--json")
	out, err := pgward(ctx, full...)
	if err != nil {
		t.Fatalf("pgward %s: %v\n%s", strings.Join(full, " "), err, out)
	}
	var s benchSummary
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &s); err != nil {
		t.Fatalf("bench output: %v\n%s", err, out)
	}
	if len(s.Rounds) != rounds || s.FailedRounds != 0 {
		t.Fatalf("want %d successful rounds, got %+v", rounds, s)
	}
	for _, r := range s.Rounds {
		if r.NewPrimary == "" || r.NewPrimary == r.OldPrimary && s.Mode != "switchover" {
			t.Errorf("round %+v: no new primary", r)
		}
		t.Logf("%s: %s -> %s in %s", s.Mode, r.OldPrimary, r.NewPrimary, time.Duration(r.Duration).Round(time.Millisecond))
	}
	if !s.SyncReplication || s.Acknowledged == 0 {
		t.Fatalf("the run must write under synchronous replication: %+v", s)
	}
	if s.MissingAcked != 0 {
		t.Errorf("%d acknowledged writes lost", s.MissingAcked)
	}
	if s.SplitBrain != 0 {
		t.Errorf("%d moments with two instances accepting writes", s.SplitBrain)
	}
	return s
}

func TestFailoverKill(t *testing.T) {
	runAsUser(t)
	s := runBench(t, 3, "failover", "--mode", "kill", "--kills", "3")
	for _, r := range s.Rounds {
		// Not a speed test (benchmarks measure that): a bound far above
		// the measured ~0.4 s that still catches a failover that only
		// happens by timeout.
		if d := time.Duration(r.Duration); d > 10*time.Second {
			t.Errorf("failover took %s", d)
		}
	}
}

func TestFailoverFrozenPrimary(t *testing.T) {
	runAsUser(t)
	// Frozen longer than the self-fencing bound: the controller promotes a
	// replica while the old primary is stopped, and the old primary must
	// fence itself when it wakes instead of accepting writes.
	runBench(t, 1, "failover", "--mode", "freeze", "--kills", "1", "--freeze", "10s")
}

func TestSwitchover(t *testing.T) {
	runAsUser(t)
	runBench(t, 2, "switchover", "--rounds", "2")
}
