//go:build e2e_kube

package kube

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/internal/bench"
)

// serverAcks reads what the servers said of each acknowledged write in a
// writer's or probe's log ("ack <id> <unix ms> <addr> <walfile> <lsn>
// <epoch>"). The client's clock reading is taken after psql returned, on
// the node's clock (pods of one node and the node itself share
// CLOCK_REALTIME), and rounded up to the next millisecond: it bounds the
// commit from above (bench.ParseServerAck).
func serverAcks(t testing.TB, log string) []bench.ServerAck {
	t.Helper()
	var out []bench.ServerAck
	for _, line := range strings.Split(log, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || f[0] != "ack" {
			continue
		}
		if len(f) < 7 {
			t.Errorf("an acknowledged write without the server's words: %q", line)
			continue
		}
		ms, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			t.Errorf("ack line %q: %v", line, err)
			continue
		}
		a, err := bench.ParseServerAck(f[4], f[5], f[6], time.UnixMilli(ms+1))
		if err != nil {
			t.Errorf("ack line %q: %v", line, err)
			continue
		}
		out = append(out, a)
	}
	return out
}

// splitBrainOnPods judges acks by server order (bench.SplitBrain) against
// the history of the timeline primary writes on now, read on that pod:
// the acknowledged writes the surviving history lacks, and of those the
// ones acknowledged at or after the first write of the timeline that
// replaced theirs.
func splitBrainOnPods(t testing.TB, ns, primary string, acks []bench.ServerAck) (divergent, overlapping int) {
	t.Helper()
	wal := psqlLocal(t, ns, primary, "postgres", "select pg_walfile_name(pg_current_wal_lsn())")
	if len(wal) < 8 {
		t.Fatalf("%s: WAL file name %q", primary, wal)
	}
	tli, err := strconv.ParseUint(wal[:8], 16, 32)
	if err != nil {
		t.Fatalf("%s: WAL file name %q: %v", primary, wal, err)
	}
	hist := ""
	if tli > 1 {
		hist = psqlLocal(t, ns, primary, "postgres", fmt.Sprintf("select pg_read_file('pg_wal/%08X.history')", tli))
	}
	divergent, overlapping, err = bench.SplitBrain(acks, uint32(tli), hist)
	if err != nil {
		t.Fatalf("%s: timeline %d's history: %v", primary, tli, err)
	}
	return divergent, overlapping
}
